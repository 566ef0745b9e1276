"""Publish-subscribe (XEP-0060): one core for the PEP service of every account (XEP-0163,
XEP-0222, XEP-0223) and for pubsub domains.

The wiring holds one ``PubSub`` and asks it for the service an IQ is addressed to:
``pubsub.pep(account)`` or ``pubsub.service(domain, may_create)``. ``handle_iq`` (in
``xmppd.pubsub.protocol``) turns an IQ's ``<pubsub/>`` into a call of that service and its
outcome into the reply payload and the notifications to route. A PEP IQ handler::

    async def on_pubsub(stanza, origin):
        account = (stanza.recipient or stanza.sender).bare()
        reply = await handle_iq(pubsub.pep(account), stanza.sender, stanza.type,
                                stanza.payload())
        for notification in reply.notifications:
            ...  # copies from ``account`` to notification.subscribers, the account's own
                 # resources and the +notify contacts ``service.audience`` lets through
        return reply.payload  # a PubSubError raised above is the error reply
"""

from __future__ import annotations

import time
from collections.abc import Callable

from xmppd.im.keyed_queue import KeyedQueue
from xmppd.jid import JID
from xmppd.pubsub.access import Access, CreatePolicy, Relationship, no_relationship
from xmppd.pubsub.config import PEP_DEFAULTS, SERVICE_DEFAULTS, Limits, NodeConfig
from xmppd.pubsub.errors import PubSubError
from xmppd.pubsub.events import Notification
from xmppd.pubsub.service import PubSubService
from xmppd.pubsub.store import NodeStore

__all__ = ["Limits", "NodeConfig", "Notification", "PubSub", "PubSubError", "PubSubService"]


class PubSub:
    """What the services of one server share: storage, limits, the roster question for the
    'presence' and 'roster' access models, the clock, and the queue that keeps changes to
    one node in order. Services are cheap: make one per request."""

    def __init__(self, storage, relationship: Relationship = no_relationship,
                 limits: Limits | None = None, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.relationship = relationship
        self.limits = limits or Limits()
        self.clock = clock
        self._queue = KeyedQueue()

    def pep(self, account: JID) -> PubSubService:
        """The PEP service of ``account`` (XEP-0163): the account owns every node and alone
        creates them; nodes default to the 'presence' access model."""
        account = account.bare()
        return self._make(account, Access(self.relationship, account), PEP_DEFAULTS,
                          lambda requester: requester.bare() == account, pep=True)

    def service(self, jid: JID, may_create: CreatePolicy,
                defaults: NodeConfig = SERVICE_DEFAULTS) -> PubSubService:
        """A generic pubsub service at ``jid`` (a domain such as pubsub.example.org);
        ``may_create`` says who may make nodes (``xmppd.pubsub.access.anyone``,
        ``local_users(domains)``, ``admins(jids)``)."""
        return self._make(jid, Access(self.relationship), defaults, may_create, pep=False)

    def _make(self, jid: JID, access: Access, defaults: NodeConfig, may_create: CreatePolicy,
              pep: bool) -> PubSubService:
        store = NodeStore(self.storage, jid.full(), defaults)
        return PubSubService(jid, store, access, queue=self._queue, limits=self.limits,
                             defaults=defaults, may_create=may_create, pep=pep,
                             clock=self.clock)
