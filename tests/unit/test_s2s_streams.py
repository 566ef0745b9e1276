"""The s2s stream state machines and the S2S manager, on in-memory transports.

Everything here is the code the server runs (streams, parser, policy, dialback keys,
manager) except the edges: a MemoryReactorClock, whose tcpClients are the manager's outgoing
connections (completed by hand over a StringTransport) and whose clock drives time-outs and
back-off; a resolver that answers at once; a router that records; and, where a test needs a
peer with a valid certificate, a stand-in for the RFC 6125 check (a StringTransport has no
certificate to check).
"""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.jid import parse_jid
from xmppd.limits.stanzas import STREAM_LIMITS
from xmppd.s2s.certs import CertCheck
from xmppd.s2s.manager import FIRST_BACKOFF, S2SManager
from xmppd.s2s.policy import FederationPolicy
from xmppd.s2s.srv import Target
from xmppd.s2s.streams import IncomingServerStream
from xmppd.stanza import Stanza
from xmppd.xml import StreamParser

OURS, OURS_TOO = "a.example", "chat.a.example"
PEER, PEER_TOO = "b.example", "rooms.b.example"
SECRET = b"0123456789abcdef0123456789abcdef"
TLS_CONTEXT = object()  # handed to transport.startTLS; the fake transport only records it
PEER_HOST, PEER_PORT = "192.0.2.7", 5269
CONNECT_TIMEOUT, AUTH_TIMEOUT = 10.0, 30.0
VALID_CERT = CertCheck(valid=True, chain_ok=True, name_ok=True, reason="ok")
BAD_CERT = CertCheck(valid=False, chain_ok=False, name_ok=True, reason="self-signed")
XML_DECLARATION = b"<?xml"


# --------------------------------------------------------------------------- the edges


class RecordingRouter:
    def __init__(self) -> None:
        self.routed: list[tuple[Stanza, object]] = []
        self.bounced: list[tuple[Stanza, str, str | None]] = []
        self.sent_from_server: list[tuple[object, None]] = []

    def route(self, stanza: Stanza, origin) -> None:
        self.routed.append((stanza, origin))

    def send_from_server(self, element) -> None:
        self.sent_from_server.append((element, None))

    def bounce(self, stanza: Stanza, condition: str, text: str | None = None) -> None:
        self.bounced.append((stanza, condition, text))

    def bounces(self) -> list[tuple[str, str]]:
        """(stanza id, condition) of every bounce, in order."""
        return [(stanza.id, condition) for stanza, condition, _ in self.bounced]


@implementer(IHostResolution)
class Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class LiteralNameResolver:
    """Resolves an IPv4 literal to itself (the reactor's own test resolver says 127.0.0.1 to
    every name, which would hide where the manager connects)."""

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        resolution = Resolution(hostName)
        receiver.resolutionBegan(resolution)
        receiver.addressResolved(IPv4Address("TCP", hostName, portNumber))
        receiver.resolutionComplete()
        return resolution


class FakeServer:
    """What S2SManager reads from the server: router, reactor, domains, config, emit."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.installNameResolver(LiteralNameResolver())
        self.router = RecordingRouter()
        self.domains = frozenset({OURS, OURS_TOO})
        self.router.served = self.domains
        self.config = SimpleNamespace(server=SimpleNamespace(max_stanza_size=65536))
        self.emitted: list[tuple] = []

    def emit(self, event, *args) -> defer.Deferred:
        self.emitted.append((event, *args))
        return defer.succeed(None)


class FakeResolver:
    """Every domain resolves at once to one STARTTLS target, or fails with ``error``."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.error: Exception | None = None
        self.targets = [Target(PEER_HOST, PEER_PORT, direct_tls=False)]

    def resolve(self, domain: str) -> defer.Deferred:
        self.asked.append(domain)
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(list(self.targets))


class DialbackCallback:
    """Stands in for manager.verify_dialback: records each question, answers when told."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, str]] = []
        self.pending: list[defer.Deferred] = []

    def __call__(self, peer: str, ours: str, stream_id: str, key: str) -> defer.Deferred:
        self.asked.append((peer, ours, stream_id, key))
        self.pending.append(defer.Deferred())
        return self.pending[-1]

    def answer(self, valid: bool) -> None:
        self.pending.pop(0).callback(valid)


class TLSTransport(StringTransport):
    """A StringTransport that 'starts TLS': it records the context, the bytes stay plain."""

    def __init__(self) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", PEER_HOST, 40001))
        self.tls_context = None

    def startTLS(self, context) -> None:
        self.tls_context = context


class Wire:
    """The far end of one of our streams: feed it the peer's bytes, read what we wrote."""

    def __init__(self, protocol, transport: TLSTransport) -> None:
        self.protocol = protocol  # our stream, or the connecting endpoint's wrapper around it
        self.transport = transport
        self._parser: StreamParser | None = None
        self._events: list[tuple[str, object]] = []

    def feed(self, data: str) -> None:
        self.protocol.dataReceived(data.encode())

    def drop(self) -> None:
        """The TCP connection ends (what a real transport does after loseConnection)."""
        self.protocol.connectionLost(Failure(error.ConnectionDone()))

    def events(self) -> list[tuple[str, object]]:
        """What we wrote since the last call: ('header', StreamHeader), ('element', Element),
        ('end', None). Each new stream header (a restart) is read by a fresh parser."""
        written = self.transport.value()
        self.transport.clear()
        for index, chunk in enumerate(written.split(XML_DECLARATION)):
            if index:
                self._parser = StreamParser(
                    lambda header: self._events.append(("header", header)),
                    lambda element: self._events.append(("element", element)),
                    lambda: self._events.append(("end", None)))
                chunk = XML_DECLARATION + chunk
            if chunk:
                self._parser.feed(chunk)
        events, self._events = self._events, []
        return events

    def elements(self) -> list[domish.Element]:
        return [value for kind, value in self.events() if kind == "element"]

    def header(self):
        (header,) = [value for kind, value in self.events() if kind == "header"]
        return header

    def stream_error(self) -> str | None:
        """The condition of the stream error we wrote, if any."""
        for kind, value in self.events():
            if kind == "element" and (value.uri, value.name) == (ns.STREAMS, "error"):
                return next(value.elements()).name
        return None

    @property
    def closed(self) -> bool:
        """We ended the connection (after a stream error)."""
        return self.transport.disconnecting


