"""Our outgoing federation in every combination, between two real S2S managers over real TLS.

What decides whether our link to a peer comes up (issue #10): the peer's certificate (valid
from our CA / self-signed / from our CA but for another name), whether the peer accepts our
certificate (it trusts our CA, so it offers SASL EXTERNAL), whether it offers dialback, and our
level for it. The rule under test (xmppd.s2s.policy): on an outgoing stream the peer is proven
by our having reached it through DNS, which counts where dialback counts (promiscuous,
verified, secure), plus its certificate where that is valid; ``trusted`` needs the certificate.
How we authenticate ourselves (EXTERNAL or dialback) changes nothing about that.

Both ends are the code the server runs (S2SManager, its streams, S2STLS, the RFC 6125 check
against a TrustStore) on loopback sockets and the real reactor, with certificates from
tests/certs.py. The peer is another S2SManager: it "accepts our certificate" when its CA file
holds our CA, and it "offers dialback" when its level for us is secure (at trusted it offers
none and refuses our key). Its dialback check of our key is real too: it connects back to our
listener. The edges are a resolver that gives each domain its listener and routers that record.
Each row sends one message from us and waits for one of two things: the peer routes it (the
link came up; our log line says on what proof) or it bounces to us (refused; the reason is
the bounce text and our log line).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.words.xish import domish

from tests.certs import CertificateAuthority, make_test_pki
from xmppd import ns
from xmppd.jid import parse_jid
from xmppd.s2s import manager as manager_module
from xmppd.s2s.certs import TrustStore
from xmppd.s2s.manager import IncomingServerFactory, S2SManager
from xmppd.s2s.policy import FederationPolicy
from xmppd.s2s.srv import Target
from xmppd.s2s.tlsctx import S2STLS
from xmppd.stanza import Stanza

OURS, PEER = "a.example", "b.example"
SECRETS = {OURS: b"a" * 32, PEER: b"b" * 32}
LEVELS = ("promiscuous", "verified", "secure", "trusted")

# The peer's certificate, and how our log names its problem when the level needs it valid.
VALID, SELF_SIGNED, WRONG_NAME = "valid", "self-signed", "wrong-name"
CERT_PROBLEM = {SELF_SIGNED: "self-signed",
                WRONG_NAME: "name mismatch: cert is for wrong.example, *.wrong.example"}

# Outcomes. ("up", how we authenticated, the proof our log line names) or ("refused", reason).
BY_EXTERNAL, BY_DIALBACK = "certificate", "dialback"
REACHED = "reached through DNS, TLS"
CERT_AND_REACHED_EXT = "certificate (SASL EXTERNAL) + reached through DNS, TLS"
CERT_AND_REACHED = "certificate + reached through DNS, TLS"
NO_DIALBACK_FOR_US = "the peer did not accept our certificate and policy forbids dialback"
PEER_REFUSED_DIALBACK = "the peer refused our dialback (error)"


def up(method: str, proof: str) -> tuple[str, str, str]:
    return ("up", method, proof)


def refused(reason: str) -> tuple[str, str]:
    return ("refused", reason)


def cert_required(kind: str) -> tuple[str, str]:
    return refused(f"certificate required: {CERT_PROBLEM[kind]}")


# (peer certificate, peer offers EXTERNAL, peer offers dialback) -> outcome at promiscuous,
# verified, secure, trusted. Written out by hand from the rule, not computed.
TABLE = {
    (VALID, True, True): 4 * [up(BY_EXTERNAL, CERT_AND_REACHED_EXT)],
    (VALID, True, False): 4 * [up(BY_EXTERNAL, CERT_AND_REACHED_EXT)],
    (VALID, False, True): 3 * [up(BY_DIALBACK, CERT_AND_REACHED)] + [
        refused(NO_DIALBACK_FOR_US)],
    (VALID, False, False): 3 * [refused(PEER_REFUSED_DIALBACK)] + [refused(NO_DIALBACK_FOR_US)],
    # issue #10: a self-signed peer that accepts our certificate, under verified and secure
    (SELF_SIGNED, True, True): 3 * [up(BY_EXTERNAL, REACHED)] + [cert_required(SELF_SIGNED)],
    (SELF_SIGNED, True, False): 3 * [up(BY_EXTERNAL, REACHED)] + [cert_required(SELF_SIGNED)],
    (SELF_SIGNED, False, True): 3 * [up(BY_DIALBACK, REACHED)] + [cert_required(SELF_SIGNED)],
    (SELF_SIGNED, False, False): 3 * [refused(PEER_REFUSED_DIALBACK)] + [
        cert_required(SELF_SIGNED)],
    (WRONG_NAME, True, True): 3 * [up(BY_EXTERNAL, REACHED)] + [cert_required(WRONG_NAME)],
    (WRONG_NAME, True, False): 3 * [up(BY_EXTERNAL, REACHED)] + [cert_required(WRONG_NAME)],
    (WRONG_NAME, False, True): 3 * [up(BY_DIALBACK, REACHED)] + [cert_required(WRONG_NAME)],
    (WRONG_NAME, False, False): 3 * [refused(PEER_REFUSED_DIALBACK)] + [
        cert_required(WRONG_NAME)],
}
CASES = [(level, cert, external, dialback, outcomes[index])
         for (cert, external, dialback), outcomes in TABLE.items()
         for index, level in enumerate(LEVELS)]


# --------------------------------------------------------------------------- the edges


class RecordingRouter:
    """Records what the manager routes in and bounces; ``outcome`` fires on the first."""

    def __init__(self) -> None:
        self.routed: list[Stanza] = []
        self.bounced: list[tuple[Stanza, str, str | None]] = []
        self.outcome: defer.Deferred = defer.Deferred()

    def route(self, stanza: Stanza, origin) -> None:
        self.routed.append(stanza)
        if not self.outcome.called:
            self.outcome.callback(("routed", stanza))

    def bounce(self, stanza: Stanza, condition: str, text: str | None = None) -> None:
        self.bounced.append((stanza, condition, text))
        if not self.outcome.called:
            self.outcome.callback(("bounced", (condition, text)))

    def send_from_server(self, element) -> None:
        pass


class LiveServer:
    """What S2SManager reads from the server, on the real reactor."""

    def __init__(self, domain: str) -> None:
        self.reactor = reactor
        self.router = RecordingRouter()
        self.domains = frozenset({domain})
        self.router.served = self.domains
        self.config = SimpleNamespace(server=SimpleNamespace(max_stanza_size=65536))

    def emit(self, event, *args) -> defer.Deferred:
        return defer.succeed(None)


class Listeners:
    """Each domain resolves to its own STARTTLS listener on 127.0.0.1."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}

    def resolve(self, domain: str) -> defer.Deferred:
        if domain not in self.ports:
            return defer.fail(ConnectionError(f"{domain} is not served here"))
        return defer.succeed([Target("127.0.0.1", self.ports[domain], direct_tls=False)])


