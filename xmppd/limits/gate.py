# -*- test-case-name: tests.unit.test_limits -*-
"""Caps on the unauthenticated connections of one listener: per IP and in total.

An unauthenticated connection costs memory, a TLS handshake and a parser, and gives nothing
back; a single host opening thousands of them would starve everyone else. Each listener kind
(c2s STARTTLS, c2s direct TLS, s2s, s2s direct TLS) has its own gate; a connection counts
from accept until it authenticates (c2s: SASL success, s2s: the first proven domain) or
goes. Addresses in ``[limits] exempt`` do not count against the per-IP cap (the total still
applies to them).

Refusals are logged by the gate, not one line per connection (a flood must not flood the
log): the first at once, then at most one line every ``LOG_EVERY`` seconds with the count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from xmppd.logs import get_logger

log = get_logger(__name__)

LOG_EVERY = 10.0  # seconds between two log lines about one gate's refusals


class ConnectionGate:
    def __init__(self, name: str, per_ip: int, total: int, exempt: Iterable = (),
                 what: str = "unauthenticated connections") -> None:
        self.name = name
        self.what = what  # what is counted, for the refusals' text (the web server: all)
        self.per_ip = per_ip
        self.total = total
        self.exempt = tuple(exempt)
        self.counts: dict[str, int] = {}
        self.open = 0
        self.refused = 0  # connections refused so far
        self._logged = 0  # ... of which the log has told
        self._logged_at: float | None = None

    def enter(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; the reason it is refused, or None."""
        if self.open >= self.total:
            return f"too many {self.what} to this server ({self.total})"
        count = self.counts.get(ip, 0)
        if count >= self.per_ip and not self._exempt(ip):
            return f"too many {self.what} from {ip} ({self.per_ip})"
        self.counts[ip] = count + 1
        self.open += 1
        return None

    def note_refusal(self, peer: str, reason: str, now: float) -> None:
        """Count a refused connection; log it unless a line went out less than LOG_EVERY
        seconds ago (the next line tells how many since)."""
        self.refused += 1
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY:
            return
        count = self.refused - self._logged
        log.info("{listener} listener refused {count} connection(s), the last from {peer}: "
                 "{reason}", listener=self.name, count=count, peer=peer, reason=reason)
        self._logged, self._logged_at = self.refused, now

    def leave(self, ip: str) -> None:
        """A connection counted by ``enter`` authenticated or went."""
        count = self.counts.get(ip, 0)
        if count <= 1:
            self.counts.pop(ip, None)
        else:
            self.counts[ip] = count - 1
        self.open -= 1

    def _exempt(self, ip: str) -> bool:
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)
