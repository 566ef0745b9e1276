# -*- test-case-name: tests.integration.test_websocket -*-
"""XMPP over WebSocket (RFC 7395): the client stream of TCP behind a message transport.

Autobahn does the WebSocket protocol on the web server (xmppd.http); the handshake must ask
for the ``xmpp`` subprotocol and come from an allowed Origin (xmppd.web.policy), or it is
refused with an HTTP error. Then a ``FramedClientStream`` (xmppd.c2s.stream.ClientStream with
RFC 7395 framing, xmppd.web.framing) runs the same negotiation, SASL, bind, limits and stream
errors as on TCP; its transport is a ``MessageTransport`` that turns each write into a text
message and pauses the TCP connection underneath when the stream pauses reading.

There is no STARTTLS: the web listener's TLS (or a proxy's) protects the stream, and a plain
connection on loopback counts as protected (xmppd.web.policy). Whitespace keepalives are not
allowed here; WebSocket pings (``ping_interval``) find dead connections instead.
"""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import LogLevel
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from xmppd.c2s.stream import ClientStream
from xmppd.errors import StreamError
from xmppd.logs import enabled, get_logger
from xmppd.web.framing import (
    CLOSE,
    MessageParser,
    close_element,
    frame_element,
    header_from_open,
    is_framing,
    open_element,
)
from xmppd.web.policy import WebPolicy, peer_address

log = get_logger(__name__)

SUBPROTOCOL = "xmpp"


class FramedClientStream(ClientStream):
    """A client stream whose every header, element and end is one WebSocket message."""

    stream_end = CLOSE
    transport_name = "websocket"  # for the metrics
    listener = "c2s-websocket"  # its own gate for unauthenticated connections (xmppd.limits)
    see_other_uri: str | None = None  # send every client there (RFC 7395 §3.6.1)

    def header_bytes(self, to: str | None, from_: str | None, version: str | None) -> bytes:
        return open_element(to, from_, self.stream_id, version, self.lang)

    def new_parser(self) -> MessageParser:
        """Each stream (up to the next ``<open/>``) parses its messages in one parser."""
        return MessageParser(self.max_stanza_size)

    def send(self, element) -> None:
        if not self.close_sent:
            self.write(frame_element(element))

    def flush(self) -> None:
        """What the write batch queued, still one message per piece."""
        if self.pending:
            pieces = list(self.pending)
            self.pending.clear()
            if not self.disconnected:
                for piece in pieces:
                    self.transport.write(piece)
                if self.guard is not None:
                    self.guard.wrote()

    def message_received(self, message: bytes) -> None:
        """One WebSocket message: an <open/>, a <close/> or one top-level element."""
        if self.parser is None or self.disconnected:
            return  # the stream ended: like the rest of a TCP read after our close
        if self.guard is not None:
            self.guard.received(len(message))
        self.handle_input(self._message, message)

    def _message(self, message: bytes) -> None:
        if not message.strip(b" \t\r\n"):
            return  # a whitespace keepalive: not allowed by RFC 7395, but harmless
        element = self.parser.parse(message)
        if is_framing(element, "close"):
            self._on_peer_close()
        elif not self.header_sent:
            if not is_framing(element, "open"):
                raise StreamError("bad-format", "the stream starts with <open/> (RFC 7395)")
            if self.see_other_uri is not None:
                self._redirect()
                return
            self._on_header(header_from_open(element))
        elif is_framing(element, "open"):
            raise StreamError("bad-format", "<open/> inside an open stream")
        else:
            self._on_element(element)

    def _redirect(self) -> None:
        log.info("sent the WebSocket client {peer} to {uri}", peer=self.peer_address,
                 uri=self.see_other_uri)
        self.end_reason = "see-other-uri"
        self.write(close_element(self.see_other_uri))
        self.close_sent = True
        self._drop_parser()
        self._hang_up()