class TrackedStreams:
    """Every s2s stream of the test, so the test ends only once all their connections have
    closed (trial wants a clean reactor)."""

    def __init__(self) -> None:
        self.streams: list = []
        self.lost: list[defer.Deferred] = []

    def track(self, stream):
        lost = defer.Deferred()
        closed = stream.connectionLost

        def connection_lost(reason=None) -> None:
            closed(reason)
            lost.callback(None)

        stream.connectionLost = connection_lost
        self.streams.append(stream)
        self.lost.append(lost)
        return stream

    def close_all(self) -> defer.Deferred:
        for stream in self.streams:
            if not stream.disconnected and stream.transport is not None:
                stream.transport.abortConnection()
        return defer.DeferredList(self.lost)


# --------------------------------------------------------------------------- the table


class Fixtures:
    """One PKI for the whole table: our CA and certificate, the peer's three certificates,
    and a CA the peer trusts instead of ours when it must not accept our certificate."""

    def __init__(self, directory: Path) -> None:
        pki = make_test_pki(directory, [OURS, PEER])
        stranger = CertificateAuthority(directory / "stranger", name="a CA nobody here uses")
        self.ca = TrustStore.from_file(pki.ca.ca_path)
        self.stranger_ca = TrustStore.from_file(stranger.ca_path)
        self.tls = {OURS: S2STLS(pki.good[OURS].cert_path, pki.good[OURS].key_path)}
        for kind, issued in ((VALID, pki.good[PEER]), (SELF_SIGNED, pki.self_signed[PEER]),
                             (WRONG_NAME, pki.wrong_name[PEER])):
            self.tls[kind] = S2STLS(issued.cert_path, issued.key_path)


