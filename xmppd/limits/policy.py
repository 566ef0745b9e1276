# -*- test-case-name: tests.unit.test_limits -*-
"""The server-wide side of the limits: one per server, shared by every stream.

It holds what outlives a stream: the connection gates of the listeners, the authentication
back-off (clients' and components'), the hourly subscription budget of each account. Each
stream has a ``StreamGuard`` (xmppd.limits.guard) that asks it.
"""

from __future__ import annotations

from collections import OrderedDict

from xmppd.limits.auth import MAX_ENTRIES, AuthThrottle
from xmppd.limits.bucket import TokenBucket
from xmppd.limits.gate import ConnectionGate
from xmppd.limits.settings import DEFAULTS, LimitsConfig, StreamClass


class Limits:
    def __init__(self, config: LimitsConfig | None, reactor) -> None:
        self.config = config = config or DEFAULTS
        self.reactor = reactor
        self.gates: dict[str, ConnectionGate] = {}
        self.auth = AuthThrottle(config.auth_delay, config.auth_max_delay, config.auth_window,
                                 reactor.seconds)
        # XEP-0114 handshakes: the same back-off, its own table, so that clients mistyping
        # passwords from the component's address (loopback) do not slow the component
        self.handshakes = AuthThrottle(config.auth_delay, config.auth_max_delay,
                                       config.auth_window, reactor.seconds)
        self._subscriptions: OrderedDict[str, TokenBucket] = OrderedDict()

    def stream_class(self, name: str) -> StreamClass:
        """``[limits.c2s]`` or ``[limits.s2s]``."""
        return self.config.s2s if name == "s2s" else self.config.c2s

    def gate(self, name: str, kind: str) -> ConnectionGate:
        """The gate of the listener kind ``name`` (e.g. "c2s-direct-tls") of class ``kind``."""
        gate = self.gates.get(name)
        if gate is None:
            limits = self.stream_class(kind)
            gate = self.gates[name] = ConnectionGate(name, limits.unauthenticated_per_ip,
                                                     limits.unauthenticated_total,
                                                     self.config.exempt)
        return gate

    def may_subscribe(self, account: str) -> bool:
        """One more subscription request from ``account`` this hour? (counts it if so)"""
        per_hour = self.config.subscriptions_per_hour
        if not per_hour:
            return True
        bucket = self._subscriptions.pop(account, None)
        if bucket is None:
            bucket = TokenBucket(per_hour / 3600.0, per_hour, self.reactor.seconds)
        self._subscriptions[account] = bucket
        while len(self._subscriptions) > MAX_ENTRIES:
            self._subscriptions.popitem(last=False)
        return bucket.try_take(1)
