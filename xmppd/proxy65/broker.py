# -*- test-case-name: tests.unit.test_proxy65 -*-
"""The proxy's bookkeeping between SOCKS5 and XMPP: connections by stream hash, activation.

Both parties of a bytestream connect with the same DST.ADDR, SHA1(SID + requester JID +
target JID) (XEP-0065 §6.3.2): the first is the target, the second the requester, a third
is refused (§9: one target per stream). The requester's ``<activate/>`` names the SID and
the target; its 'from' completes the hash, so only the requester who initiated finds the
pair: another entity's hash names no stream (item-not-found, §6.3.3), and a stream with
one side connected is not-allowed. Each connection has ``timeout`` seconds to be activated;
at most ``max_waiting`` wait in all, ``max_waiting_per_ip`` from one address (else a single
host could hold every slot for ``timeout`` seconds and nobody else could transfer).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from xmppd.errors import StanzaError
from xmppd.logs import get_logger
from xmppd.proxy65.bucket import TokenBucket
from xmppd.proxy65.relay import Relay

log = get_logger(__name__)


def stream_hash(sid: str, requester: str, target: str) -> str:
    """The SOCKS5 DST.ADDR of a stream (JIDs already prepared), lower-case hex."""
    return hashlib.sha1((sid + requester + target).encode("utf-8")).hexdigest()


def _peer_ip(connection) -> str:
    """The address a connection comes from (its host, without the port)."""
    return getattr(connection.transport.getPeer(), "host", "")


class ActivationError(StanzaError):
    """An ``<activate/>`` the proxy refuses, with XEP-0065 §6.3.3's condition."""


@dataclass
class Waiting:
    """The connections of one stream hash until activation: target first."""

    connections: list = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0  # seconds from connecting to activation
    max_rate: int = 0  # bytes per second per user, 0: no cap
    max_transfers: int = 5  # active streams per user
    max_waiting: int = 1000  # connections waiting for activation, all users together
    max_waiting_per_ip: int = 10  # ... from one address


class Broker:
    """Waiting connections by hash, active relays by user."""

    def __init__(self, clock, limits: Limits) -> None:
        self.clock = clock
        self.limits = limits
        self.waiting: dict[str, Waiting] = {}
        self.pending: set = set()  # connected and not activated, paired or not
        self.pending_by_ip: dict[str, int] = {}  # how many of them each address holds
        self.active: dict[str, set[Relay]] = {}
        self.buckets: dict[str, TokenBucket] = {}

    def admit(self, connection) -> bool:
        """One more connection before its handshake: False beyond ``max_waiting`` or
        ``max_waiting_per_ip``."""
        ip = _peer_ip(connection)
        count = self.pending_by_ip.get(ip, 0)
        if (len(self.pending) >= self.limits.max_waiting
                or count >= self.limits.max_waiting_per_ip):
            return False
        self.pending.add(connection)
        self.pending_by_ip[ip] = count + 1
        return True

    def _release(self, connection) -> None:
        """``connection`` no longer waits (activated or gone)."""
        if connection not in self.pending:
            return
        self.pending.discard(connection)
        ip = _peer_ip(connection)
        count = self.pending_by_ip.get(ip, 0)
        if count <= 1:
            self.pending_by_ip.pop(ip, None)
        else:
            self.pending_by_ip[ip] = count - 1

    def attach(self, digest: str, connection) -> bool:
        """A connection asked for stream ``digest``; False when two are there already."""
        waiting = self.waiting.setdefault(digest, Waiting())
        if len(waiting.connections) >= 2:
            return False
        waiting.connections.append(connection)
        return True

    def lost(self, digest: str | None, connection) -> None:
        """A connection closed before activation (or was refused)."""
        self._release(connection)
        waiting = self.waiting.get(digest) if digest is not None else None
        if waiting is not None and connection in waiting.connections:
            waiting.connections.remove(connection)
            if not waiting.connections:
                del self.waiting[digest]

    def activate(self, sid: str, requester: str, target: str, user: str) -> Relay:
        """The requester's ``<activate/>``: the relay started, or an ActivationError."""
        digest = stream_hash(sid, requester, target)
        waiting = self.waiting.get(digest)
        if waiting is None:
            raise ActivationError("item-not-found",
                                  "no stream of this sid between you and that target")
        if len(waiting.connections) < 2:
            raise ActivationError("not-allowed", "only one party is connected")
        running = self.active.setdefault(user, set())
        if len(running) >= self.limits.max_transfers:
            raise ActivationError("resource-constraint",
                                  f"at most {self.limits.max_transfers} transfers at once")
        del self.waiting[digest]
        target_side, requester_side = waiting.connections
        for side in waiting.connections:
            self._release(side)
            side.activated()
        relay = Relay(target_side, requester_side, self._bucket(user), self.clock,
                      lambda: self._ended(user, relay))
        running.add(relay)
        log.info("bytestream activated for {user}", user=user)
        return relay

    def _bucket(self, user: str) -> TokenBucket | None:
        if not self.limits.max_rate:
            return None
        bucket = self.buckets.get(user)
        if bucket is None:
            bucket = self.buckets[user] = TokenBucket(self.clock, self.limits.max_rate)
        return bucket

    def _ended(self, user: str, relay: Relay) -> None:
        running = self.active.get(user, set())
        running.discard(relay)
        if not running:
            self.active.pop(user, None)
            self.buckets.pop(user, None)  # a fresh bucket is full: a second's burst at most
        log.info("bytestream of {user} ended after {count} bytes", user=user,
                 count=relay.relayed)

    def close(self) -> None:
        """Everything closed (the plugin stops)."""
        for connection in list(self.pending):
            connection.transport.abortConnection()
        for relays in list(self.active.values()):
            for relay in list(relays):
                relay.close()
