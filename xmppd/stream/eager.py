# -*- test-case-name: tests.unit.test_eager_writes -*-
"""TCP connections that send at once instead of waiting for the reactor's next turn.

Twisted buffers every write, asks epoll to watch the socket for writability, sends on the
next reactor turn and then stops watching: two ``epoll_ctl`` calls and a trip through the
reactor for every burst of output. A server stream's socket is nearly always writable, so
when nothing is queued we try ``send()`` right away; only what the kernel does not take is
left to the reactor, as before. Measured by ``make bench`` (messages and presence fan-out).

The switch is made per connection by changing the class of Twisted's own transport object
(``tcp.Server``/``tcp.Client``) to a subclass that overrides one method, ``startWriting``,
which ``FileDescriptor.write`` calls after queueing data: STARTTLS, whose TLS layer writes
through ``FileDescriptor.write`` directly, is covered as well.

Twisted's TLS transport (``BufferingTLSTransport``) holds small writes back until the next
reactor turn (a ``callLater(0)`` per connection per turn) to make fewer, larger TLS records.
Our streams already coalesce their output per read (xmppd.stream.output), so for them that
wait only costs a timer and latency: their TLS layer writes straight through.
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.protocols import tls as twisted_tls
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol


class _EagerWrites:
    """Mixed into a Twisted TCP transport: send what was just queued if nothing was before."""

    def startWriting(self) -> None:
        # Only the bytes of this one write queued (nothing older waits for the reactor), and
        # no close or half-close in progress: then send them now, and register for
        # writability only if the kernel did not take them all.
        queued = self._tempDataBuffer
        if (len(queued) == 1 and self.offset == len(self.dataBuffer) and self.connected
                and not self.disconnecting and not self._writeDisconnecting
                and self.producer is None):
            data = queued[0]
            try:
                sent = self.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the reactor's own write reports the error on its next turn
            if sent == len(data):
                queued.clear()
                self._tempDataLen = 0
                return
            if sent:
                queued[0] = data[sent:]
                self._tempDataLen -= sent
        super().startWriting()


class EagerServer(_EagerWrites, tcp.Server):
    pass


class EagerClient(_EagerWrites, tcp.Client):
    pass


_EAGER = {tcp.Server: EagerServer, tcp.Client: EagerClient}


class _WriteThrough:
    """Stands in for a BufferingTLSTransport's aggregator: every write goes to TLS now."""

    def __init__(self, tls: TLSMemoryBIOProtocol) -> None:
        self.write = TLSMemoryBIOProtocol.write.__get__(tls)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _write_through(tls: BufferingTLSTransport) -> None:
    """Only while Twisted's own aggregator is in place (not yet, or no longer, connected: leave
    it); a Twisted without it is left as it is."""
    aggregator = getattr(tls, "_aggregator", None)
    if type(aggregator) is getattr(twisted_tls, "_AggregateSmallWrites", None):
        aggregator.flush()
        tls._aggregator = _WriteThrough(tls)
        tls.write = tls._aggregator.write


def send_eagerly(transport) -> bool:
    """Make every layer under ``transport`` write at once: a Twisted TLS transport writes
    through, the TCP connection sends eagerly. False when no TCP connection was found."""
    seen = 0
    while transport is not None and seen < 4:
        if isinstance(transport, BufferingTLSTransport):
            _write_through(transport)
        eager = _EAGER.get(type(transport))
        if eager is not None:
            transport.__class__ = eager
            return True
        if isinstance(transport, _EagerWrites):
            return True
        transport = getattr(transport, "transport", None)
        seen += 1
    return False
