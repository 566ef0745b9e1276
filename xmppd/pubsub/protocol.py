# -*- test-case-name: tests.unit.test_pubsub_protocol -*-
"""An IQ's ``<pubsub/>`` (XEP-0060) turned into a call of a service, and its outcome into
the reply payload: what an IQ handler of the wiring returns, plus the notifications it
routes.

One table maps (IQ type, namespace, action element) to a function; the action is the one
child of ``<pubsub/>`` that is not a companion (``<configure/>`` after ``<create/>``,
``<publish-options/>``, ``<options/>``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.jid import JID
from xmppd.pubsub.errors import PubSubError, unsupported
from xmppd.pubsub.events import Notification
from xmppd.pubsub.model import Subscription
from xmppd.pubsub.parsing import (
    boolean_attribute,
    child,
    children,
    form_in,
    item_ids,
    jid_attribute,
    max_items,
    node_name,
    optional_node,
    published_item,
)
from xmppd.pubsub.service import PubSubService
from xmppd.rsm import find_request, result_set

COMPANIONS = {ns.PUBSUB: frozenset(("configure", "publish-options", "options")),
              ns.PUBSUB_OWNER: frozenset()}


@dataclass(frozen=True)
class Reply:
    """The IQ result's payload (None: an empty result) and the notifications to route."""

    payload: domish.Element | None = None
    notifications: tuple[Notification, ...] = ()


Action = Callable[[PubSubService, JID, domish.Element, domish.Element], Awaitable[Reply]]


async def handle_iq(service: PubSubService, requester: JID, iq_type: str,
                    pubsub: domish.Element) -> Reply:
    """Run the request in ``pubsub`` (the IQ's ``<pubsub/>`` in either namespace) for
    ``requester`` (the IQ's full 'from'); PubSubError/StanzaError for the error reply."""
    action = _action(pubsub)
    handler = ACTIONS.get((iq_type, pubsub.uri, action.name))
    if handler is None:
        raise _not_offered(iq_type, pubsub.uri, action.name)
    return await handler(service, requester, action, pubsub)


def _action(pubsub: domish.Element) -> domish.Element:
    if pubsub.uri not in COMPANIONS or pubsub.name != "pubsub":
        raise PubSubError("bad-request", text="not a <pubsub/> request")
    ours = [each for each in pubsub.elements() if each.uri == pubsub.uri]
    # A companion alone is the action: <options/> is also a request of its own (§6.3).
    actions = [each for each in ours if each.name not in COMPANIONS[pubsub.uri]] or ours
    if len(actions) != 1:
        raise PubSubError("bad-request", text="a <pubsub/> request holds one action")
    return actions[0]


def _not_offered(iq_type: str, namespace: str, name: str) -> PubSubError:
    if name in ("options", "default") and namespace == ns.PUBSUB:
        return unsupported("subscription-options")
    if name == "default" and namespace == ns.PUBSUB_OWNER:
        return PubSubError("bad-request", text="<default/> is a get")
    return PubSubError("feature-not-implemented", text=f"no {iq_type} <{name}/> here")


def _pubsub(namespace: str, *children_: domish.Element) -> domish.Element:
    element = domish.Element((namespace, "pubsub"))
    for each in children_:
        element.addChild(each)
    return element


def _named(name: str, node: str | None, namespace: str = ns.PUBSUB) -> domish.Element:
    element = domish.Element((namespace, name))
    if node is not None:
        element["node"] = node
    return element


# ---------------------------------------------------------------------- publisher, subscriber


async def _publish(service, requester, action, pubsub) -> Reply:
    with_item, item_id, payload = published_item(action)
    options = form_in(child(pubsub, "publish-options"))
    published = await service.publish(requester, node_name(action), item_id, payload,
                                      with_item=with_item, options=options)
    publish = _named("publish", published.node)
    if published.item_id is not None:
        publish.addElement("item")["id"] = published.item_id
    return Reply(_pubsub(ns.PUBSUB, publish), published.notifications)


async def _retract(service, requester, action, pubsub) -> Reply:
    notifications = await service.retract(requester, node_name(action), item_ids(action),
                                          boolean_attribute(action, "notify"))
    return Reply(None, notifications)


async def _items(service, requester, action, pubsub) -> Reply:
    limit = service.limits.max_page
    rsm = find_request(pubsub, default_max=limit, limit=limit)
    page = await service.items(requester, node_name(action), item_ids=item_ids(action),
                               max_items=max_items(action), rsm=rsm)
    items = _named("items", page.node)
    for item in page.item_elements():
        items.addChild(item)
    reply = _pubsub(ns.PUBSUB, items)
    if page.page is not None:
        reply.addChild(result_set(first=page.page.first, last=page.page.last,
                                  count=page.page.total))
    return Reply(reply)


async def _subscribe(service, requester, action, pubsub) -> Reply:
    if child(pubsub, "options") is not None:
        raise unsupported("subscription-options")
    subscribed = await service.subscribe(requester, node_name(action), jid_attribute(action))
    return Reply(_pubsub(ns.PUBSUB, _subscription(subscribed.subscription, True)),
                 subscribed.notifications)


async def _unsubscribe(service, requester, action, pubsub) -> Reply:
    await service.unsubscribe(requester, node_name(action), jid_attribute(action),
                              action.getAttribute("subid"))
    return Reply()