class MessageTransport:
    """The stream's transport: a write is a text message, the close a WebSocket close."""

    def __init__(self, protocol: WebSocketServerProtocol, peer) -> None:
        self.protocol = protocol
        self.transport = protocol.transport  # the TCP (or TLS) connection, for the limits
        self.peer = peer
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            self.protocol.sendMessage(data, isBinary=False)

    def loseConnection(self) -> None:  # noqa: N802 (Twisted's names)
        if not self.disconnecting:
            self.disconnecting = True
            self.protocol.sendClose(code=1000)

    def abortConnection(self) -> None:  # noqa: N802
        self.disconnecting = True
        self.protocol.transport.abortConnection()

    def pauseProducing(self) -> None:  # noqa: N802
        self.protocol.transport.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        self.protocol.transport.resumeProducing()

    def getPeer(self):  # noqa: N802
        return self.peer

    def getHost(self):  # noqa: N802
        return self.protocol.transport.getHost()


class _AutobahnLog:
    """Autobahn's own log lines one level down: a refused handshake or an oversized message
    is the client's doing, and our stream's lines already say what happened. Autobahn logs
    every frame at debug level: unless debug is on, those calls return at once (building
    and filtering them took about a tenth of the server's time per message, ``make bench``)."""

    _NAMESPACE = "xmppd.web.autobahn"

    def __init__(self) -> None:
        self._log = get_logger(self._NAMESPACE)

    def failure(self, *args, **kwargs) -> None:
        self._log.failure(*args, **kwargs)

    def error(self, *args, **kwargs) -> None:
        self._log.warn(*args, **kwargs)

    def warn(self, *args, **kwargs) -> None:
        self._log.info(*args, **kwargs)

    def info(self, *args, **kwargs) -> None:
        self.debug(*args, **kwargs)

    def debug(self, *args, **kwargs) -> None:
        if enabled(self._NAMESPACE, LogLevel.debug):
            self._log.debug(*args, **kwargs)

    trace = debug

    def __getattr__(self, level: str):
        return self.debug  # any other level txaio may add


class XmppWebSocket(WebSocketServerProtocol):
    """One WebSocket connection: the handshake's checks, then messages to and from its
    stream."""

    log = _AutobahnLog()
    stream: FramedClientStream | None = None
    client = None

    def onConnect(self, request):  # noqa: N802 (Autobahn's names)
        if SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(400, "XMPP over WebSocket needs the 'xmpp' subprotocol")
        policy: WebPolicy = self.factory.policy
        origin = request.headers.get("origin")
        if not policy.origin_allowed(origin):
            log.info("refused a WebSocket from a page of {origin!r}", origin=origin[:100])
            raise ConnectionDeny(403, "this page's origin may not use this server")
        peer = self.transport.getPeer()
        self.client = policy.client(getattr(peer, "host", "?"),
                                    isinstance(self.transport, TLSMemoryBIOProtocol),
                                    request.headers)
        self._port = getattr(peer, "port", 0)
        return SUBPROTOCOL

    def onOpen(self) -> None:  # noqa: N802
        stream = self.factory.new_stream(self.client.secure)
        stream.see_other_uri = self.factory.see_other_uri
        self.stream = stream
        stream.makeConnection(MessageTransport(self, peer_address(self.client.address,
                                                                  self._port)))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
        if self.stream is None:
            return
        if isBinary:
            self.stream.fail(StreamError("bad-format", "XMPP goes in text messages"))
            return
        self.stream.message_received(payload)

    def onClose(self, wasClean: bool, code, reason) -> None:  # noqa: N802, N803
        stream, self.stream = self.stream, None
        if stream is not None and not stream.disconnected:
            stream.connectionLost(Failure(ConnectionDone() if wasClean else ConnectionLost()))


class XmppWebSocketFactory(WebSocketServerFactory):
    protocol = XmppWebSocket

    def __init__(self, new_stream, policy: WebPolicy, max_message: int,
                 ping_interval: float, see_other_uri: str | None = None) -> None:
        super().__init__()
        self.new_stream = new_stream  # secure -> FramedClientStream
        self.policy = policy
        self.see_other_uri = see_other_uri
        self.setProtocolOptions(
            # a message beyond twice the stanza limit is not even buffered (close 1009);
            # one beyond the limit gets the stream's policy-violation
            maxMessagePayloadSize=2 * max_message, maxFramePayloadSize=2 * max_message,
            autoPingInterval=ping_interval or None, autoPingTimeout=ping_interval or None,
            openHandshakeTimeout=30, closeHandshakeTimeout=5, trustXForwardedFor=0)


def websocket_resource(factory: XmppWebSocketFactory) -> WebSocketResource:
    return WebSocketResource(factory)