def make_manager(level: str = "secure", *, per_domain: dict | None = None, allow=None,
                 deny=(), tls=TLS_CONTEXT, queue_limit: int = 1000,
                 bind_address: str | None = None) -> S2SManager:
    return S2SManager(FakeServer(), tls=tls, trust=None,
                      policy=FederationPolicy(level, per_domain or {}, allow, deny),
                      resolver=FakeResolver(), secret=SECRET, bind_address=bind_address,
                      connect_timeout=CONNECT_TIMEOUT, auth_timeout=AUTH_TIMEOUT,
                      queue_limit=queue_limit)


def stream_header(frm: str | None = PEER, to: str | None = OURS, *, db: bool = True,
                  version: str | None = "1.0", stream_id: str | None = None) -> str:
    attributes = {"from": frm, "to": to, "version": version, "id": stream_id}
    text = " ".join(f"{name}='{value}'" for name, value in attributes.items() if value)
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' "
            + ("xmlns:db='jabber:server:dialback' " if db else "") + text + ">")


def features(*children: str) -> str:
    return "<stream:features>" + "".join(children) + "</stream:features>"


STARTTLS = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
STARTTLS_REQUIRED = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
DIALBACK = "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
PROCEED = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


def db_element(name: str, frm: str, to: str, text: str = "", **attributes: str) -> str:
    extra = "".join(f" {key}='{value}'" for key, value in attributes.items())
    return f"<db:{name} from='{frm}' to='{to}'{extra}>{text}</db:{name}>"


def message_xml(frm: str, to: str, body: str = "hello", id_: str = "m1") -> str:
    return (f"<message from='{frm}' to='{to}' id='{id_}' type='chat'>"
            f"<body>{body}</body></message>")


def outbound(id_: str, frm: str = f"alice@{OURS}/home", to: str = f"bob@{PEER}") -> Stanza:
    """A stanza a local user sent to a remote one, as the router hands it to the manager."""
    element = domish.Element((ns.CLIENT, "message"))
    element["from"], element["to"], element["id"], element["type"] = frm, to, id_, "chat"
    element.addElement("body", content=f"body of {id_}")
    return Stanza(element, parse_jid(frm), parse_jid(to))


def incoming(manager: S2SManager,
             cert: CertCheck | None = None) -> tuple[Wire, IncomingServerStream]:
    """A peer connected to our s2s port; ``cert`` replaces the RFC 6125 check's verdict."""
    stream = IncomingServerStream(manager)
    if cert is not None:
        stream.certificate_check = lambda domain: cert
    transport = TLSTransport()
    stream.makeConnection(transport)
    return Wire(stream, transport), stream


def opened(manager: S2SManager, frm: str = PEER, **kwargs) -> tuple[Wire, IncomingServerStream]:
    """An incoming stream past the headers, with our features read."""
    wire, stream = incoming(manager, **kwargs)
    wire.feed(stream_header(frm=frm))
    wire.events()
    return wire, stream


def offered(wire: Wire) -> dict[tuple[str, str], domish.Element]:
    """The stream features we offered, by (namespace, name)."""
    (element,) = wire.elements()
    assert (element.uri, element.name) == (ns.STREAMS, "features")
    return {(child.uri, child.name): child for child in element.elements()}


def verified_incoming(manager: S2SManager, *pairs: tuple[str, str]):
    """An incoming stream on which each (peer, ours) pair passed dialback."""
    callback = manager.verify_dialback = DialbackCallback()
    wire, stream = opened(manager)
    for peer, ours in pairs:
        wire.feed(db_element("result", peer, ours, "k3y"))
        callback.answer(True)
    wire.events()
    return wire, stream


def answer_connection(manager: S2SManager) -> Wire:
    """Complete the oldest connection the manager asked the reactor for."""
    host, port, factory, _timeout, _bind = manager.reactor.tcpClients.pop(0)
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = TLSTransport()
    protocol.makeConnection(transport)
    return Wire(protocol, transport)


def link(manager: S2SManager, local: str = OURS, remote: str = PEER):
    return manager.links[(local, remote)]


def ready_link(manager: S2SManager, *ids: str) -> Wire:
    """Send ``ids`` to PEER and take the link through dialback to ready; returns the wire."""
    for id_ in ids:
        manager.send(outbound(id_))
    wire = answer_connection(manager)
    wire.feed(stream_header(PEER, OURS, stream_id="peer-stream-1") + features(DIALBACK))
    wire.feed(db_element("result", PEER, OURS, type="valid"))
    assert link(manager).stream.ready
    return wire


# --------------------------------------------------------------------------- incoming: header