class OutgoingTableTests(unittest.TestCase):
    """One test method per row and level, made from TABLE below the class."""

    timeout = 30  # a hang guard only; every row settles in well under a second
    fixtures: Fixtures

    @classmethod
    def setUpClass(cls) -> None:
        cls._directory = tempfile.TemporaryDirectory(prefix="xmppd-s2s-table-")
        cls.fixtures = Fixtures(Path(cls._directory.name))

    @classmethod
    def tearDownClass(cls) -> None:
        cls._directory.cleanup()

    def setUp(self) -> None:
        self.tracked = TrackedStreams()
        original = manager_module.OutgoingServerStream
        self.patch(manager_module, "OutgoingServerStream",
                   lambda *args: self.tracked.track(original(*args)))
        self.log_lines: list[str] = []

        def observe(event: dict) -> None:
            if event.get("log_namespace", "").startswith("xmppd.s2s"):
                self.log_lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.listeners = Listeners()

    def manager(self, domain: str, tls: S2STLS, trust: TrustStore, level: str) -> S2SManager:
        """A manager for ``domain`` listening on loopback; its links close at the end."""
        manager = S2SManager(LiveServer(domain), tls=tls, trust=trust,
                             policy=FederationPolicy(level), resolver=self.listeners,
                             secret=SECRETS[domain], bind_address="127.0.0.1",
                             connect_timeout=5.0, auth_timeout=10.0)
        factory = IncomingServerFactory(manager)
        build = factory.buildProtocol
        factory.buildProtocol = lambda addr: self.tracked.track(build(addr))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.listeners.ports[domain] = port.getHost().port
        self.addCleanup(port.stopListening)
        return manager

    @defer.inlineCallbacks
    def check(self, level: str, peer_cert: str, external: bool, dialback: bool, expected):
        fixtures = self.fixtures
        ours = self.manager(OURS, fixtures.tls[OURS], fixtures.ca, level)
        peer = self.manager(PEER, fixtures.tls[peer_cert],
                            fixtures.ca if external else fixtures.stranger_ca,
                            "secure" if dialback else "trusted")
        self.addCleanup(self.tracked.close_all)
        ours.send(message(f"alice@{OURS}/home", f"bob@{PEER}"))
        what, detail = yield defer.DeferredList(
            [ours.server.router.outcome, peer.server.router.outcome],
            fireOnOneCallback=True, consumeErrors=True).addCallback(lambda result: result[0])
        log = "\n".join(self.log_lines)
        if expected[0] == "up":
            _, method, proof = expected
            self.assertEqual(what, "routed", f"expected the link up, got {detail}\n{log}")
            self.assertEqual(str(detail.sender), f"alice@{OURS}/home")
            self.assertIn(f"outgoing s2s to {PEER} from {OURS} authenticated by {method}: "
                          f"policy {level} met: {proof}", log)
            self.assertNotIn(" refused: ", log)
        else:
            _, reason = expected
            self.assertEqual(what, "bounced", f"expected a refusal, the link came up\n{log}")
            condition, text = detail
            self.assertEqual((condition, text), ("remote-server-not-found", reason), log)
            self.assertIn(f"s2s outgoing {PEER} (127.0.0.1:{self.listeners.ports[PEER]}) "
                          f"refused: {reason}", log)
            self.assertNotIn(f"outgoing s2s to {PEER} from {OURS} authenticated", log)
            self.assertEqual(peer.server.router.routed, [])


def message(sender: str, recipient: str) -> Stanza:
    element = domish.Element((ns.CLIENT, "message"))
    element["from"], element["to"], element["type"] = sender, recipient, "chat"
    element.addElement("body", content="across")
    return Stanza(element, parse_jid(sender), parse_jid(recipient))


def _row_test(level: str, cert: str, external: bool, dialback: bool, expected):
    def test(self):
        return self.check(level, cert, external, dialback, expected)

    outcome = "up" if expected[0] == "up" else "refused"
    test.__name__ = (f"test_{level}_peer_{cert.replace('-', '_')}_"
                     f"{'external' if external else 'no_external'}_"
                     f"{'dialback' if dialback else 'no_dialback'}_{outcome}")
    test.__doc__ = f"{level}, peer cert {cert}, EXTERNAL {external}, dialback {dialback}: " \
                   f"{expected}"
    return test


for _case in CASES:
    _test = _row_test(*_case)
    setattr(OutgoingTableTests, _test.__name__, _test)
del _case, _test


def test_the_table_covers_every_combination():
    assert len(TABLE) == 12 and len(CASES) == 48
    assert len({name for name in dir(OutgoingTableTests) if name.startswith("test_")}) == 48
