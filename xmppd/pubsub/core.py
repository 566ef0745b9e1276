# -*- test-case-name: tests.unit.test_pubsub_service -*-
"""What every pubsub operation leans on: finding a node, running changes to one node in
order, making nodes within the owner's quota, and choosing who gets a notification."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TypeVar

from twisted.internet import defer

from xmppd.im.keyed_queue import KeyedQueue
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.pubsub.access import Access, CreatePolicy
from xmppd.pubsub.config import Limits, NodeConfig, check_limits
from xmppd.pubsub.errors import PubSubError, node_not_found, shown
from xmppd.pubsub.events import Notification
from xmppd.pubsub.model import MAX_NODE_NAME, Node
from xmppd.pubsub.store import NodeStore

_T = TypeVar("_T")

CREATING = ""  # the queue key under which an owner's nodes are made and counted, one by one


class ServiceCore:
    """One pubsub service: ``jid`` is the account of a PEP service or a pubsub domain.

    Changes to a node are read, decided on and written back over several storage round
    trips, so they run one at a time per (service, node) through a queue the services of a
    server share; reads do not wait. Creating nodes also queues per service, so that two
    publishes cannot both take the last node of the quota.
    """

    def __init__(self, jid: JID, store: NodeStore, access: Access, *, queue: KeyedQueue,
                 limits: Limits, defaults: NodeConfig, may_create: CreatePolicy,
                 pep: bool, clock: Callable[[], float]) -> None:
        self.jid = jid
        self.store = store
        self.access = access
        self.limits = limits
        self.defaults = defaults
        self.pep = pep
        self._queue = queue
        self._may_create = may_create
        self._clock = clock

    # ------------------------------------------------------------------ nodes

    async def node(self, name: str) -> Node:
        """The node ``name``; ``item-not-found`` when there is none."""
        node = await self.store.get_node(check_node_name(name))
        if node is None:
            raise node_not_found(name)
        return node

    async def serial(self, name: str, operation: Callable[..., Awaitable[_T]], *args) -> _T:
        """Run ``operation(*args)`` after the other changes queued for node ``name``."""
        return await self._in_queue(name, operation, *args)

    def _in_queue(self, key: Hashable, operation, *args) -> defer.Deferred:
        return self._queue.run((self.jid, key),
                               lambda: defer.ensureDeferred(operation(*args)))

    async def new_node(self, requester: JID, name: str, config: NodeConfig) -> Node:
        """Make node ``name`` for ``requester``; the caller holds the node's queue."""
        return await self._in_queue(CREATING, self._new_node, requester, name, config)

    async def _new_node(self, requester: JID, name: str, config: NodeConfig) -> Node:
        if not self._may_create(requester):
            raise PubSubError("forbidden", text="you may not create nodes here")
        if await self.store.get_node(name) is not None:
            raise PubSubError("conflict", text=f"node '{shown(name)}' exists")
        if await self.store.count_nodes() >= self.limits.max_nodes:
            raise PubSubError("not-allowed", "max-nodes-exceeded",
                              f"at most {self.limits.max_nodes} nodes here")
        # The PEP account owns every node without being listed; elsewhere the creator owns it.
        affiliations = {} if self.pep else {requester.bare().full(): "owner"}
        node = Node(name, check_limits(config, self.limits), affiliations)
        await self.store.create_node(node)
        return node

    def now(self) -> float:
        return self._clock()

    # ------------------------------------------------------------------ recipients

    async def notification(self, kind: str, node: Node, message,
                           only: Iterable[JID] | None = None) -> Notification:
        """A notification of ``node`` for its subscribers that may still read it (or for
        ``only`` these JIDs, as far as they may)."""
        if only is None:
            subscriptions = await self.store.subscriptions(node.name)
            only = [jid for jid in (_jid(sub.jid) for sub in subscriptions
                                    if sub.state == "subscribed") if jid is not None]
        return Notification(kind, node, message, tuple(await self.audience(node, only)))

    async def audience(self, node: Node, candidates: Iterable[JID]) -> list[JID]:
        """Those of ``candidates`` the access model lets read ``node``: for the wiring's
        +notify contacts (XEP-0163 §4.3), and for subscribers whose access has gone since
        they subscribed (a contact removed from the roster, a node made private)."""
        return [jid for jid in candidates if await self.access.may_read(node, jid)]

    async def visible_nodes(self, requester: JID) -> list[Node]:
        """The nodes ``requester`` may subscribe to or read: what disco#items of the service
        lists for it (XEP-0163 §6: never a node the asker may not see)."""
        return [node for node in await self.store.nodes()
                if await self.access.may_read(node, requester)]


def check_node_name(name: str) -> str:
    if not name:
        raise PubSubError("bad-request", "nodeid-required")
    if len(name) > MAX_NODE_NAME:
        raise PubSubError("not-acceptable", text=f"node names are at most {MAX_NODE_NAME} "
                          "characters here")
    return name


def _jid(text: str) -> JID | None:
    try:
        return parse_jid(text)
    except InvalidJID:
        return None