class TestIncomingHeader:
    @pytest.mark.parametrize("to", ["elsewhere.example", None, "bad domain"])
    def test_a_domain_we_do_not_serve_is_host_unknown(self, to):
        wire, stream = incoming(make_manager())
        wire.feed(stream_header(to=to))
        events = wire.events()
        assert events[0][0] == "header" and events[0][1].attributes["from"] in (OURS, OURS_TOO)
        assert [next(v.elements()).name for k, v in events if k == "element"] == ["host-unknown"]
        assert events[-1] == ("end", None)
        assert wire.closed

    @pytest.mark.parametrize("version", [None, "0.9"])  # 2.0: test_hostile_conformance
    def test_below_version_1_0(self, version):
        wire, _ = incoming(make_manager())
        wire.feed(stream_header(version=version))
        assert wire.stream_error() == "unsupported-version"
        assert wire.closed

    def test_a_denied_peer_is_refused_at_the_header(self):
        wire, stream = incoming(make_manager(deny=["Evil.Example"]))
        wire.feed(stream_header(frm="evil.example"))
        assert wire.stream_error() == "policy-violation"
        assert wire.closed
        assert stream.verified == set()

    def test_a_peer_off_the_allow_list_is_refused_at_the_header(self):
        manager = make_manager(allow=[PEER])
        wire, _ = incoming(manager)
        wire.feed(stream_header(frm="other.example"))
        assert wire.stream_error() == "policy-violation"
        welcome, _ = incoming(manager)
        welcome.feed(stream_header(frm=PEER))
        assert welcome.stream_error() is None and not welcome.closed

    def test_our_answer_names_us_and_the_peer_and_gives_a_stream_id(self):
        wire, stream = incoming(make_manager())
        wire.feed(stream_header(to=OURS_TOO))
        header = wire.header()
        assert header.attributes["from"] == OURS_TOO
        assert header.attributes["to"] == PEER
        assert header.attributes["version"] == "1.0"
        assert header.attributes["id"] == stream.stream_id and len(stream.stream_id) >= 16
        assert header.default_namespace == ns.SERVER
        assert header.prefixes.get("db") == ns.DIALBACK

    def test_authentication_must_finish_in_time(self):
        manager = make_manager()
        wire, _ = opened(manager)
        manager.reactor.advance(AUTH_TIMEOUT)
        assert wire.stream_error() == "connection-timeout"
        assert wire.closed

    def test_an_authenticated_stream_is_not_timed_out(self):
        manager = make_manager("verified")
        wire, _ = verified_incoming(manager, (PEER, OURS))
        manager.reactor.advance(AUTH_TIMEOUT * 2)
        assert wire.events() == [] and not wire.closed


# --------------------------------------------------------------------------- incoming: features


class TestIncomingFeatures:
    def test_secure_policy_requires_starttls_and_offers_dialback_after_it(self):
        wire, _ = incoming(make_manager("secure"))
        wire.feed(stream_header())
        features = offered(wire)
        starttls = features[(ns.TLS, "starttls")]
        assert [child.name for child in starttls.elements()] == ["required"]
        assert (ns.DIALBACK_FEATURE, "dialback") not in features  # issue 15: not before TLS
        assert (ns.SASL, "mechanisms") not in features
        wire.feed(STARTTLS)
        wire.events()
        wire.feed(stream_header())
        dialback = offered(wire)[(ns.DIALBACK_FEATURE, "dialback")]
        assert [(c.uri, c.name) for c in dialback.elements()] == [(ns.DIALBACK_FEATURE, "errors")]

    def test_verified_policy_offers_starttls_without_requiring_it(self):
        wire, _ = incoming(make_manager("verified"))
        wire.feed(stream_header())
        starttls = offered(wire)[(ns.TLS, "starttls")]
        assert list(starttls.elements()) == []

    def test_starttls_is_required_of_a_peer_that_does_not_say_who_it_is(self):
        wire, _ = incoming(make_manager("verified"))
        wire.feed(stream_header(frm=None))
        starttls = offered(wire)[(ns.TLS, "starttls")]
        assert [child.name for child in starttls.elements()] == ["required"]

    def test_no_starttls_without_a_certificate_of_ours(self):
        wire, _ = incoming(make_manager("verified", tls=None))
        wire.feed(stream_header())
        assert set(offered(wire)) == {(ns.DIALBACK_FEATURE, "dialback")}

    def test_no_dialback_feature_unless_the_peer_declared_the_db_namespace(self):
        wire, _ = incoming(make_manager("verified"))
        wire.feed(stream_header(db=False))
        assert (ns.DIALBACK_FEATURE, "dialback") not in offered(wire)

    def test_no_dialback_feature_where_policy_needs_a_certificate(self):
        manager = make_manager("verified", per_domain={PEER: "trusted"})
        wire, _ = incoming(manager)
        wire.feed(stream_header(frm=PEER))
        assert (ns.DIALBACK_FEATURE, "dialback") not in offered(wire)
        other, _ = incoming(manager)
        other.feed(stream_header(frm="c.example"))
        assert (ns.DIALBACK_FEATURE, "dialback") in offered(other)

    def test_no_external_on_a_plain_stream_even_with_a_good_certificate(self):
        wire, _ = incoming(make_manager("verified"), cert=VALID_CERT)
        wire.feed(stream_header())
        assert (ns.SASL, "mechanisms") not in offered(wire)

    def test_starttls_then_external_for_a_valid_certificate(self):
        manager = make_manager("secure")
        wire, stream = incoming(manager, cert=VALID_CERT)
        wire.feed(stream_header())
        first_id = stream.stream_id
        wire.events()
        wire.feed(STARTTLS)
        (proceed,) = wire.elements()
        assert (proceed.uri, proceed.name) == (ns.TLS, "proceed")
        assert wire.transport.tls_context is TLS_CONTEXT
        assert stream.secure
        wire.feed(stream_header())
        restarted = wire.events()
        assert [kind for kind, _ in restarted] == ["header", "element"]
        assert restarted[0][1].attributes["id"] != first_id
        features = {(c.uri, c.name): c for c in restarted[1][1].elements()}
        assert (ns.TLS, "starttls") not in features
        mechanisms = [str(m) for m in features[(ns.SASL, "mechanisms")].elements()]
        assert mechanisms == ["EXTERNAL"]

    def test_no_external_over_tls_when_the_certificate_is_not_valid(self):
        wire, _ = incoming(make_manager("secure"), cert=BAD_CERT)
        wire.feed(stream_header())
        wire.feed(STARTTLS)
        wire.events()
        wire.feed(stream_header())
        assert (ns.SASL, "mechanisms") not in offered(wire)

    def test_starttls_without_a_certificate_of_ours_fails_and_closes(self):
        wire, stream = opened(make_manager("verified", tls=None))
        wire.feed(STARTTLS)
        events = wire.events()
        assert (events[0][1].uri, events[0][1].name) == (ns.TLS, "failure")
        assert events[-1] == ("end", None)
        assert wire.transport.tls_context is None and not stream.secure


