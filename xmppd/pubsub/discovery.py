# -*- test-case-name: tests.unit.test_pubsub_protocol -*-
"""What a pubsub service says about itself in service discovery (XEP-0030): the features
it supports (XEP-0060 §10), and for the wiring's disco providers, the nodes an asker may
see (disco#items, XEP-0163 §6) and a node's identity and meta-data (XEP-0060 §5.3, §5.4).
"""

from __future__ import annotations

from xmppd import ns
from xmppd.caps import DiscoInfo, Identity
from xmppd.disco import DiscoItem
from xmppd.forms import Form, make_field
from xmppd.jid import JID
from xmppd.pubsub.errors import PubSubError
from xmppd.pubsub.service import PubSubService

# XEP-0060 §10: "http://jabber.org/protocol/pubsub#" + each of these.
_FEATURES = (
    "access-open", "access-presence", "access-roster", "access-whitelist", "auto-create",
    "config-node", "config-node-max", "create-and-configure", "create-nodes", "delete-items",
    "delete-nodes", "item-ids", "last-published", "manage-subscriptions", "member-affiliation",
    "meta-data", "modify-affiliations", "multi-items", "outcast-affiliation",
    "persistent-items", "publish", "publish-options", "publisher-affiliation", "purge-nodes",
    "retract-items", "retrieve-affiliations", "retrieve-default", "retrieve-items",
    "retrieve-subscriptions", "subscribe", "rsm",
)
# XEP-0163 §6.1: PEP subscribes presence subscribers and filters by +notify (the wiring's
# part); a generic service makes instant nodes.
_PEP_ONLY = ("auto-subscribe", "filtered-notifications")
_SERVICE_ONLY = ("instant-nodes",)


def features(pep: bool) -> tuple[str, ...]:
    """The disco#info features of a PEP account or a pubsub service, ``ns.PUBSUB`` first."""
    names = _FEATURES + (_PEP_ONLY if pep else _SERVICE_ONLY)
    return (ns.PUBSUB, *(f"{ns.PUBSUB}#{name}" for name in sorted(names)))


def identity(pep: bool) -> Identity:
    return Identity("pubsub", "pep" if pep else "service")


async def node_items(service: PubSubService, requester: JID) -> list[DiscoItem]:
    """disco#items of the service: its nodes that ``requester`` may see, titled."""
    return [DiscoItem(service.jid.full(), node.name, node.config.title or None)
            for node in await service.visible_nodes(requester)]


async def node_info(service: PubSubService, requester: JID, name: str) -> DiscoInfo:
    """disco#info of one node: a leaf, with its meta-data form; ``item-not-found`` for a
    node that does not exist or that ``requester`` may not see (no leak of its existence)."""
    node = await service.store.get_node(name)
    if node is None or not await service.access.may_read(node, requester):
        raise PubSubError("item-not-found")
    config = node.config
    meta = Form.build("result", (
        make_field("pubsub#title", config.title),
        make_field("pubsub#access_model", config.access_model),
        make_field("pubsub#publish_model", config.publish_model),
        make_field("pubsub#max_items", config.to_json()["max_items"]),
    ), form_type=ns.PUBSUB_META_DATA)
    return DiscoInfo((Identity("pubsub", "leaf"),), (ns.PUBSUB,), (meta,))
