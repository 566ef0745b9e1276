"""The XML stream protocol shared by every kind of stream: parse, send, restart, close.

Subclasses decide what a stream header and each top-level element mean. Errors from the
parser or the subclass become stream errors (RFC 6120 §4.9); nothing escapes to the reactor.

Every byte a stream writes goes through ``write()``: while input is being handled the bytes
are queued and go out together (xmppd.stream.output), so before the transport changes under
the stream (STARTTLS) or goes away, ``flush()`` must run; ``start_tls()`` and the closing
methods here do that.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.logs import get_logger
from xmppd.stream.eager import send_eagerly
from xmppd.stream.output import batch
from xmppd.stream.starttls import start_tls
from xmppd.xml import STREAM_END, StreamHeader, StreamParser, serialize, stream_header

log = get_logger(__name__)

TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS handshake record (a ClientHello)
PEER_CLOSED = "peer-closed"  # end_reason: the peer sent </stream:stream>
CONNECTION_LOST = "connection-lost"  # end_reason: the connection went without a close
WORK = 1  # pause_reading's reason bit: an element's work is pending (xmppd.limits.guard: RATE)


class XmlStream(Protocol):
    content_ns = ns.CLIENT
    prefixes: dict[str, str] = {}  # namespace → prefix declared on our root (s2s: db)
    receiving = True  # we answer headers; False for streams we initiate
    close_timeout = 5.0  # how long we wait for the peer's </stream:stream> after ours
    guard = None  # the stream's limits (xmppd.limits.guard.StreamGuard), set by subclasses
    stream_end = STREAM_END  # our end of the stream as it goes out (RFC 7395: <close/>)
    # What only a closing stream or a rare one sets is a class default, not set by __init__:
    # CPython shares one key table among a class's instance dicts only while the class has
    # at most 30 attribute names, and a client stream had 32 (1.3 KiB more per session).
    close_sent = False
    disconnected = False
    end_reason: str | None = None  # why the stream ended, for the log: a stream error
    # condition, PEER_CLOSED or CONNECTION_LOST; the first cause wins
    _close_timer = None
    _peer_closed = False
    _backlog: deque | None = None  # elements parsed while waiting, in order; made when needed
    _waiting: defer.Deferred | None = None  # an element's work we wait for
    _paused = 0  # why reading is paused: WORK, RATE bits (pause_reading)

    def __init__(self, reactor, max_stanza_size: int) -> None:
        self.reactor = reactor
        self.max_stanza_size = max_stanza_size
        self.parser: StreamParser | None = None
        self.header_sent = False
        self.secure = False
        self.stream_id: str | None = None
        self.lang = "en"
        self.pending: list[bytes] = []  # output queued by the write batch
        self._first_read = True

    # -- connection events

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_address = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        # Without TCP_NODELAY, our stream features after STARTTLS wait behind the TLS 1.3
        # session tickets until the client's delayed ACK: ~40 ms added to every login
        # (measured by bench/). Writes are coalesced per read by the write batch instead.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        send_eagerly(self.transport)
        self.restart()
        if self.guard is not None:
            refused = self.guard.connected(self.receiving)
            if refused is not None:
                self._refuse(refused)

    def dataReceived(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        if self.guard is not None:
            self.guard.received(len(data))
        if self._first_read:
            self._first_read = False
            if data[:1] == TLS_HANDSHAKE:
                self._tls_on_plain_port()
                return
        self.handle_input(parser.feed, data)

    def handle_input(self, work: Callable[..., object], *args: object) -> None:
        """Run ``work(*args)`` on input as one write batch (xmppd.stream.output); what it
        raises ends the stream with a stream error (RFC 6120 §4.9), never reaching the
        reactor: its own, or internal-server-error (logged) for anything else."""
        batch.begin()
        try:
            work(*args)
        except StreamError as error:
            self.fail(error)
        except Exception:
            log.failure("unexpected error on stream from {peer}", peer=self.peer_address)
            self.fail(StreamError("internal-server-error"))
        finally:
            batch.end()

    def connectionLost(self, reason=None) -> None:
        self.disconnected = True
        if self.end_reason is None:
            self.end_reason = CONNECTION_LOST
        if self.guard is not None:
            self.guard.closed()
        self._drop_parser()
        self.pending.clear()
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        self.stream_closed(polite=self._peer_closed)

    # -- stream life

    def restart(self) -> None:
        """Expect a new stream header (start, after STARTTLS, after SASL success).

        The old parser is stopped, so bytes it still holds (for example plaintext pipelined
        after <starttls/>) are ignored, never processed.
        """
        if self._peer_closed:
            self._peer_closed = False
        self.header_sent = False
        self._drop_parser()
        self.parser = self.new_parser()

    def new_parser(self) -> StreamParser:
        """The parser for the next stream; a framed transport (xmppd.web) has its own."""
        return StreamParser(self._on_header, self._on_element, self._on_peer_close,
                            max_stanza_size=self.max_stanza_size)

    def _drop_parser(self) -> None:
        """No more input is handled by the current parser, not even the rest of its chunk."""
        if self.parser is not None:
            self.parser.stop()
            self.parser = None

    def _on_element(self, element: domish.Element) -> None:
        """Elements are handled strictly in order: while one's work (a Deferred) is pending,
        reading pauses and later elements wait, so nothing overtakes a durable write."""
        if self._waiting is not None:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(element)
            return
        result = self.element_received(element)
        if isinstance(result, defer.Deferred) and not result.called:
            self._waiting = result
            self.pause_reading(WORK)
            result.addBoth(self._work_done)

    def _work_done(self, result) -> None:
        if isinstance(result, Failure):
            log.failure("stanza handling failed on {peer}", result, peer=self.peer_address)
        self._waiting = None
        batch.begin()
        try:
            self._handle_backlog()
        finally:
            batch.end()
        if self._waiting is None:
            self.pause_reading(WORK, resume=True)

    def pause_reading(self, reason: int, resume: bool = False) -> None:
        """Pause (or resume) reading for ``reason``; reading goes on when no reason is left.
        The bytes wait in the kernel and the peer's socket, not in our memory."""
        before = self._paused
        self._paused = before & ~reason if resume else before | reason
        if self.disconnected:
            return
        if before and not self._paused:
            self.transport.resumeProducing()
        elif not before and self._paused:
            self.transport.pauseProducing()

    def _handle_backlog(self) -> None:
        while self._backlog and self._waiting is None:
            if self.disconnected or self.parser is None:
                self._backlog.clear()
                return
            try:
                self._on_element(self._backlog.popleft())
            except StreamError as error:
                self.fail(error)
            except Exception:
                log.failure("unexpected error on stream from {peer}", peer=self.peer_address)
                self.fail(StreamError("internal-server-error"))

    def _on_header(self, header: StreamHeader) -> None:
        if header.uri != ns.STREAMS or header.name != "stream":
            raise StreamError("invalid-namespace", "the root element must be a stream:stream")
        if header.default_namespace != self.content_ns:
            raise StreamError("invalid-namespace",
                              f"the content namespace must be {self.content_ns}")
        self.lang = header.attributes.get("xml:lang") or "en"
        self.header_received(header)

    def send_header(self, from_: str | None, to: str | None = None,
                    version: str | None = "1.0") -> None:
        """Our stream header; the receiving side names the stream (RFC 6120 §4.7.3) and
        answers with the version xmppd.stream.version chose (None: no attribute)."""
        self.stream_id = secrets.token_urlsafe(12) if self.receiving else None
        self.write(self.header_bytes(to, from_, version))
        self.header_sent = True

    def header_bytes(self, to: str | None, from_: str | None, version: str | None) -> bytes:
        """Our header as it goes out; a framed transport (RFC 7395 <open/>) overrides it."""
        return stream_header(to=to, from_=from_, id=self.stream_id, version=version,
                             content_ns=self.content_ns, lang=self.lang, prefixes=self.prefixes)

    def send(self, element: domish.Element) -> None:
        if not self.close_sent:
            self.write(serialize(element, self.content_ns, self.prefixes))

    def write(self, data: bytes) -> None:
        """Every byte of the stream goes out here, in order (see the module docstring)."""
        if not batch.queue(self, data):
            self.transport.write(data)
            if self.guard is not None:
                self.guard.wrote()

    def flush(self) -> None:
        """Write out what the batch queued for this stream."""
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            if not self.disconnected:
                self.transport.write(data)
                if self.guard is not None:
                    self.guard.wrote()

    def start_tls(self, context) -> None:
        """Switch the transport to TLS after what was written so far has gone out plain."""
        self.flush()
        start_tls(self.transport, context)
        send_eagerly(getattr(self.transport, "protocol", None))  # the TLS layer just inserted

    def fail(self, error: StreamError, logged: bool = True) -> None:
        """Send a stream error and end the stream at once (RFC 6120 §4.9.1.1); ``logged``
        False when the caller logs it its own way (refusals at a connection cap)."""
        if self.close_sent or self.disconnected:
            return
        if self.end_reason is None:
            self.end_reason = error.condition
        if logged and error.text:
            log.info("stream error {condition} to {peer}: {text}", condition=error.condition,
                     peer=self.peer_address, text=error.text)
        elif logged:
            log.info("stream error {condition} to {peer}", condition=error.condition,
                     peer=self.peer_address)
        if not self.header_sent:
            self.send_header(self.default_from())
        self.send(error.to_element())
        self._send_close()
        self._drop_parser()
        self._hang_up()

    def cut(self, error: StreamError, lost: bool = False) -> None:
        """End the stream with ``error`` and drop the connection at once, without waiting
        for the peer to read what is still queued (a slow or vanished reader). ``lost``: for
        the session, the connection was lost (a stream-management session may be resumed)."""
        if lost and self.end_reason is None:
            self.end_reason = CONNECTION_LOST
        self.fail(error)
        if not self.disconnected:
            self.transport.abortConnection()

    def output_overflow(self) -> None:
        """The peer does not read what we write (xmppd.limits.guard)."""
        self.cut(StreamError("policy-violation", "too much output waits for you: read faster"))

    def _refuse(self, reason: str) -> None:
        """Beyond the listener's connection caps: a stream error at once on a plain
        connection; a direct TLS one is dropped before we spend a TLS handshake on it. The
        gate logs refusals (xmppd.limits.gate), not one line per connection."""
        if self.guard.direct_tls(self.transport):
            self.end_reason = "policy-violation"
            self._drop_parser()
            self.transport.abortConnection()
            return
        self.fail(StreamError("policy-violation", reason), logged=False)  # the gate logs

    def close_stream(self, condition: str | None = None, text: str | None = None) -> None:
        """Close politely: optional stream error, our </stream:stream>, then wait for theirs."""
        if condition is not None:
            self.fail(StreamError(condition, text))
            return
        if self.close_sent or self.disconnected:
            return
        if not self.header_sent:
            self.send_header(self.default_from())
        self._send_close()
        self._close_timer = self.reactor.callLater(self.close_timeout, self._close_timed_out)

    def _send_close(self) -> None:
        self.stream_ending()
        self.write(self.stream_end)
        self.close_sent = True

    def _hang_up(self) -> None:
        self.flush()
        self.transport.loseConnection()

    def _close_timed_out(self) -> None:
        self.transport.abortConnection()

    def _tls_on_plain_port(self) -> None:
        """A TLS handshake where a stream header belongs: a client configured for direct TLS
        (XEP-0368, port 5223) on a STARTTLS port. XML cannot start with byte 0x16, so this is
        no guess; answering with XML would only be read as a broken TLS record."""
        log.info("TLS ClientHello from {peer} on a STARTTLS port: the client expects direct "
                 "TLS (XEP-0368); closing", peer=self.peer_address)
        self.end_reason = "tls-on-plain-port"
        self._drop_parser()
        self.transport.abortConnection()

    def _on_peer_close(self) -> None:
        self._peer_closed = True
        if self.end_reason is None:
            self.end_reason = PEER_CLOSED
        if not self.close_sent:
            self._send_close()
        self._drop_parser()
        self._hang_up()

    # -- for subclasses

    def default_from(self) -> str | None:
        """The 'from' of a header we must send before an early stream error."""
        return None

    def header_received(self, header: StreamHeader) -> None:
        raise NotImplementedError

    def element_received(self, element: domish.Element) -> None:
        raise NotImplementedError

    def stream_ending(self) -> None:
        """Called once, just before our </stream:stream> goes out."""

    def stream_closed(self, polite: bool) -> None:
        """Called once when the connection is gone."""
