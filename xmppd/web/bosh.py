# -*- test-case-name: tests.integration.test_bosh -*-
"""BOSH (XEP-0124, XEP-0206): the client stream of TCP behind long-polled HTTP requests.

A session is a ``BoshClientStream`` (xmppd.c2s.stream.ClientStream: the same negotiation,
SASL, bind, limits and stream errors) whose transport is its ``BoshSession``. Each POST is a
``<body/>`` wrapper with a request id (rid); its children go to the stream strictly in rid
order: a request that arrives early (a gap before it) waits for the missing ones, within the
window of ``requests`` (hold + 1); beyond it, or below what was answered, the session ends
with ``item-not-found``. A request repeated after a broken connection gets the answer it
had (the last ``requests`` answers are kept). The server holds up to ``hold`` requests and
answers one when it has something to say, when a newer request needs its place, or after
``wait`` seconds empty; with no request held for ``inactivity`` seconds the session is gone
(as a lost TCP connection: stream management may keep it). More than ``requests`` requests
at once is over-activity (``policy-violation``), so is a polling session's (hold 0) empty
request sooner than ``polling`` seconds after the last, and a session beyond the per-address
cap. A client may ask for a pause (XEP-0124 §10) of up to ``max_pause`` seconds, advertised as
``maxpause``: its held requests are answered at once (the pause request with no payload) and
the inactivity timer runs for the pause instead, until its next request.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure
from twisted.web import resource, server

from xmppd import ns
from xmppd.c2s.stream import ClientStream
from xmppd.errors import StreamError
from xmppd.logs import get_logger
from xmppd.web.framing import frame_element
from xmppd.web.policy import WebPolicy, peer_address
from xmppd.xml import StreamHeader, StreamParser
from xmppd.xml.serializer import escape_attribute

log = get_logger(__name__)

HTTPBIND = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
TERMINATE = b"<!-- terminate -->"  # the stream's end, as the session's transport sees it
_RESTART = "{%s}restart" % XBOSH
_VERSION = "{%s}version" % XBOSH


@dataclass(frozen=True)
class BoshSettings:
    max_wait: int = 60  # seconds a request may be held
    max_hold: int = 1
    inactivity: int = 60
    polling: int = 2
    max_sessions_per_address: int = 10
    max_pause: int = 120  # the longest pause a client may ask for (XEP-0124 §10), seconds


class BoshError(Exception):
    """A binding condition (XEP-0124 §17): the session, if any, ends with it."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


class BoshClientStream(ClientStream):
    """A client stream whose output is collected by its session, element by element."""

    stream_end = TERMINATE
    transport_name = "bosh"  # for the metrics
    listener = "c2s-bosh"  # its own gate for unauthenticated connections (xmppd.limits)

    def header_bytes(self, to, from_, version) -> bytes:
        return b""  # the session's response carries the stream's attributes (authid)

    def send(self, element) -> None:
        if not self.close_sent:
            self.write(frame_element(element))

    def flush(self) -> None:
        if self.pending:
            pieces = list(self.pending)
            self.pending.clear()
            if not self.disconnected:
                for piece in pieces:
                    self.transport.write(piece)

    def elements_received(self, header: StreamHeader | None, elements: list) -> None:
        """One request's content, in rid order: a (re)start header, then its children."""
        if self.parser is None or self.disconnected:
            return
        self.handle_input(self._elements, header, elements)

    def _elements(self, header: StreamHeader | None, elements: list) -> None:
        if header is not None:
            self._on_header(header)
        for element in elements:
            if self.parser is None:
                break
            self._on_element(element)