# --------------------------------------------------------------------------- incoming: dialback


class TestIncomingDialback:
    def test_verify_is_valid_for_a_key_we_made(self):
        manager = make_manager()
        key = manager.make_key(receiving=PEER, originating=OURS, stream_id="s-123")
        wire, _ = opened(manager)
        wire.feed(db_element("verify", PEER, OURS, key, id="s-123"))
        (answer,) = wire.elements()
        assert (answer.uri, answer.name) == (ns.DIALBACK, "verify")
        assert (answer["from"], answer["to"], answer["id"], answer["type"]) == (
            OURS, PEER, "s-123", "valid")

    @pytest.mark.parametrize("change", ["forged key", "other stream", "other receiver"])
    def test_verify_is_invalid_for_a_forged_key(self, change):
        manager = make_manager()
        key = manager.make_key(receiving=PEER, originating=OURS, stream_id="s-123")
        stream_id, receiving = "s-123", PEER
        if change == "forged key":
            key = ("0" if key[0] != "0" else "1") + key[1:]
        elif change == "other stream":
            stream_id = "s-124"
        else:
            receiving = "c.example"
        wire, _ = opened(manager)
        wire.feed(db_element("verify", receiving, OURS, key, id=stream_id))
        (answer,) = wire.elements()
        assert answer["type"] == "invalid"
        assert not wire.closed

    def test_verify_is_invalid_for_an_originating_domain_not_ours(self):
        manager = make_manager()
        key = manager.make_key(receiving=PEER, originating="other.example", stream_id="s-1")
        wire, _ = opened(manager)
        wire.feed(db_element("verify", PEER, "other.example", key, id="s-1"))
        (answer,) = wire.elements()
        assert (answer["from"], answer["type"]) == ("other.example", "invalid")

    def test_result_on_a_plain_stream_under_a_tls_policy_is_a_policy_violation(self):
        # RFC 6120 §5.3.1, issue 15: TLS is mandatory for this peer, so dialback in the
        # clear is not answered but ends the stream
        manager = make_manager("secure")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = opened(manager)
        wire.feed(db_element("result", PEER, OURS, "k3y"))
        assert wire.stream_error() == "policy-violation"
        assert wire.closed
        assert callback.asked == []
        assert stream.verified == set()

    def test_result_for_a_domain_not_ours_is_item_not_found(self):
        manager = make_manager("verified")
        callback = manager.verify_dialback = DialbackCallback()
        wire, _ = opened(manager)
        wire.feed(db_element("result", PEER, "c.example", "k3y"))
        (answer,) = wire.elements()
        assert answer["type"] == "error"
        assert next(next(answer.elements()).elements()).name == "item-not-found"
        assert callback.asked == []

    def test_result_verified_by_the_authoritative_server_is_valid(self):
        manager = make_manager("verified")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = opened(manager)
        wire.feed(db_element("result", PEER, OURS, "k3y"))
        assert callback.asked == [(PEER, OURS, stream.stream_id, "k3y")]
        assert wire.elements() == []  # no answer before the authoritative server's
        callback.answer(True)
        (answer,) = wire.elements()
        assert (answer.name, answer["from"], answer["to"], answer["type"]) == (
            "result", OURS, PEER, "valid")
        assert stream.verified == {(PEER, OURS)}
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER)]
        assert manager.list_links() == [{
            "direction": "incoming", "local": OURS, "remote": PEER, "auth": "dialback",
            "tls": False, "peer": f"{PEER_HOST}:40001"}]

    def test_result_that_does_not_verify_is_invalid_and_closes_the_stream(self):
        manager = make_manager("verified")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = opened(manager)
        wire.feed(db_element("result", PEER, OURS, "f0rged"))
        callback.answer(False)
        events = wire.events()
        assert events[0][1]["type"] == "invalid"
        assert events[-1] == ("end", None)
        assert stream.verified == set()
        assert manager.server.emitted == []
        wire.feed(message_xml(f"mallory@{PEER}", f"alice@{OURS}"))
        assert manager.server.router.routed == []

    def test_piggybacked_results_verify_each_pair_on_one_stream(self):
        manager = make_manager("verified")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = opened(manager)
        wire.feed(db_element("result", PEER, OURS, "key-1")
                  + db_element("result", PEER_TOO, OURS_TOO, "key-2"))
        callback.answer(True)
        callback.answer(True)
        assert [key for *_, key in callback.asked] == ["key-1", "key-2"]
        answers = wire.elements()
        assert [(a["from"], a["to"], a["type"]) for a in answers] == [
            (OURS, PEER, "valid"), (OURS_TOO, PEER_TOO, "valid")]
        assert stream.verified == {(PEER, OURS), (PEER_TOO, OURS_TOO)}
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}", id_="one")
                  + message_xml(f"room@{PEER_TOO}", f"carol@{OURS_TOO}", id_="two"))
        routed = manager.server.router.routed
        assert [(s.id, s.sender.host, s.recipient.host) for s, _ in routed] == [
            ("one", PEER, OURS), ("two", PEER_TOO, OURS_TOO)]

    def test_a_valid_certificate_makes_the_callback_unnecessary(self):
        manager = make_manager("secure")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = incoming(manager, cert=VALID_CERT)
        wire.feed(stream_header())
        wire.feed(STARTTLS)
        wire.feed(stream_header())
        wire.events()
        wire.feed(db_element("result", PEER, OURS, "k3y"))
        (answer,) = wire.elements()
        assert answer["type"] == "valid"
        assert callback.asked == []
        assert stream.auth_method == "dialback+certificate"

    def test_a_dialback_answer_does_not_belong_on_an_incoming_stream(self):
        wire, _ = opened(make_manager("verified"))
        wire.feed(db_element("result", PEER, OURS, type="valid"))
        assert wire.stream_error() == "bad-format"


