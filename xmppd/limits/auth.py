# -*- test-case-name: tests.unit.test_limits -*-
"""Back-off for password guessers: failure answers wait longer and longer.

Failures are counted per IP, per account and per (IP, account) pair, each count forgotten
after ``auth_window`` seconds without a new failure. The n-th failure in a row of the worst
of those counts is answered after ``auth_delay * 2**(n - 2)`` seconds (the first one at
once), at most ``auth_max_delay``. Only failure answers wait: a success is never delayed,
so however hard an attacker hammers an account, its owner, who knows the password, logs in
at once; and a success forgets the account's failures. The stream itself still ends after
``sasl_failures_per_stream`` failures (RFC 6120 §6.4.5).

XEP-0114 component handshakes use the same back-off in a table of their own
(``Limits.handshakes``, counted per IP, per component domain and per pair), asked before a
handshake is checked (``wait``): a guesser that does not wait for its answers, or opens many
connections at once, is slowed as well, and a correct handshake waits at most
``auth_max_delay``, so a guesser cannot lock the component out (xmppd.component.stream).

The tables are bounded (``MAX_ENTRIES``; the oldest entries go first), so a botnet of many
addresses costs memory only up to that bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from xmppd.errors import StreamError

MAX_ENTRIES = 100_000


class AuthThrottle:
    def __init__(self, delay: float, max_delay: float, window: float,
                 clock: Callable[[], float], max_entries: int = MAX_ENTRIES) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.window = window
        self.clock = clock
        self.max_entries = max_entries
        self._failures: OrderedDict[tuple, tuple[int, float]] = OrderedDict()

    def failed(self, ip: str, account: str | None) -> float:
        """Count one failure; how long its answer waits (seconds)."""
        now = self.clock()
        return self._delay(max(self._count(key, now) for key in _keys(ip, account)))

    def wait(self, ip: str, account: str | None) -> float:
        """How long a new attempt from ``ip`` for ``account`` must wait before it is checked:
        what its failure would wait, counted from the last failure in a row (seconds; 0.0
        when none is recent). Counts nothing."""
        now = self.clock()
        due = now
        for key in _keys(ip, account):
            count, last = self._failures.get(key, (0, now))
            if now - last <= self.window:
                due = max(due, last + self._delay(count + 1))
        return due - now

    def _delay(self, failures: int) -> float:
        """The back-off of the ``failures``-th failure in a row."""
        if not self.delay or failures <= 1:
            return 0.0
        return min(self.max_delay, self.delay * 2 ** (failures - 2))

    def succeeded(self, ip: str, account: str) -> None:
        """The account's password was proven from ``ip``: the account and that pair start
        afresh (only its owner can do this); the IP's own count stays."""
        self._failures.pop(("pair", ip, account), None)
        self._failures.pop(("account", account), None)

    def _count(self, key: tuple, now: float) -> int:
        count, last = self._failures.pop(key, (0, now))
        count = 1 if now - last > self.window else count + 1
        self._failures[key] = (count, now)  # now the newest entry
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)
        return count


def _keys(ip: str, account: str | None) -> list[tuple]:
    if account is None:
        return [("ip", ip)]
    return [("ip", ip), ("account", account), ("pair", ip, account)]


def answer_failure(exchange, answer, account: str | None, counted: bool,
                   max_failures: int) -> None:
    """Send a SASL failure ``answer`` on ``exchange.stream`` after the back-off delay, and end
    the stream at the per-stream limit (``[limits] sasl_failures_per_stream``, else
    ``max_failures``). While the answer waits the exchange is busy: a client that does not
    wait for it gets a stream error (xmppd.c2s.sasl_exchange)."""
    stream = exchange.stream
    guard = getattr(stream, "guard", None)
    if guard is not None:
        max_failures = guard.limits.config.sasl_failures_per_stream
    delay = guard.auth_failed(account) if guard is not None and counted else 0.0

    def deliver() -> None:
        exchange.busy = False
        if stream.disconnected:
            return
        stream.send(answer)
        if exchange.failures >= max_failures:
            stream.fail(StreamError("policy-violation", "too many failed authentications"))

    if not delay:
        deliver()
        return
    exchange.busy = True
    stream.reactor.callLater(delay, deliver)