class BoshSession:
    """One BOSH session; the transport of its stream."""

    def __init__(self, manager: BoshManager, sid: str, rid: int, wait: int, hold: int,
                 address: str) -> None:
        self.manager = manager
        self.reactor = manager.reactor
        self.sid = sid
        self.next_rid = rid + 1  # the next rid whose content goes to the stream
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.address = address
        self.peer = peer_address(address, 0)
        self.stream: BoshClientStream | None = None
        self.held: deque = deque()  # [rid, request, wait timer], oldest first
        self.early: dict[int, tuple] = {}  # rid -> (request, header, elements), ahead of a gap
        self.answers: dict[int, bytes] = {}  # the last `requests` answers, for retransmission
        self.out: list[bytes] = []  # elements waiting for a request to carry them
        self.out_size = 0  # their bytes: bounded like a slow TCP reader's ([limits])
        self.overflowed = False
        self.creation: str | None = None  # the attributes of the session's first answer
        self.ended = False
        self.terminating = False
        self.disconnecting = False
        self._delivery = None
        self._inactivity = None
        self._last_poll: float | None = None  # when the last empty request came (hold 0)
        self.paused: int | None = None  # the pause asked for, until the next request

    # -- the stream's transport

    def write(self, data: bytes) -> None:
        if data == TERMINATE:
            self.terminating = True
        elif data:
            self.out.append(data)
            self.out_size += len(data)
            self._check_output()
        if self._delivery is None and not self.ended:
            self._delivery = self.reactor.callLater(0, self._deliver)

    def _check_output(self) -> None:
        """A client that does not come for what waits for it is a slow reader: beyond
        ``[limits] max_output_buffer`` its stream ends (policy-violation, on the next turn),
        as a TCP client's does, instead of the session's memory growing without end."""
        guard = self.stream.guard if self.stream is not None else None
        if guard is None or self.overflowed:
            return
        if self.out_size > guard.limits.config.max_output_buffer:
            self.overflowed = True
            log.info("BOSH session {sid} of {peer}: {size} bytes wait for requests that do "
                     "not come; ending its stream", sid=self.sid, peer=self.address,
                     size=self.out_size)
            self.out.clear()  # what it never came for; the stream error replaces it
            self.out_size = 0
            self.reactor.callLater(0, self.stream.output_overflow)

    def loseConnection(self) -> None:  # noqa: N802 (Twisted's names)
        self.terminating = True
        self.disconnecting = True
        if self._delivery is None and not self.ended:
            self._delivery = self.reactor.callLater(0, self._deliver)

    def abortConnection(self) -> None:  # noqa: N802
        self.terminating = True
        self._deliver()
        self._end(lost=True)

    def pauseProducing(self) -> None:  # noqa: N802
        pass  # each request's content is small and bounded; the order is kept by the stream

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def getPeer(self):  # noqa: N802
        return self.peer

    def getHost(self):  # noqa: N802
        return self.peer

    # -- requests

    def receive(self, request, rid: int, attributes: dict, elements: list, size: int) -> None:
        """A request of this session (not its first), ``size`` bytes long."""
        self._cancel_inactivity()
        self.paused = None  # a new request ends a pause (XEP-0124 §10)
        self.heard(size)
        if rid < self.next_rid:
            self._repeated(request, rid)
            return
        if rid in self.early:  # sent again while it waits for a gap: the new one waits
            previous = self.early[rid]
            self.early[rid] = (request, *previous[1:])
            return
        if self.hold == 0 and not elements and not attributes.get("type"):
            self._polled()
        if rid >= self.next_rid + self.requests:
            raise BoshError("item-not-found")
        pause = _pause_asked(attributes, self.manager.settings.max_pause)
        # One request more is allowed to pause or terminate (XEP-0124 §11).
        extra = 1 if pause is not None or attributes.get("type") == "terminate" else 0
        if len(self.held) + len(self.early) >= self.requests + extra:
            raise BoshError("policy-violation")  # over-activity (XEP-0124 §11)
        if attributes.get("type") == "terminate":
            self.early[rid] = (request, "terminate", elements)
        elif pause is not None:
            self.early[rid] = (request, pause, elements)
        elif attributes.get(_RESTART) == "true":
            self.early[rid] = (request, _header(attributes), elements)
        else:
            self.early[rid] = (request, None, elements)
        while self.next_rid in self.early and not self.ended:
            rid = self.next_rid
            request, header, elements = self.early.pop(rid)
            self.next_rid += 1
            self._hold(rid, request)
            if header == "terminate":
                self.stream.elements_received(None, elements)
                if self.stream is not None and not self.stream.disconnected:
                    self.stream._on_peer_close()
                self.terminating = True
            elif isinstance(header, int):
                self.stream.elements_received(None, elements)
                self._pause(header)
            else:
                self.stream.elements_received(header, elements)
        self._deliver()

    def _pause(self, seconds: int) -> None:
        """XEP-0124 §10: every held request is answered now, the pause request (just held,
        the newest) without payload: what is waiting for the client stays for its next
        request; until that one, the inactivity timer runs for ``seconds``."""
        pause_request = self.held.pop()
        while self.held:
            self._answer_oldest()
        self._send(pause_request, b"")
        self.paused = seconds

    def heard(self, size: int) -> None:
        """For the stream's limits: the client is alive (no ping needed), and its bytes."""
        guard = self.stream.guard if self.stream is not None else None
        if guard is not None:
            guard.received(size)

    def _polled(self) -> None:
        """An empty request of a polling session (hold 0): not sooner than ``polling``
        seconds after the last one (XEP-0124 §11; the first one is free)."""
        now = self.reactor.seconds()
        last, self._last_poll = self._last_poll, now
        if last is not None and now - last < self.manager.settings.polling:
            raise BoshError("policy-violation")

    def _repeated(self, request, rid: int) -> None:
        """A rid already handled: its connection broke; the same answer, or a new wait."""
        for entry in self.held:
            if entry[0] == rid:  # still unanswered: the new connection takes its place
                entry[1] = request
                _watch(request, self, rid)
                return
        answer = self.answers.get(rid)
        if answer is None:
            raise BoshError("item-not-found")
        _respond(request, answer)

    def start(self, request, rid: int, header: StreamHeader, elements: list) -> None:
        self._hold(rid, request)
        self.stream.elements_received(header, elements)

    def _hold(self, rid: int, request) -> None:
        timer = self.reactor.callLater(self.wait, self._expired, rid)
        self.held.append([rid, request, timer])
        _watch(request, self, rid)

    def _expired(self, rid: int) -> None:
        if self.held and self.held[0][0] == rid:
            self._answer_oldest()
        else:
            for entry in self.held:
                if entry[0] == rid:
                    self.held.remove(entry)
                    self._send(entry, b"")
                    break
        self._idle_check()

    def dropped(self, rid: int, request) -> None:
        """A held request's connection went away: its answer waits for a retransmission."""
        for entry in self.held:
            if entry[0] == rid and entry[1] is request:
                entry[1] = None
        self._idle_check()

    def _deliver(self) -> None:
        self._delivery = None
        if self.ended:
            return
        if (self.out or self.terminating) and self.held:
            self._answer_oldest()
        if self.terminating and not self.out:
            while self.held:
                self._answer_oldest()
            self._end(lost=False)
            return
        while len(self.held) > self.hold:  # the oldest makes room, with whatever there is
            self._answer_oldest()
        self._idle_check()

    def _answer_oldest(self) -> None:
        entry = self.held.popleft()
        content = b"".join(self.out)
        self.out.clear()
        self.out_size = 0
        self._send(entry, content)

    def _send(self, entry, content: bytes) -> None:
        rid, request, timer = entry
        if timer.active():
            timer.cancel()
        attributes = ""
        if self.creation is not None:
            attributes, self.creation = self.creation, None
        if self.terminating and not self.out:
            condition = " condition='remote-stream-error'" if b"<stream:error" in content else ""
            attributes += f" type='terminate'{condition}"
        answer = _body(attributes, content)
        self.answers[rid] = answer
        self.answers.pop(rid - self.requests, None)
        if request is not None:
            _respond(request, answer)

    def _idle_check(self) -> None:
        if not self.held and not self.ended and self._inactivity is None:
            seconds = self.paused if self.paused is not None else self.manager.settings.inactivity
            self._inactivity = self.reactor.callLater(seconds, self._inactive)

    def _cancel_inactivity(self) -> None:
        if self._inactivity is not None and self._inactivity.active():
            self._inactivity.cancel()
        self._inactivity = None

    def _inactive(self) -> None:
        self._inactivity = None
        log.info("BOSH session of {peer} inactive{paused}; its connection counts as lost",
                 peer=self.address,
                 paused="" if self.paused is None else f" after a {self.paused} s pause")
        self._end(lost=True)

    def fail(self, condition: str) -> None:
        """End the session with a binding condition (answered on the held requests)."""
        answer = _body(f" type='terminate' condition='{condition}'", b"")
        waiting = [entry[1] for entry in self.held] + [early[0] for early in self.early.values()]
        self.early.clear()
        for request in waiting:
            if request is not None:
                _respond(request, answer)
        self._end(lost=True)

    def _end(self, lost: bool) -> None:
        if self.ended:
            return
        self.ended = True
        self._cancel_inactivity()
        if self._delivery is not None and self._delivery.active():
            self._delivery.cancel()
        self._delivery = None
        for entry in self.held:
            if entry[2].active():
                entry[2].cancel()
        self.held.clear()
        self.early.clear()
        self.manager.forget(self)
        stream, self.stream = self.stream, None
        if stream is not None and not stream.disconnected:
            stream.connectionLost(Failure(ConnectionLost() if lost else ConnectionDone()))


