# -*- test-case-name: tests.unit.test_idle_parsers -*-
"""Idle client streams give their XML parser's and their TLS layer's spare memory back.

Most client streams are idle most of the time, and an expat parser holds about 12 KiB of
buffers and tables between stanzas (``make bench``: a third of what an idle TLS session
costs). A timer asks each stream's parser to let go of expat when nothing arrived for a
whole interval; the next bytes start a fresh one (about 5 µs, once). A busy stream only has
a flag reset. When a parser goes, the stream's TLS connection gives back what its memory
BIOs grew to (xmppd.stream.tls.release_buffers: 4.5 KiB an idle session, more after bursts).

The same sweep pings bound sessions that went silent and cuts those that do not answer
(xmppd.limits.liveness): a half-open connection releases its session within
``[limits] ping_after + ping_timeout`` (plus a sweep or two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.application.internet import TimerService

from xmppd.limits.liveness import check_liveness
from xmppd.stream.tls import release_buffers, tls_connection

# Seconds between sweeps: a stream idle for one to two of them gives its parser back.
SWEEP_INTERVAL = 2.0


def release_idle_parsers(streams: Iterable) -> int:
    """One sweep; how many parsers were released."""
    released = 0
    for stream in streams:
        parser = stream.parser
        if parser is not None and parser.release_if_idle():
            released += 1
            transport = getattr(stream, "transport", None)
            if transport is not None and not stream.disconnected:
                release_buffers(tls_connection(transport))
    return released


def idle_parser_sweeper(streams: Callable[[], Iterable], reactor,
                        interval: float = SWEEP_INTERVAL) -> TimerService:
    """A service that sweeps the streams ``streams()`` gives, every ``interval`` seconds."""

    def sweep() -> None:
        release_idle_parsers(streams())
        check_liveness(list(streams()), reactor.seconds())

    sweeper = TimerService(interval, sweep)
    sweeper.clock = reactor
    return sweeper