async def _own_subscriptions(service, requester, action, pubsub) -> Reply:
    node = optional_node(action)
    listing = _named("subscriptions", node)
    for subscription in await service.subscriptions(requester, node):
        listing.addChild(_subscription(subscription, True))
    return Reply(_pubsub(ns.PUBSUB, listing))


async def _own_affiliations(service, requester, action, pubsub) -> Reply:
    node = optional_node(action)
    listing = _named("affiliations", node)
    for name, affiliation in await service.affiliations(requester, node):
        listing.addChild(_named("affiliation", name))["affiliation"] = affiliation
    return Reply(_pubsub(ns.PUBSUB, listing))


async def _create(service, requester, action, pubsub) -> Reply:
    form = form_in(child(pubsub, "configure"))
    name = await service.create(requester, optional_node(action), form)
    return Reply(_pubsub(ns.PUBSUB, _named("create", name)))


def _subscription(subscription: Subscription, with_node: bool,
                  namespace: str = ns.PUBSUB) -> domish.Element:
    element = _named("subscription", subscription.node if with_node else None, namespace)
    element["jid"] = subscription.jid
    element["subid"] = subscription.subid
    element["subscription"] = subscription.state
    return element


# ---------------------------------------------------------------------- owner


async def _get_config(service, requester, action, pubsub) -> Reply:
    name = node_name(action)
    configure = _named("configure", name, ns.PUBSUB_OWNER)
    configure.addChild((await service.get_config(requester, name)).to_element())
    return Reply(_pubsub(ns.PUBSUB_OWNER, configure))


async def _configure(service, requester, action, pubsub) -> Reply:
    form = form_in(action)
    if form is None:
        raise PubSubError("bad-request", text="<configure/> without a data form")
    return Reply(None, await service.configure(requester, node_name(action), form))


async def _default(service, requester, action, pubsub) -> Reply:
    default = domish.Element((ns.PUBSUB_OWNER, "default"))
    default.addChild(service.default_config().to_element())
    return Reply(_pubsub(ns.PUBSUB_OWNER, default))


async def _delete(service, requester, action, pubsub) -> Reply:
    redirect = child(action, "redirect")
    uri = redirect.getAttribute("uri") if redirect is not None else None
    return Reply(None, await service.delete(requester, node_name(action), uri))


async def _purge(service, requester, action, pubsub) -> Reply:
    return Reply(None, await service.purge(requester, node_name(action)))


async def _node_subscriptions(service, requester, action, pubsub) -> Reply:
    name = node_name(action)
    listing = _named("subscriptions", name, ns.PUBSUB_OWNER)
    for subscription in await service.node_subscriptions(requester, name):
        listing.addChild(_subscription(subscription, False, ns.PUBSUB_OWNER))
    return Reply(_pubsub(ns.PUBSUB_OWNER, listing))


async def _set_subscriptions(service, requester, action, pubsub) -> Reply:
    changes = _changes(action, "subscription")
    await service.set_subscriptions(requester, node_name(action), changes)
    return Reply()


async def _node_affiliations(service, requester, action, pubsub) -> Reply:
    name = node_name(action)
    listing = _named("affiliations", name, ns.PUBSUB_OWNER)
    affiliations = await service.node_affiliations(requester, name)
    for jid in sorted(affiliations):
        element = listing.addElement("affiliation")
        element["jid"] = jid
        element["affiliation"] = affiliations[jid]
    return Reply(_pubsub(ns.PUBSUB_OWNER, listing))


async def _set_affiliations(service, requester, action, pubsub) -> Reply:
    changes = _changes(action, "affiliation")
    await service.set_affiliations(requester, node_name(action), changes)
    return Reply()


def _changes(action: domish.Element, name: str) -> dict[JID, str]:
    """jid -> value of the ``<subscription/>``s or ``<affiliation/>``s of an owner's set."""
    changes = {}
    for element in children(action, name):
        value = element.getAttribute(name)
        if not value:
            raise PubSubError("bad-request", text=f"<{name}/> without '{name}'")
        changes[jid_attribute(element)] = value
    return changes


ACTIONS: dict[tuple[str, str, str], Action] = {
    ("set", ns.PUBSUB, "publish"): _publish,
    ("set", ns.PUBSUB, "retract"): _retract,
    ("set", ns.PUBSUB, "subscribe"): _subscribe,
    ("set", ns.PUBSUB, "unsubscribe"): _unsubscribe,
    ("set", ns.PUBSUB, "create"): _create,
    ("get", ns.PUBSUB, "items"): _items,
    ("get", ns.PUBSUB, "subscriptions"): _own_subscriptions,
    ("get", ns.PUBSUB, "affiliations"): _own_affiliations,
    ("get", ns.PUBSUB_OWNER, "configure"): _get_config,
    ("set", ns.PUBSUB_OWNER, "configure"): _configure,
    ("get", ns.PUBSUB_OWNER, "default"): _default,
    ("set", ns.PUBSUB_OWNER, "delete"): _delete,
    ("set", ns.PUBSUB_OWNER, "purge"): _purge,
    ("get", ns.PUBSUB_OWNER, "subscriptions"): _node_subscriptions,
    ("set", ns.PUBSUB_OWNER, "subscriptions"): _set_subscriptions,
    ("get", ns.PUBSUB_OWNER, "affiliations"): _node_affiliations,
    ("set", ns.PUBSUB_OWNER, "affiliations"): _set_affiliations,
}