class BoshManager:
    """The sessions, by sid, and how many each address has."""

    def __init__(self, reactor, new_stream, domains, policy: WebPolicy,
                 settings: BoshSettings) -> None:
        self.reactor = reactor
        self.new_stream = new_stream  # secure -> BoshClientStream
        self.domains = domains
        self.policy = policy
        self.settings = settings
        self.sessions: dict[str, BoshSession] = {}
        self.per_address: dict[str, int] = {}

    def create(self, request, rid: int, attributes: dict, elements: list,
               client) -> None:
        settings = self.settings
        if attributes.get("to") not in self.domains:
            raise BoshError("host-unknown")
        if self.per_address.get(client.address, 0) >= settings.max_sessions_per_address:
            log.info("refused a BOSH session to {peer}: too many sessions from there",
                     peer=client.address)
            raise BoshError("policy-violation")
        wait = min(_number(attributes.get("wait"), settings.max_wait), settings.max_wait)
        hold = min(_number(attributes.get("hold"), 1), settings.max_hold)
        sid = secrets.token_urlsafe(18)
        session = BoshSession(self, sid, rid, max(wait, 1), hold, client.address)
        self.sessions[sid] = session
        self.per_address[client.address] = self.per_address.get(client.address, 0) + 1
        stream = self.new_stream(client.secure)
        session.stream = stream
        stream.makeConnection(session)
        session.creation = (f" sid='{sid}' wait='{session.wait}' hold='{hold}'"
                            f" requests='{session.requests}'"
                            f" inactivity='{settings.inactivity}'"
                            f" polling='{settings.polling}' ver='1.11'"
                            f" maxpause='{settings.max_pause}'"
                            f" from='{escape_attribute(attributes['to'])}'"
                            f" xmpp:version='1.0' xmlns:xmpp='{XBOSH}'"
                            f" xmlns:stream='{ns.STREAMS}'")
        session.start(request, rid, _header(attributes), elements)
        if stream.stream_id is not None:
            session.creation += f" authid='{stream.stream_id}'"
        session._deliver()

    def forget(self, session: BoshSession) -> None:
        if self.sessions.pop(session.sid, None) is session:
            left = self.per_address.get(session.address, 1) - 1
            if left:
                self.per_address[session.address] = left
            else:
                self.per_address.pop(session.address, None)


