# -*- test-case-name: tests.unit.test_limits -*-
"""One stream's limits: its place at the listener's gate, its shapers, its output bound.

The stream (xmppd.stream.xmlstream) calls the guard at a few points: when connected
(``connected``: the gate, TCP keepalive), for every read (``received``: the byte shaper
pauses reading with ``pauseProducing`` for as long as the bucket is in debt, so the bytes
wait in the peer's socket, not in our memory), for every write (``wrote``: a peer that reads
slower than we write stops being read once half of ``max_output_buffer`` waits for it, so
it cannot ask for more, and is cut once all of it does), when the peer authenticated and
when the connection is gone.
"""

from __future__ import annotations

import socket

from twisted.internet.abstract import FileDescriptor
from twisted.protocols.tls import TLSMemoryBIOProtocol

from xmppd.limits.bucket import TokenBucket
from xmppd.logs import get_logger

log = get_logger(__name__)

RATE = 2  # the reason bit XmlStream.pause_reading gets from the byte shaper
OUTPUT = 4  # ... and while half of max_output_buffer waits for the peer
OUTPUT_CHECK = 0.5  # seconds between looks at a paused stream's output


class StreamGuard:
    # one per stream, idle ones included: no per-instance dict
    __slots__ = ("limits", "stream", "kind", "bytes", "stanzas", "ip", "gate", "tcp",
                 "throttled", "overflowed", "output_paused", "heard", "silent_since",
                 "ping_sent", "_resume_timer")

    def __init__(self, limits, stream, kind: str) -> None:
        self.limits = limits
        self.stream = stream
        self.kind = kind  # "c2s" or "s2s"
        self._shape(limits.stream_class(kind))
        self.ip = "?"
        self.gate = None  # the gate that counts us while unauthenticated
        self.tcp: FileDescriptor | None = None
        self.throttled = 0  # how many times a shaper made this stream wait
        self.overflowed = False
        self.output_paused = False
        # liveness (xmppd.limits.liveness): set by every read, reset by the sweep
        self.heard = True
        self.silent_since = 0.0
        self.ping_sent: float | None = None
        self._resume_timer = None  # the byte shaper's wake-up, while reading is paused

    def _shape(self, shaping) -> None:
        """The byte and stanza buckets of the class ``shaping`` (a StreamClass)."""
        clock = self.limits.reactor.seconds
        self.bytes = (TokenBucket(shaping.bytes_per_second, shaping.burst_bytes, clock)
                      if shaping.bytes_per_second else None)
        self.stanzas = (TokenBucket(shaping.stanzas_per_second, shaping.burst_stanzas, clock)
                        if shaping.stanzas_per_second else None)

    # -- connection

    def connected(self, receiving: bool) -> str | None:
        """The connection is up; a connection we accepted (``receiving``) enters its
        listener's gate: the stream's ``listener`` name if it has one (say, WebSocket
        clients), else its kind and whether it is direct TLS. Returns why it is refused."""
        transport = self.stream.transport
        self.tcp = _tcp(transport)
        peer = transport.getPeer()
        self.ip = getattr(peer, "host", "?")
        self.silent_since = self.limits.reactor.seconds()
        _keepalive(self.tcp, self.limits.config.tcp_keepalive)
        if not receiving:
            return None
        listener = (getattr(self.stream, "listener", None)  # a stream kind of its own
                    or (f"{self.kind}-direct-tls" if self.direct_tls(transport) else self.kind))
        gate = self.limits.gate(listener, self.kind)
        refused = gate.enter(self.ip)
        if refused is None:
            self.gate = gate
        else:
            gate.note_refusal(self.stream.peer_address, refused, self.limits.reactor.seconds())
        return refused

    @staticmethod
    def direct_tls(transport) -> bool:
        """Whether the listener speaks TLS from the first byte (XEP-0368)."""
        return isinstance(transport, TLSMemoryBIOProtocol)

    def authenticated(self, account: str | None = None) -> None:
        """The peer proved who it is: it no longer counts at the gate, and an account of a
        class of its own ([limits.accounts]) is shaped by that class from now on."""
        self._leave_gate()
        if account is not None:
            self.limits.auth.succeeded(self.ip, account)
            config = self.limits.config
            name = config.accounts.get(account)
            if name is not None:
                self._shape(config.classes[name])

    def closed(self) -> None:
        self._leave_gate()

    def _leave_gate(self) -> None:
        if self.gate is not None:
            self.gate.leave(self.ip)
            self.gate = None

    # -- shapers

    def received(self, size: int) -> None:
        """``size`` bytes were read: pause reading while the byte bucket is in debt."""
        self.heard = True
        if self.bytes is None:
            return
        wait = self.bytes.take(size)
        if wait <= 0:
            return
        self._throttle("bytes", self.bytes.rate)
        timer = self._resume_timer
        if timer is not None and timer.active():
            timer.reset(wait)  # bytes that were already on their way: wait for them too
            return
        self.stream.pause_reading(RATE)
        self._resume_timer = self.limits.reactor.callLater(wait, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        if not self.stream.disconnected:
            self.stream.pause_reading(RATE, resume=True)

    def stanza_wait(self) -> float:
        """Seconds the next stanza of a bound session waits (0.0: handle it now)."""
        if self.stanzas is None:
            return 0.0
        wait = self.stanzas.take(1)
        if wait > 0:
            self._throttle("stanzas", self.stanzas.rate)
        return wait

    def _throttle(self, what: str, rate: float) -> None:
        if not self.throttled:  # once per stream: a flood must not flood the log too
            log.info("throttling {kind} stream from {peer}: more than {rate:g} {what}/s",
                     kind=self.kind, peer=self.stream.peer_address, rate=rate, what=what)
        self.throttled += 1

    def auth_failed(self, account: str | None) -> float:
        """A failed authentication; how long its answer waits (xmppd.limits.auth)."""
        return self.limits.auth.failed(self.ip, account)

    # -- output

    def wrote(self) -> None:
        """After a write: stop reading a peer that does not read what we write, and end its
        stream (on the next turn, not inside whatever routing is writing now) when too much
        waits for it."""
        if self.tcp is None or self.overflowed:
            return
        waiting = self._waiting()
        limit = self.limits.config.max_output_buffer
        if waiting > limit:
            self.overflowed = True
            log.info("{peer} reads too slowly: {waiting} bytes wait for it; ending its stream",
                     peer=self.stream.peer_address, waiting=waiting)
            self.limits.reactor.callLater(0, self.stream.output_overflow)
        elif waiting > limit // 2 and not self.output_paused:
            self.output_paused = True
            self.stream.pause_reading(OUTPUT)
            self.limits.reactor.callLater(OUTPUT_CHECK, self._check_output)

    def _check_output(self) -> None:
        """Read again once what waited for the peer is down to a quarter of the bound."""
        if self.stream.disconnected or self.overflowed:
            return
        if self._waiting() > self.limits.config.max_output_buffer // 4:
            self.limits.reactor.callLater(OUTPUT_CHECK, self._check_output)
            return
        self.output_paused = False
        self.stream.pause_reading(OUTPUT, resume=True)

    def _waiting(self) -> int:
        """Bytes written to the connection that the kernel has not taken yet."""
        tcp = self.tcp
        return len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen


def _tcp(transport) -> FileDescriptor | None:
    """The TCP connection under a stream's transport (under a TLS layer for direct TLS)."""
    for _ in range(4):
        if isinstance(transport, FileDescriptor):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def _keepalive(tcp: FileDescriptor | None, idle: float) -> None:
    """TCP keepalive probes after ``idle`` seconds of silence, 3 of them ``idle / 3`` apart
    (at most 30 s): a peer that vanished is noticed by the kernel even on a stream we never
    write to."""
    if tcp is None or not idle or not hasattr(tcp, "socket"):
        return
    sock = tcp.socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(idle))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL,
                            max(1, min(30, int(idle) // 3)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:
        pass  # not a TCP socket (a test transport, a UNIX socket): nothing to keep alive


def guard_for(owner, stream, kind: str) -> StreamGuard | None:
    """The guard of a new stream, from ``owner.limits`` (the server's Limits); None when the
    owner has none (streams built by unit tests around a stand-in server)."""
    from xmppd.limits.policy import Limits

    limits = getattr(owner, "limits", None)
    return StreamGuard(limits, stream, kind) if isinstance(limits, Limits) else None
