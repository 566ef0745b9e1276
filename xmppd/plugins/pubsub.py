# -*- test-case-name: tests.unit.test_pep_service_plugin -*-
"""A generic publish-subscribe service (XEP-0060) on a subdomain: ``pubsub.DOMAIN`` for
every host by default, on the same core as PEP (xmppd.pubsub).

``[plugins.pubsub]`` says where it runs (``domain``: a label, made a subdomain of every
host, or one domain), who may create nodes (``create``: "admins" of ``[server] admins``,
"local" accounts of our hosts, or "everyone", remote users included), the defaults of new
nodes (``default_access_model``, ``default_max_items``) and the limits of each service
(``max_nodes``, ``max_items_per_node``, ``max_item_size``).

Notifications go to the node's subscribers only: no +notify filtering, which is PEP's.
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from zope.interface import implementer

from xmppd import ns
from xmppd.interfaces import IRoster, IXmppdPlugin
from xmppd.pep.notify import send_copies
from xmppd.pep.options import LIMIT_KEYS, limits_of
from xmppd.pep.roster import roster_relationship
from xmppd.plugins._config import reject_unknown_keys
from xmppd.pubsub import PubSub
from xmppd.pubsub.access import CreatePolicy, admins, anyone, local_users
from xmppd.pubsub.config import ACCESS_MODELS, SERVICE_DEFAULTS, NodeConfig
from xmppd.pubsub.discovery import features, identity, node_info, node_items
from xmppd.pubsub.protocol import handle_iq
from xmppd.stanza import Stanza

CREATE_POLICIES = ("admins", "local", "everyone")


@implementer(IXmppdPlugin)
class PubSubPlugin:
    name = "pubsub"
    requires = ("roster",)

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ("domain", "create", "default_access_model",
                                  "default_max_items", *LIMIT_KEYS))
        create = ctx.option_str("create", "local", CREATE_POLICIES)
        policy: CreatePolicy = {"admins": lambda: admins(ctx.server_config.server.admins),
                                "local": lambda: local_users(ctx.domains),
                                "everyone": lambda: anyone}[create]()
        defaults = dataclasses.replace(
            SERVICE_DEFAULTS,
            access_model=ctx.option_str("default_access_model", "open", ACCESS_MODELS),
            max_items=ctx.option_int("default_max_items", SERVICE_DEFAULTS.max_items or 10,
                                     minimum=1))
        limits = limits_of(ctx)
        pubsub = PubSub(ctx.storage,
                        roster_relationship(lambda: ctx.query(IRoster), ctx.domains),
                        limits, clock=ctx.reactor.seconds)
        handlers = ServiceHandlers(ctx, pubsub, policy, defaults)
        service = ctx.service(ctx.option_str("domain", "pubsub"), title="Publish-Subscribe")
        kind = identity(pep=False)
        service.identity(kind.category, kind.type, "Publish-Subscribe")
        for feature in features(pep=False):
            service.feature(feature)
        for namespace in (ns.PUBSUB, ns.PUBSUB_OWNER):
            for type in ("get", "set"):
                service.iq(type, namespace, "pubsub", handlers.on_pubsub)
        service.disco_info(handlers.node_info)
        service.disco_items(handlers.items)


class ServiceHandlers:
    """IQs and disco of the service's domains; one PubSubService per request."""

    def __init__(self, ctx, pubsub: PubSub, may_create: CreatePolicy,
                 defaults: NodeConfig) -> None:
        self.ctx = ctx
        self.pubsub = pubsub
        self.may_create = may_create
        self.defaults = defaults

    def _service(self, stanza: Stanza):
        return self.pubsub.service(stanza.recipient.bare(), self.may_create, self.defaults)

    def on_pubsub(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._pubsub(stanza))

    async def _pubsub(self, stanza: Stanza):
        service = self._service(stanza)
        reply = await handle_iq(service, stanza.sender, stanza.type, stanza.payload())
        for notification in reply.notifications:
            send_copies(self.ctx.send, service.jid, notification.message,
                        notification.subscribers)
        return reply.payload

    def node_info(self, stanza: Stanza, node: str | None):
        if node is None:
            return None
        return defer.ensureDeferred(node_info(self._service(stanza), stanza.sender, node))

    def items(self, stanza: Stanza, node: str | None):
        if node is not None:
            return None
        return defer.ensureDeferred(node_items(self._service(stanza), stanza.sender))


pubsub = PubSubPlugin()