class BoshResource(resource.Resource):
    """``/http-bind``: POST a <body/>; OPTIONS for the CORS preflight."""

    isLeaf = True

    def __init__(self, manager: BoshManager, max_body: int) -> None:
        super().__init__()
        self.manager = manager
        self.max_body = max_body

    def render_OPTIONS(self, request) -> bytes:  # noqa: N802
        if not self._cors(request):
            request.setResponseCode(403)
            return b""
        request.setHeader(b"Access-Control-Allow-Methods", b"POST, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Content-Type")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        return b""

    def render_GET(self, request) -> bytes:  # noqa: N802
        request.setResponseCode(405)
        request.setHeader(b"Allow", b"POST, OPTIONS")
        return b""

    def render_POST(self, request):  # noqa: N802
        if not self._cors(request):
            request.setResponseCode(403)
            return b""
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        session = None
        try:
            data = request.content.read()
            attributes, elements = _parse_body(data, self.max_body)
            rid = _number(attributes.get("rid"), None)
            if rid is None:
                raise BoshError("bad-request")
            sid = attributes.get("sid")
            if sid is None:
                headers = {name: (request.getHeader(name) or "") for name in
                           ("x-forwarded-for", "x-forwarded-proto")}
                client = self.manager.policy.client(
                    getattr(request.getClientAddress(), "host", "?"), request.isSecure(),
                    headers)
                self.manager.create(request, rid, attributes, elements, client)
                return server.NOT_DONE_YET
            session = self.manager.sessions.get(sid)
            if session is None:
                raise BoshError("item-not-found")
            session.receive(request, rid, attributes, elements, len(data))
            return server.NOT_DONE_YET
        except BoshError as error:
            if session is not None:
                session.fail(error.condition)
            if error.condition == "bad-request" and session is None:
                request.setResponseCode(400)
            return _body(f" type='terminate' condition='{error.condition}'", b"")

    def _cors(self, request) -> bool:
        origin = request.getHeader("origin")
        if not self.manager.policy.origin_allowed(origin):
            return False
        if origin is not None:
            request.setHeader(b"Access-Control-Allow-Origin", origin.encode("utf-8"))
            request.setHeader(b"Vary", b"Origin")
        return True