class TestIncomingExternal:
    def tls_stream(self, cert: CertCheck):
        manager = make_manager("secure")
        wire, stream = incoming(manager, cert=cert)
        wire.feed(stream_header() + STARTTLS)
        wire.feed(stream_header())
        wire.events()
        return manager, wire, stream

    def test_external_with_a_valid_certificate_authenticates_the_peer(self):
        manager, wire, stream = self.tls_stream(VALID_CERT)
        wire.feed(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>=</auth>")
        (success,) = wire.elements()
        assert (success.uri, success.name) == (ns.SASL, "success")
        assert stream.verified == {(PEER, OURS)}
        assert stream.auth_method == "certificate"
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER)]
        wire.feed(stream_header())
        # nothing left to negotiate; XEP-0478 limits are information
        assert set(offered(wire)) == {(STREAM_LIMITS, "limits")}
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert len(manager.server.router.routed) == 1

    def test_external_for_another_domain_checks_the_certificate_for_it(self):
        manager, wire, stream = self.tls_stream(VALID_CERT)
        checked: list[str] = []
        stream.certificate_check = lambda domain: checked.append(domain) or BAD_CERT
        authzid = base64.b64encode(PEER_TOO.encode()).decode()
        wire.feed(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
        (failure,) = wire.elements()
        assert (failure.name, next(failure.elements()).name) == ("failure", "not-authorized")
        assert PEER_TOO in checked
        assert stream.verified == set()

    def test_external_is_refused_on_a_plain_stream(self):
        wire, stream = opened(make_manager("verified"), cert=VALID_CERT)
        wire.feed(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>=</auth>")
        (failure,) = wire.elements()
        assert next(failure.elements()).name == "invalid-mechanism"
        assert stream.verified == set()

    def test_badly_encoded_authzid_is_incorrect_encoding(self):
        _, wire, _ = self.tls_stream(VALID_CERT)
        wire.feed(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>not base64!</auth>")
        (failure,) = wire.elements()
        assert next(failure.elements()).name == "incorrect-encoding"


# --------------------------------------------------------------------------- incoming: stanzas


class TestIncomingStanzas:
    def test_a_stanza_before_authentication_is_not_authorized(self):
        manager = make_manager("verified")
        wire, _ = opened(manager)
        wire.feed(message_xml(f"mallory@{PEER}", f"alice@{OURS}"))
        assert wire.stream_error() == "not-authorized"  # RFC 6120 §4.9.3.16
        assert wire.closed
        assert manager.server.router.routed == []

    def test_a_stanza_from_a_domain_not_verified_on_the_stream_is_invalid_from(self):
        manager = make_manager("verified")
        wire, _ = verified_incoming(manager, (PEER, OURS))
        wire.feed(message_xml(f"mallory@{PEER_TOO}", f"alice@{OURS}"))
        assert wire.stream_error() == "invalid-from"
        assert manager.server.router.routed == []

    def test_a_stanza_to_a_domain_not_ours_is_host_unknown(self):
        manager = make_manager("verified")
        wire, _ = verified_incoming(manager, (PEER, OURS))
        wire.feed(message_xml(f"bob@{PEER}", "victim@c.example"))
        assert wire.stream_error() == "host-unknown"
        assert manager.server.router.routed == []

    def test_a_stanza_without_addresses_is_improper_addressing(self):
        manager = make_manager("verified")
        wire, _ = verified_incoming(manager, (PEER, OURS))
        wire.feed("<message><body>who?</body></message>")
        assert wire.stream_error() == "improper-addressing"

    def test_an_authenticated_stanza_is_routed_with_the_stream_as_origin(self):
        manager = make_manager("verified")
        wire, stream = verified_incoming(manager, (PEER, OURS))
        wire.feed(message_xml(f"bob@{PEER}/work", f"alice@{OURS}", body="across"))
        ((stanza, origin),) = manager.server.router.routed
        assert origin is stream
        assert (str(stanza.sender), str(stanza.recipient)) == (f"bob@{PEER}/work", f"alice@{OURS}")
        assert str(stanza.element.body) == "across"
        assert wire.events() == []

    def test_a_bad_stanza_type_is_answered_through_the_router_not_routed(self):
        """The peer does not read its outgoing stream: the answer goes back like any stanza
        for its domain (over our own link), and the bad stanza itself goes nowhere."""
        manager = make_manager("verified")
        wire, _ = verified_incoming(manager, (PEER, OURS))
        wire.feed(f"<iq from='bob@{PEER}/w' to='{OURS}' id='q1' type='fetch'/>")
        assert wire.elements() == []
        assert manager.server.router.routed == []
        ((reply, _),) = manager.server.router.sent_from_server
        assert (reply.name, reply["type"], reply["to"]) == ("iq", "error", f"bob@{PEER}/w")
        assert not wire.closed


# --------------------------------------------------------------------------- outgoing streams


class TestOutgoingStream:
    def test_connects_to_the_resolved_target_from_the_bind_address(self):
        manager = make_manager("verified", bind_address="192.0.2.99")
        manager.send(outbound("m1"))
        assert manager.resolver.asked == [PEER]
        ((host, port, _factory, timeout, bind),) = manager.reactor.tcpClients
        assert (host, port, timeout, bind) == (PEER_HOST, PEER_PORT, CONNECT_TIMEOUT,
                                               ("192.0.2.99", 0))

    def test_header_names_both_domains_and_has_no_id(self):
        manager = make_manager("verified")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        header = wire.header()
        assert (header.attributes["from"], header.attributes["to"]) == (OURS, PEER)
        assert "id" not in header.attributes
        assert header.attributes["version"] == "1.0"
        assert header.prefixes.get("db") == ns.DIALBACK

    def test_gives_up_when_policy_needs_tls_and_the_peer_offers_none(self):
        manager = make_manager("secure")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        wire.events()
        wire.feed(stream_header(PEER, OURS, stream_id="p1") + features(DIALBACK))
        assert wire.stream_error() == "policy-violation"
        assert wire.closed
        wire.drop()
        ((stanza, condition, text),) = manager.server.router.bounced
        assert (stanza.id, condition) == ("m1", "remote-server-not-found")
        assert "TLS required" in text
        assert not link(manager).connecting

    def test_starttls_when_the_peer_offers_it(self):
        manager = make_manager("secure")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        wire.events()
        wire.feed(stream_header(PEER, OURS, stream_id="p1") + features(STARTTLS_REQUIRED,
                                                                         DIALBACK))
        (starttls,) = wire.elements()
        assert (starttls.uri, starttls.name) == (ns.TLS, "starttls")
        wire.feed(PROCEED)
        assert wire.transport.tls_context is TLS_CONTEXT
        header = wire.header()
        assert (header.attributes["from"], header.attributes["to"]) == (OURS, PEER)

    def test_sends_the_dialback_key_for_the_peers_stream_id(self):
        manager = make_manager("verified", tls=None)
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        wire.events()
        wire.feed(stream_header(PEER, OURS, stream_id="peer-stream-1") + features(DIALBACK))
        (result,) = wire.elements()
        assert (result.uri, result.name) == (ns.DIALBACK, "result")
        assert (result["from"], result["to"]) == (OURS, PEER)
        assert not result.hasAttribute("type")
        expected = manager.make_key(receiving=PEER, originating=OURS, stream_id="peer-stream-1")
        assert str(result) == expected
        assert manager.check_key(PEER, OURS, "peer-stream-1", str(result))

    def test_valid_result_makes_the_link_ready_and_flushes_the_queue_in_order(self):
        manager = make_manager("verified")
        wire = ready_link(manager, "m1", "m2", "m3")
        sent = [e for e in wire.elements() if e.name == "message"]
        assert [m["id"] for m in sent] == ["m1", "m2", "m3"]
        assert list(link(manager).queue) == []
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER)]
        manager.send(outbound("m4"))
        assert [e["id"] for e in wire.elements()] == ["m4"]
        assert manager.reactor.tcpClients == []  # no second connection
        assert manager.list_links() == [{
            "direction": "outgoing", "local": OURS, "remote": PEER, "auth": "dialback",
            "tls": False, "peer": f"{PEER_HOST}:40001"}]
        assert manager.server.router.bounced == []

    def test_messages_go_out_in_the_servers_namespace(self):
        manager = make_manager("verified")
        wire = ready_link(manager, "m1")
        wire.events()
        manager.send(outbound("m2"))
        written = wire.transport.value()
        assert written.startswith(b"<message ") and b"jabber:client" not in written

    def test_sasl_external_after_starttls_when_our_certificate_is_accepted(self):
        manager = make_manager("secure")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        stream = link(manager).stream
        stream.certificate_check = lambda domain: VALID_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.events()
        mechanisms = f"<mechanisms xmlns='{ns.SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
        wire.feed(stream_header(stream_id="p2") + features(mechanisms, DIALBACK))
        (auth,) = wire.elements()
        assert (auth.uri, auth.name, auth["mechanism"]) == (ns.SASL, "auth", "EXTERNAL")
        assert base64.b64decode(str(auth)).decode() == OURS
        wire.feed(f"<success xmlns='{ns.SASL}'/>")
        assert wire.header().attributes["from"] == OURS  # the stream restarts
        wire.feed(stream_header(stream_id="p3") + features())
        assert [e["id"] for e in wire.elements()] == ["m1"]
        assert (stream.ready, stream.auth_method, stream.secure) == (True, "certificate", True)

    def test_gives_up_under_trusted_when_the_peer_certificate_is_not_valid(self):
        manager = make_manager("trusted")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        link(manager).stream.certificate_check = lambda domain: BAD_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.events()
        wire.feed(stream_header(stream_id="p2") + features(DIALBACK))
        assert wire.stream_error() == "policy-violation"
        wire.drop()
        ((_, condition, text),) = manager.server.router.bounced
        assert condition == "remote-server-not-found" and "self-signed" in text

    def test_invalid_result_gives_up_and_bounces(self):
        manager = make_manager("verified")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        wire.feed(stream_header(PEER, OURS, stream_id="p1") + features(DIALBACK))
        wire.feed(db_element("result", PEER, OURS, type="invalid"))
        assert wire.stream_error() == "policy-violation"
        wire.drop()
        assert manager.server.router.bounces() == [("m1", "remote-server-not-found")]
        assert manager.server.emitted == []

    def test_a_dropped_ready_link_is_reported_and_set_up_again_on_demand(self):
        manager = make_manager("verified")
        wire = ready_link(manager, "m1")
        wire.drop()
        assert manager.server.emitted[-1] == (events.S2S_LINK_DOWN, PEER)
        assert link(manager).stream is None
        manager.send(outbound("m2"))
        assert len(manager.reactor.tcpClients) == 1
        assert manager.server.router.bounced == []


class TestVerifyStream:
    def ask(self, manager: S2SManager) -> tuple[defer.Deferred, Wire, list]:
        answers: list[bool] = []
        d = manager.verify_dialback(PEER, OURS, "their-stream", "k3y")
        d.addCallback(answers.append)
        wire = answer_connection(manager)
        wire.feed(stream_header(PEER, OURS, stream_id="v1") + features(DIALBACK))
        return d, wire, answers

    def test_sends_db_verify_and_delivers_a_valid_answer(self):
        manager = make_manager("verified", tls=None)
        _, wire, answers = self.ask(manager)
        assert manager.resolver.asked == [PEER]
        events = wire.events()
        assert (events[0][1].attributes["from"], events[0][1].attributes["to"]) == (OURS, PEER)
        verify = events[1][1]
        assert (verify.uri, verify.name) == (ns.DIALBACK, "verify")
        assert (verify["from"], verify["to"], verify["id"], str(verify)) == (
            OURS, PEER, "their-stream", "k3y")
        assert answers == []
        wire.feed(db_element("verify", PEER, OURS, type="valid", id="their-stream"))
        assert answers == [True]
        assert wire.events()[-1] == ("end", None)  # the verify stream is done
        assert manager.links == {}

    def test_delivers_an_invalid_answer(self):
        manager = make_manager("verified", tls=None)
        _, wire, answers = self.ask(manager)
        wire.feed(db_element("verify", PEER, OURS, type="invalid", id="their-stream"))
        assert answers == [False]

    def test_a_lost_connection_means_not_verified(self):
        manager = make_manager("verified", tls=None)
        _, wire, answers = self.ask(manager)
        wire.drop()
        assert answers == [False]

    def test_no_answer_in_time_means_not_verified(self):
        manager = make_manager("verified", tls=None)
        _, _, answers = self.ask(manager)
        manager.reactor.advance(CONNECT_TIMEOUT + AUTH_TIMEOUT)
        assert answers == [False]

    def test_an_unreachable_authoritative_server_means_not_verified(self):
        manager = make_manager("verified", tls=None)
        manager.resolver.targets = []
        answers: list[bool] = []
        manager.verify_dialback(PEER, OURS, "their-stream", "k3y").addCallback(answers.append)
        assert answers == [False]
        assert manager.reactor.getDelayedCalls() == []


# --------------------------------------------------------------------------- the manager


class TestManager:
    def test_stanzas_wait_in_one_queue_while_the_link_is_set_up(self):
        manager = make_manager("verified")
        manager.send(outbound("m1"))
        manager.send(outbound("m2"))
        assert manager.resolver.asked == [PEER]
        assert len(manager.reactor.tcpClients) == 1
        assert [s.id for s in link(manager).queue] == ["m1", "m2"]
        assert link(manager).connecting
        assert manager.server.router.bounced == []

    def test_the_queue_is_bounded(self):
        manager = make_manager("verified", queue_limit=2)
        for id_ in ("m1", "m2", "m3"):
            manager.send(outbound(id_))
        assert manager.server.router.bounces() == [("m3", "resource-constraint")]
        assert [s.id for s in link(manager).queue] == ["m1", "m2"]

    def test_a_failed_domain_bounces_at_once_until_its_back_off_has_passed(self):
        manager = make_manager("verified")
        manager.resolver.targets = []
        router, clock = manager.server.router, manager.reactor
        manager.send(outbound("m1"))
        ((_, condition, text),) = router.bounced
        assert condition == "remote-server-not-found"
        assert "offers no server-to-server service" in text
        manager.send(outbound("m2"))
        assert router.bounced[-1][1:] == ("remote-server-not-found", text)  # at once, same why
        assert manager.resolver.asked == [PEER]  # no new attempt during the back-off
        clock.advance(FIRST_BACKOFF)
        manager.send(outbound("m3"))
        assert manager.resolver.asked == [PEER, PEER]
        clock.advance(FIRST_BACKOFF)  # the back-off doubled after the second failure
        manager.send(outbound("m4"))
        assert manager.resolver.asked == [PEER, PEER]
        clock.advance(FIRST_BACKOFF)
        manager.send(outbound("m5"))
        assert manager.resolver.asked == [PEER, PEER, PEER]
        assert router.bounces() == [(f"m{i}", "remote-server-not-found") for i in range(1, 6)]

    def test_a_resolver_failure_bounces_the_queue(self):
        manager = make_manager("verified")
        manager.resolver.error = ValueError("not a domain")
        manager.send(outbound("m1"))
        ((_, condition, text),) = manager.server.router.bounced
        assert condition == "remote-server-not-found" and "not a domain" in text

    def test_a_link_that_does_not_authenticate_in_time_bounces_with_timeout(self):
        manager = make_manager("verified")
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        manager.reactor.advance(CONNECT_TIMEOUT + AUTH_TIMEOUT - 1)
        assert manager.server.router.bounced == []
        manager.reactor.advance(1)
        assert manager.server.router.bounces() == [("m1", "remote-server-timeout")]
        assert wire.transport.disconnected  # aborted
        wire.drop()
        assert len(manager.server.router.bounced) == 1

    def test_a_denied_domain_bounces_not_allowed_without_connecting(self):
        manager = make_manager("verified", deny=[PEER])
        manager.send(outbound("m1"))
        assert manager.server.router.bounces() == [("m1", "not-allowed")]
        assert manager.resolver.asked == [] and manager.links == {}

    @pytest.mark.parametrize("sender", [f"mallory@{PEER_TOO}/x", PEER_TOO, None])
    def test_stanzas_not_from_our_domains_are_never_relayed(self, sender):
        manager = make_manager("promiscuous")
        stanza = outbound("m1")
        stanza.sender = None if sender is None else parse_jid(sender)
        manager.send(stanza)
        assert manager.resolver.asked == [] and manager.links == {}
        assert manager.reactor.tcpClients == []
        assert manager.server.router.bounced == []

    def test_links_are_kept_per_pair_of_domains(self):
        manager = make_manager("verified")
        manager.send(outbound("m1"))
        manager.send(outbound("m2", frm=f"room@{OURS_TOO}"))
        assert set(manager.links) == {(OURS, PEER), (OURS_TOO, PEER)}
        assert len(manager.reactor.tcpClients) == 2

    def test_close_links_closes_both_directions_with_a_domain(self):
        manager = make_manager("verified")
        out_wire = ready_link(manager, "m1")
        in_wire, in_stream = verified_incoming(manager, (PEER, OURS))
        out_wire.events()
        assert {row["direction"] for row in manager.list_links()} == {"incoming", "outgoing"}
        assert manager.close_links("c.example") == 0
        assert manager.close_links(PEER) == 2
        assert out_wire.events() == [("end", None)]
        assert in_wire.events() == [("end", None)]
        out_wire.drop()
        in_wire.drop()
        assert manager.list_links() == []
        assert (events.S2S_LINK_DOWN, PEER) in manager.server.emitted


# ------------------------------------------------- regressions (bugs found by these tests, fixed)


def test_an_old_deadline_does_not_time_out_a_later_attempt():
    manager = make_manager("verified")
    wire = ready_link(manager, "m1")  # t=0: deadline at CONNECT_TIMEOUT + AUTH_TIMEOUT
    manager.reactor.advance(1)
    wire.drop()
    manager.reactor.advance(CONNECT_TIMEOUT + AUTH_TIMEOUT - 5)
    manager.send(outbound("m2"))  # a new attempt with a full deadline of its own
    answer_connection(manager)
    manager.reactor.advance(5)  # the first attempt's deadline passes
    assert manager.server.router.bounced == []


def test_a_stanza_sent_while_the_link_closes_is_not_lost():
    manager = make_manager("verified")
    wire = ready_link(manager, "m1")
    manager.close_links(PEER)
    wire.events()
    manager.send(outbound("m2"))
    delivered = [e["id"] for e in wire.elements() if e.name == "message"]
    queued = [s.id for s in link(manager).queue]
    bounced = [id_ for id_, _ in manager.server.router.bounces()]
    assert "m2" in delivered + queued + bounced


def test_a_peer_stream_error_is_not_answered_with_one_of_ours():
    manager = make_manager("verified")
    manager.send(outbound("m1"))
    wire = answer_connection(manager)
    wire.feed(stream_header(PEER, OURS, stream_id="p1"))
    wire.events()
    wire.feed("<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
              "</stream:error></stream:stream>")
    assert wire.stream_error() is None
    wire.drop()
    ((_, _, text),) = manager.server.router.bounced
    assert "policy-violation" in text


def test_a_peer_header_without_an_id_is_refused_clearly():
    failures: list[dict] = []

    def observe(event: dict) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        manager = make_manager("verified", tls=None)
        manager.send(outbound("m1"))
        wire = answer_connection(manager)
        wire.feed(stream_header(PEER, OURS) + features(DIALBACK))
        condition = wire.stream_error()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert condition is not None and condition != "internal-server-error"
    assert failures == []


def test_promiscuous_accepts_the_asserted_identity():
    manager = make_manager("promiscuous")
    callback = manager.verify_dialback = DialbackCallback()
    wire, stream = opened(manager)
    wire.feed(db_element("result", PEER, OURS, "whatever"))
    assert callback.asked == []
    assert stream.verified == {(PEER, OURS)}
