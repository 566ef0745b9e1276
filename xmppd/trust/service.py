# -*- test-case-name: tests.unit.test_server_trust -*-
"""ServerTrust: the server roster in memory and in storage, changed only by the rules of
xmppd.trust.server_roster; the IServerTrust provider.

The whole roster is read at start-up and kept in memory, so ``is_trusted_buddy`` answers at
once: the federation policy asks it for every stanza at buddies-only. Every change is written
to storage before the cache changes and before anything is sent, so what the peer and the
admins are told is never ahead of what survives a restart. Changes to one relationship take
turns (KeyedQueue); different relationships never wait for each other.

The service sends through ``send(local, peer, type)`` and tells admins through
``notify(local, text)``, both given by the plugin; it does no routing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet import defer
from zope.interface import implementer

from xmppd.im.keyed_queue import KeyedQueue
from xmppd.im.subscription import NONE, SubState
from xmppd.interfaces import IServerTrust
from xmppd.jid import InvalidJID, prepare_domain
from xmppd.logs import get_logger
from xmppd.storage.records import ServerPeer
from xmppd.trust import server_roster
from xmppd.trust.server_roster import Step, TrustError

log = get_logger(__name__)

DEFAULT_MAX_PENDING = 100


def state_of(peer: ServerPeer | None) -> SubState:
    """The RFC 6121 state a stored row stands for (NONE for no row)."""
    if peer is None:
        return NONE
    return SubState(peer.subscription, peer.pending_out, peer.pending_in)


def peer_row(peer: ServerPeer, available: bool) -> dict:
    """One relationship as admins see it (trust list, trust pending)."""
    return {
        "domain": peer.peer,
        "local": peer.local,
        "subscription": peer.subscription,
        "pending_in": peer.pending_in,
        "pending_out": peer.pending_out,
        "available": available,
        "state": str(state_of(peer)),
        "since": peer.since,
    }


@implementer(IServerTrust)
class ServerTrust:
    """The server roster of this server's ``domains`` (the first is the one that asks)."""

    def __init__(self, store, domains: Sequence[str], send: Callable[[str, str, str], object],
                 notify: Callable[[str, str], object], now: Callable[[], float],
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if not domains:
            raise ValueError("a server roster needs at least one domain of ours")
        self._store = store
        self._domains = tuple(domains)
        self._send = send
        self._notify = notify
        self._now = now
        self.max_pending = max_pending
        self._peers: dict[tuple[str, str], ServerPeer] = {}
        self._trusted: frozenset[str] = frozenset()
        self._links: dict[str, int] = {}  # peer domain -> authenticated s2s links up
        self._queue = KeyedQueue()

    @defer.inlineCallbacks
    def load(self):
        """Read the stored roster; call once before anything else."""
        peers = yield self._store.get_peers()
        self._peers = {(p.local, p.peer): p for p in peers}
        self._trusted = self._mutual()
        log.info("server roster loaded: {count} relationship(s), {buddies} trusted buddies",
                 count=len(self._peers), buddies=len(self._trusted))

    # ------------------------------------------------------------------ queries (synchronous)

    def is_trusted_buddy(self, domain: str) -> bool:
        if domain in self._trusted:
            return True
        prepared = _prepared_or_none(domain)
        return prepared is not None and prepared in self._trusted

    def buddies(self) -> list[tuple[str, str]]:
        return sorted(key for key, p in self._peers.items() if p.subscription == "both")

    def is_available(self, domain: str) -> bool:
        prepared = _prepared_or_none(domain)
        return self._links.get(prepared, 0) > 0

    def peers(self) -> list[dict]:
        return [peer_row(p, self.is_available(p.peer)) for _, p in sorted(self._peers.items())]

    def pending(self) -> list[dict]:
        return [row for row in self.peers() if row["pending_in"]]

    # ------------------------------------------------------------------ admin actions

    def request(self, domain: str, local: str | None = None) -> defer.Deferred:
        return self._admin(server_roster.request, domain, local, everywhere=False)

    def approve(self, domain: str, local: str | None = None) -> defer.Deferred:
        return self._admin(server_roster.approve, domain, local)

    def deny(self, domain: str, local: str | None = None) -> defer.Deferred:
        return self._admin(server_roster.deny, domain, local)

    def revoke(self, domain: str, local: str | None = None) -> defer.Deferred:
        return self._admin(server_roster.revoke, domain, local)

    def _admin(self, action: Callable[[SubState], Step], domain: str, local: str | None,
               everywhere: bool = True) -> defer.Deferred:
        """Apply ``action`` to the relationship(s) with ``domain``; fires with their rows.

        ``local`` None means every relationship with the peer (``everywhere``) or the first
        of our domains. Fails with the first TrustError when it applies to none of them.
        """
        try:
            peer = self._peer_domain(domain)
            if local is not None:
                locals_ = [self._our_domain(local)]
            elif everywhere:
                ours = sorted(ours for ours, other in self._peers if other == peer)
                locals_ = ours or [self._domains[0]]
            else:
                locals_ = [self._domains[0]]
        except ValueError as error:
            return defer.fail(error)
        return defer.ensureDeferred(self._admin_each(action, locals_, peer))

    async def _admin_each(self, action, locals_: list[str], peer: str) -> list[dict]:
        rows, errors = [], []
        for local in locals_:
            try:
                rows.append(await self._queue.run((local, peer), self._apply_admin, action,
                                                  local, peer))
            except TrustError as error:
                errors.append(error)
        if not rows:
            raise errors[0]
        return rows

    @defer.inlineCallbacks
    def _apply_admin(self, action, local: str, peer: str):
        state = state_of(self._peers.get((local, peer)))
        try:
            step = action(state)
        except TrustError as error:
            raise TrustError(f"{peer}: {error}") from None
        yield self._commit(local, peer, state, step)
        log.info("server trust: admin action {action} {peer} (for {local}): sent {sent}; "
                 "now {state}", action=action.__name__, peer=peer, local=local,
                 sent=", ".join(step.send) or "nothing", state=step.state)
        return self._row(local, peer)

    # ------------------------------------------------------------------ what peers send

    def received(self, local: str, peer: str, type: str) -> defer.Deferred:
        """A subscription presence of ``type`` from bare domain ``peer`` to our ``local``."""
        return self._queue.run((local, peer), self._receive, local, peer, type)

    @defer.inlineCallbacks
    def _receive(self, local: str, peer: str, type: str):
        state = state_of(self._peers.get((local, peer)))
        step = server_roster.receive(state, type)
        if step.state == state:
            log.debug("server trust: {type} from {peer} to {local} changes nothing ({state})",
                      type=type, peer=peer, local=local, state=state)
            return
        if step.state.pending_in and not state.pending_in and self._waiting() >= self.max_pending:
            log.warn("server trust: dropped a request from {peer}: {count} requests already "
                     "wait for an admin", peer=peer, count=self._waiting())
            return
        yield self._commit(local, peer, state, step)

    # ------------------------------------------------------------------ server presence

    def link_up(self, domain: str) -> None:
        """An authenticated s2s link with ``domain`` came up (events.S2S_LINK_UP)."""
        self._count_link(domain, +1)

    def link_down(self, domain: str) -> None:
        """One closed (events.S2S_LINK_DOWN)."""
        self._count_link(domain, -1)

    def _count_link(self, domain: str, change: int) -> None:
        peer = _prepared_or_none(domain)
        if peer is None:
            return
        before = self._links.get(peer, 0)
        after = max(0, before + change)
        if after:
            self._links[peer] = after
        else:
            self._links.pop(peer, None)
        if bool(before) != bool(after) and any(p == peer for _, p in self._peers):
            log.info("server presence: {peer} is {now}", peer=peer,
                     now="available" if after else "unavailable")

    # ------------------------------------------------------------------ the one way to change

    @defer.inlineCallbacks
    def _commit(self, local: str, peer: str, old: SubState, step: Step):
        """Store the new state, then update the cache, send, and tell the admins."""
        if step.state != old:
            if step.state == NONE:
                yield self._store.remove_peer(local, peer)
                self._peers.pop((local, peer), None)
            else:
                row = ServerPeer(local, peer, step.state.subscription, step.state.pending_out,
                                 step.state.pending_in, float(self._now()))
                yield self._store.put_peer(row)
                self._peers[(local, peer)] = row
            self._trusted = self._mutual()
        for type in step.send:
            self._send(local, peer, type)
        if step.news:
            self._notify(local, step.news.format(peer=peer, local=local))

    # ------------------------------------------------------------------ helpers

    def _row(self, local: str, peer: str) -> dict:
        stored = self._peers.get((local, peer)) or ServerPeer(local, peer, since=self._now())
        return peer_row(stored, self.is_available(peer))

    def _mutual(self) -> frozenset[str]:
        return frozenset(p.peer for p in self._peers.values() if p.subscription == "both")

    def _waiting(self) -> int:
        return sum(1 for p in self._peers.values() if p.pending_in)

    def _peer_domain(self, domain: str) -> str:
        prepared = _prepared(domain, "peer")
        if prepared in self._domains:
            raise TrustError(f"{prepared} is one of our own domains")
        return prepared

    def _our_domain(self, domain: str) -> str:
        prepared = _prepared(domain, "local")
        if prepared not in self._domains:
            raise TrustError(f"{prepared} is not a domain of this server "
                             f"(hosted: {', '.join(self._domains)})")
        return prepared


def _prepared(domain: str, what: str) -> str:
    try:
        return prepare_domain(domain)
    except (InvalidJID, TypeError) as error:
        raise TrustError(f"invalid {what} domain {domain!r}: {error}") from None


def _prepared_or_none(domain) -> str | None:
    try:
        return prepare_domain(domain)
    except (InvalidJID, TypeError):
        return None