# -- helpers


def _parse_body(data: bytes, max_size: int) -> tuple[dict, list]:
    """The <body/> wrapper's attributes and children; BoshError bad-request otherwise."""
    found: list = []
    headers: list[StreamHeader] = []
    ended: list[bool] = []
    parser = StreamParser(headers.append, found.append, lambda: ended.append(True),
                          max_stanza_size=max_size)
    try:
        parser.feed(data)
    except StreamError:
        raise BoshError("bad-request") from None
    if not headers or not ended or headers[0].uri != HTTPBIND or headers[0].name != "body":
        raise BoshError("bad-request")
    return headers[0].attributes, found


def _header(attributes: dict) -> StreamHeader:
    """The stream header a session request or a restart stands for (XEP-0206 §5, §6)."""
    fields = {"to": attributes.get("to"), "version": attributes.get(_VERSION, "1.0"),
              "xml:lang": attributes.get("xml:lang")}
    return StreamHeader(uri=ns.STREAMS, name="stream",
                        attributes={k: v for k, v in fields.items() if v is not None},
                        default_namespace=ns.CLIENT, prefixes={"stream": ns.STREAMS})


def _body(attributes: str, content: bytes) -> bytes:
    head = f"<body xmlns='{HTTPBIND}'{attributes}"
    if not content:
        return (head + "/>").encode("utf-8")
    return (head + ">").encode("utf-8") + content + b"</body>"


def _pause_asked(attributes: dict, max_pause: int) -> int | None:
    """A request's ``pause`` (XEP-0124 §10) in seconds, or None: not a positive number is
    ``bad-request``, more than ``maxpause`` is ``policy-violation``."""
    if "pause" not in attributes:
        return None
    seconds = _number(attributes["pause"], 0)
    if seconds < 1:
        raise BoshError("bad-request")
    if seconds > max_pause:
        raise BoshError("policy-violation")
    return seconds


def _number(value, default):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if 0 <= number < 2**53 else default


def _respond(request, answer: bytes) -> None:
    if request.finished or getattr(request, "_bosh_gone", False):
        return
    request.setHeader(b"Content-Length", str(len(answer)).encode("ascii"))
    request.write(answer)
    request.finish()


def _watch(request, session: BoshSession, rid: int) -> None:
    def gone(_failure) -> None:
        request._bosh_gone = True
        session.dropped(rid, request)

    request.notifyFinish().addErrback(gone)
