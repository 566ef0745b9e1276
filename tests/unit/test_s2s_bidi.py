"""Bidirectional server-to-server streams (XEP-0288) on in-memory transports.

The same edges as tests/unit/test_s2s_streams.py (whose helpers these tests use): a
MemoryReactorClock whose tcpClients are the manager's outgoing connections, a resolver that
answers at once, a router that records, and a stand-in for the RFC 6125 verdict where a peer
must have a valid certificate. Each test is one rule of the XEP (or of XEP-0220's security
considerations, which XEP-0288 points to) seen from the receiving server or the initiating one.
"""

from __future__ import annotations

import base64

import pytest
from twisted.words.xish import domish

from tests.unit.test_s2s_streams import (
    BAD_CERT,
    DIALBACK,
    OURS,
    OURS_TOO,
    PEER,
    PEER_HOST,
    PEER_TOO,
    PROCEED,
    STARTTLS,
    STARTTLS_REQUIRED,
    VALID_CERT,
    DialbackCallback,
    Wire,
    answer_connection,
    db_element,
    features,
    incoming,
    link,
    make_manager,
    message_xml,
    offered,
    outbound,
    stream_header,
)
from xmppd import events, ns
from xmppd.jid import parse_jid
from xmppd.limits.stanzas import STREAM_LIMITS
from xmppd.s2s.manager import S2SManager
from xmppd.s2s.streams import IncomingServerStream
from xmppd.stanza import Stanza

BIDI_FEATURE = f"<bidi xmlns='{ns.BIDI_FEATURE}'/>"
BIDI = f"<bidi xmlns='{ns.BIDI}'/>"
EXTERNAL = f"<mechanisms xmlns='{ns.SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
AUTH_EXTERNAL = f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>=</auth>"


def bidi_manager(level: str = "verified", **kwargs) -> S2SManager:
    """A manager with [s2s] bidi on (the configuration's default)."""
    manager = make_manager(level, **kwargs)
    manager.bidi = True
    return manager


def names(elements: list[domish.Element]) -> list[tuple[str, str]]:
    return [(element.uri, element.name) for element in elements]


def messages(wire: Wire) -> list[str]:
    """The ids of the messages we wrote on ``wire`` since the last read."""
    return [e["id"] for e in wire.elements() if e.name == "message"]


# --------------------------------------------------------------------------- receiving side


def bidi_incoming(manager: S2SManager, *pairs: tuple[str, str], frm: str = PEER):
    """An incoming stream that asked for bidi, then passed dialback for each (peer, ours)."""
    callback = manager.verify_dialback = DialbackCallback()
    wire, stream = incoming(manager)
    wire.feed(stream_header(frm=frm))
    wire.events()
    wire.feed(BIDI)
    for peer, ours in pairs:
        wire.feed(db_element("result", peer, ours, "k3y"))
        callback.answer(True)
    wire.events()
    return wire, stream


def external_incoming(manager: S2SManager, to: str = OURS, bidi: bool = True):
    """An incoming stream over TLS whose peer authenticates with SASL EXTERNAL."""
    wire, stream = incoming(manager, cert=VALID_CERT)
    wire.feed(stream_header(to=to) + STARTTLS)
    wire.feed(stream_header(to=to))
    wire.events()
    wire.feed((BIDI if bidi else "") + AUTH_EXTERNAL)
    wire.feed(stream_header(to=to))
    wire.events()
    return wire, stream


class TestReceivingFeature:
    def test_offered_before_and_after_tls(self):
        wire, _ = incoming(bidi_manager("secure"), cert=VALID_CERT)
        wire.feed(stream_header())
        before = offered(wire)
        assert (ns.TLS, "starttls") in before and (ns.BIDI_FEATURE, "bidi") in before
        wire.feed(STARTTLS)
        wire.events()
        wire.feed(stream_header())
        after = offered(wire)
        assert (ns.SASL, "mechanisms") in after and (ns.BIDI_FEATURE, "bidi") in after
        assert list(after[(ns.BIDI_FEATURE, "bidi")].elements()) == []

    def test_nothing_is_offered_after_sasl(self):
        manager = bidi_manager("secure")
        wire, stream = incoming(manager, cert=VALID_CERT)
        wire.feed(stream_header() + STARTTLS)
        wire.feed(stream_header())
        wire.events()
        wire.feed(BIDI + AUTH_EXTERNAL)
        assert names(wire.elements()) == [(ns.SASL, "success")]
        wire.feed(stream_header())
        assert set(offered(wire)) == {(STREAM_LIMITS, "limits")}  # XEP-0478 only: information
        assert stream.bidi  # the request made before SASL holds across its restart

    def test_not_offered_when_turned_off(self):
        wire, _ = incoming(make_manager("verified"))
        wire.feed(stream_header())
        assert (ns.BIDI_FEATURE, "bidi") not in offered(wire)

    def test_a_request_when_turned_off_is_unsupported(self):
        manager = make_manager("verified")
        wire, stream = incoming(manager)
        wire.feed(stream_header())
        wire.events()
        wire.feed(BIDI)
        assert wire.stream_error() == "unsupported-stanza-type"
        assert not stream.bidi


class TestReceivingServerSends:
    def test_after_dialback_our_stanzas_for_the_reversed_pair_go_out_on_it(self):
        manager = bidi_manager()
        wire, stream = bidi_incoming(manager, (PEER, OURS))
        manager.send(outbound("m1"))
        manager.send(outbound("m2"))
        assert messages(wire) == ["m1", "m2"]
        assert manager.reactor.tcpClients == []  # no connection of our own
        assert manager.resolver.asked == []
        assert link(manager).bidi is stream and link(manager).stream is None
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER)]  # once, not per direction
        assert manager.server.router.bounced == []

    def test_nothing_is_sent_before_the_peer_has_authenticated(self):
        manager = bidi_manager()
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = incoming(manager)
        wire.feed(stream_header() + BIDI)
        wire.feed(db_element("result", PEER, OURS, "k3y"))
        wire.events()
        manager.send(outbound("m1"))
        assert messages(wire) == []
        assert len(manager.reactor.tcpClients) == 1  # so it sets up its own, as without bidi
        assert [s.id for s in link(manager).queue] == ["m1"]
        callback.answer(True)
        assert messages(wire) == ["m1"]  # the waiting stanza goes out as soon as it may
        assert list(link(manager).queue) == []

    def test_a_pending_connection_that_fails_later_bounces_nothing(self):
        manager = bidi_manager()
        callback = manager.verify_dialback = DialbackCallback()
        wire, _ = incoming(manager)
        wire.feed(stream_header() + BIDI + db_element("result", PEER, OURS, "k3y"))
        manager.send(outbound("m1"))
        callback.answer(True)
        wire.events()
        out = answer_connection(manager)
        out.drop()  # our own attempt dies
        manager.send(outbound("m2"))
        assert messages(wire) == ["m2"]
        assert manager.server.router.bounced == []

    def test_only_for_the_pairs_the_peer_proved(self):
        manager = bidi_manager()
        wire, _ = bidi_incoming(manager, (PEER, OURS))
        manager.send(outbound("from-other-of-ours", frm=f"room@{OURS_TOO}"))
        manager.send(outbound("to-other-of-theirs", to=f"bob@{PEER_TOO}"))
        assert messages(wire) == []
        assert len(manager.reactor.tcpClients) == 2

    def test_piggybacked_pairs_each_open_their_reverse(self):
        manager = bidi_manager()
        wire, stream = bidi_incoming(manager, (PEER, OURS), (PEER_TOO, OURS_TOO))
        manager.send(outbound("a", frm=f"room@{OURS_TOO}", to=f"x@{PEER_TOO}"))
        manager.send(outbound("b"))
        assert messages(wire) == ["a", "b"]
        assert manager.reactor.tcpClients == []
        assert link(manager, OURS_TOO, PEER_TOO).bidi is stream

    def test_after_sasl_external_for_the_streams_to_domain(self):
        manager = bidi_manager("secure")
        wire, stream = external_incoming(manager, to=OURS_TOO)
        assert stream.verified == {(PEER, OURS_TOO)}
        manager.send(outbound("m1", frm=f"room@{OURS_TOO}"))
        assert messages(wire) == ["m1"]
        manager.send(outbound("m2"))  # from the domain the stream was not opened to
        assert messages(wire) == []
        assert len(manager.reactor.tcpClients) == 1

    def test_after_sasl_success_stanzas_wait_for_the_restarted_stream(self):
        """A stanza routed between <success/> and the peer's new header (say, the probe our
        presence sends when the link comes up) would land in the peer's new parser before
        any stream header: it waits, and follows our new header and features."""
        manager = bidi_manager("secure")
        wire, stream = incoming(manager, cert=VALID_CERT)
        wire.feed(stream_header() + STARTTLS)
        wire.feed(stream_header())
        wire.events()
        wire.feed(BIDI + AUTH_EXTERNAL)
        manager.send(outbound("early"))
        kinds = [(kind, getattr(value, "name", None)) for kind, value in wire.events()]
        assert kinds == [("element", "success")]
        assert manager.reactor.tcpClients == []  # it does not go elsewhere either
        wire.feed(stream_header())
        kinds = [(kind, getattr(value, "name", None)) for kind, value in wire.events()]
        assert kinds == [("header", "stream"), ("element", "features"), ("element", "message")]
        manager.send(outbound("later"))
        assert messages(wire) == ["later"]

    def test_without_a_request_the_stream_stays_one_way(self):
        manager = bidi_manager("secure")
        wire, stream = external_incoming(manager, bidi=False)
        manager.send(outbound("m1"))
        assert messages(wire) == []
        assert not stream.bidi and len(manager.reactor.tcpClients) == 1

    def test_a_request_made_before_starttls_does_not_count(self):
        manager = bidi_manager("verified")
        callback = manager.verify_dialback = DialbackCallback()
        wire, stream = incoming(manager)
        wire.feed(stream_header() + BIDI + STARTTLS)
        wire.feed(stream_header())
        wire.events()
        wire.feed(db_element("result", PEER, OURS, "k3y"))
        callback.answer(True)
        wire.events()
        assert not stream.bidi
        manager.send(outbound("m1"))
        assert messages(wire) == [] and len(manager.reactor.tcpClients) == 1

    def test_a_late_request_opens_the_pairs_already_proven(self):
        manager = bidi_manager()
        callback = manager.verify_dialback = DialbackCallback()
        wire, _ = incoming(manager)
        wire.feed(stream_header() + db_element("result", PEER, OURS, "k3y"))
        callback.answer(True)
        wire.feed(BIDI)
        wire.events()
        manager.send(outbound("m1"))
        assert messages(wire) == ["m1"]

    def test_our_own_outgoing_stream_stays_first(self):
        manager = bidi_manager()
        out = answer_ready_outgoing(manager, "m1")
        wire, _ = bidi_incoming(manager, (PEER, OURS))
        out.events()
        manager.send(outbound("m2"))
        assert messages(out) == ["m2"] and messages(wire) == []

    def test_a_dialback_answer_on_it_is_still_refused(self):
        """We never ask on an incoming stream, so any answer there is unsolicited
        (XEP-0288 §Security: typed dialback elements on incoming connections)."""
        manager = bidi_manager()
        wire, stream = bidi_incoming(manager, (PEER, OURS))
        wire.feed(db_element("result", PEER_TOO, OURS, type="valid"))
        assert wire.stream_error() == "bad-format"
        assert stream.verified == {(PEER, OURS)}


class TestReceivingServerCloses:
    def test_both_directions_go_down_together_once(self):
        manager = bidi_manager()
        wire, _ = bidi_incoming(manager, (PEER, OURS))
        wire.drop()
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER),
                                          (events.S2S_LINK_DOWN, PEER)]
        assert link(manager).bidi is None and link(manager).carrier is None
        manager.send(outbound("m1"))
        assert len(manager.reactor.tcpClients) == 1  # our own connection now
        assert manager.server.router.bounced == []

    def test_a_stanza_sent_while_it_closes_waits_for_a_new_link(self):
        manager = bidi_manager()
        wire, _ = bidi_incoming(manager, (PEER, OURS))
        assert manager.close_links(PEER) == 2  # one link each way
        wire.events()
        manager.send(outbound("m1"))
        assert messages(wire) == []
        assert [s.id for s in link(manager).queue] == ["m1"]
        assert len(manager.reactor.tcpClients) == 1

    def test_listed_once_each_way_with_the_same_peer_address(self):
        manager = bidi_manager()
        bidi_incoming(manager, (PEER, OURS))
        rows = manager.list_links()
        assert sorted(row["direction"] for row in rows) == ["incoming", "outgoing"]
        assert {(row["local"], row["remote"], row["auth"], row["peer"]) for row in rows} == {
            (OURS, PEER, "dialback", f"{PEER_HOST}:40001")}


# --------------------------------------------------------------------------- initiating side


def start_outgoing(manager: S2SManager, *ids: str) -> Wire:
    for id_ in ids:
        manager.send(outbound(id_))
    return answer_connection(manager)


def answer_ready_outgoing(manager: S2SManager, *ids: str, bidi: bool = True) -> Wire:
    """Our outgoing stream to PEER, set up for ``ids`` (default one message), through
    dialback to ready, the peer offering bidi unless told not to."""
    wire = start_outgoing(manager, *(ids or ("m1",)))
    offer = (DIALBACK, BIDI_FEATURE) if bidi else (DIALBACK,)
    wire.feed(stream_header(PEER, OURS, stream_id="peer-stream-1") + features(*offer))
    wire.feed(db_element("result", PEER, OURS, type="valid"))
    assert link(manager).stream.ready
    return wire


class TestInitiatingRequest:
    def test_asks_after_tls_and_before_dialback(self):
        manager = bidi_manager("secure")
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED, DIALBACK,
                                                           BIDI_FEATURE))
        assert names(wire.elements()) == [(ns.TLS, "starttls")]  # TLS first
        wire.feed(PROCEED)
        wire.events()
        wire.feed(stream_header(stream_id="p2") + features(DIALBACK, BIDI_FEATURE))
        assert names(wire.elements()) == [(ns.BIDI, "bidi"), (ns.DIALBACK, "result")]
        assert link(manager).stream.bidi

    def test_asks_before_sasl_external_and_not_again_after_it(self):
        manager = bidi_manager("secure")
        wire = start_outgoing(manager, "m1")
        stream = link(manager).stream
        stream.certificate_check = lambda domain: VALID_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.events()
        wire.feed(stream_header(stream_id="p2") + features(EXTERNAL, BIDI_FEATURE))
        assert names(wire.elements()) == [(ns.BIDI, "bidi"), (ns.SASL, "auth")]
        wire.feed(f"<success xmlns='{ns.SASL}'/>")
        wire.events()
        wire.feed(stream_header(stream_id="p3") + features(BIDI_FEATURE))
        assert [e.name for e in wire.elements()] == ["message"]
        assert stream.ready and stream.verified == {(PEER, OURS)}

    def test_does_not_ask_a_peer_that_does_not_offer_it(self):
        manager = bidi_manager()
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(stream_id="p1") + features(DIALBACK))
        assert names(wire.elements()) == [(ns.DIALBACK, "result")]

    def test_does_not_ask_when_turned_off(self):
        manager = make_manager("verified")
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(stream_id="p1") + features(DIALBACK, BIDI_FEATURE))
        assert names(wire.elements()) == [(ns.DIALBACK, "result")]
        wire.feed(db_element("result", PEER, OURS, type="valid"))
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert wire.stream_error() == "unsupported-stanza-type"

    def test_a_verify_stream_never_asks(self):
        manager = bidi_manager()
        manager.verify_dialback(PEER, OURS, "their-stream", "k3y")
        wire = answer_connection(manager)
        wire.feed(stream_header(PEER, OURS, stream_id="v1") + features(DIALBACK, BIDI_FEATURE))
        assert names(wire.elements()) == [(ns.DIALBACK, "verify")]


class TestInitiatingServerReceives:
    def test_stanzas_from_the_peer_are_routed_once_authenticated(self):
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager, "m1")
        stream = link(manager).stream
        wire.feed(message_xml(f"bob@{PEER}/work", f"alice@{OURS}", id_="back"))
        ((stanza, origin),) = manager.server.router.routed
        assert origin is stream
        assert (stanza.id, str(stanza.sender)) == ("back", f"bob@{PEER}/work")
        assert manager.reactor.tcpClients == [] and manager.incoming == set()

    def test_a_stanza_before_authentication_is_not_authorized(self):
        manager = bidi_manager()
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(PEER, OURS, stream_id="p1") + features(DIALBACK, BIDI_FEATURE))
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert wire.stream_error() == "not-authorized"  # RFC 6120 §4.9.3.16
        assert manager.server.router.routed == []

    def test_a_stanza_from_another_domain_is_invalid_from(self):
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager)
        wire.events()
        wire.feed(message_xml(f"mallory@{PEER_TOO}", f"alice@{OURS}"))
        assert wire.stream_error() == "invalid-from"
        assert manager.server.router.routed == []

    def test_a_stanza_for_a_domain_not_ours_is_host_unknown(self):
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager)
        wire.events()
        wire.feed(message_xml(f"bob@{PEER}", "victim@c.example"))
        assert wire.stream_error() == "host-unknown"

    def test_a_stanza_for_our_other_domain_is_invalid_from(self):
        """Only (remote, local) was authenticated; our other domain was not its target."""
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager)
        wire.events()
        wire.feed(message_xml(f"bob@{PEER}", f"carol@{OURS_TOO}"))
        assert wire.stream_error() == "invalid-from"

    def test_the_policy_admits_each_stanza(self):
        """buddies-only: a peer that is not a trusted buddy authenticates, but only server
        subscription presences pass; anything else is answered not-allowed, not routed."""
        manager = bidi_manager("buddies-only")
        subscribe = domish.Element((ns.CLIENT, "presence"))
        subscribe["from"], subscribe["to"], subscribe["type"] = OURS, PEER, "subscribe"
        manager.send(Stanza(subscribe, parse_jid(OURS), parse_jid(PEER)))
        wire = answer_connection(manager)
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.feed(stream_header(stream_id="p2") + features(DIALBACK, BIDI_FEATURE))
        wire.feed(db_element("result", PEER, OURS, type="valid"))
        wire.events()
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}", id_="q"))
        (reply,) = wire.elements()
        assert (reply.name, reply["type"], reply["id"]) == ("message", "error", "q")
        assert manager.server.router.routed == []
        wire.feed(f"<presence from='{PEER}' to='{OURS}' type='subscribed'/>")
        assert [s.type for s, _ in manager.server.router.routed] == ["subscribed"]

    def test_the_receiving_servers_certificate_is_its_proof(self):
        manager = bidi_manager("secure")
        wire = start_outgoing(manager, "m1")
        stream = link(manager).stream
        stream.certificate_check = lambda domain: VALID_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.feed(stream_header(stream_id="p2") + features(EXTERNAL, BIDI_FEATURE))
        wire.feed(f"<success xmlns='{ns.SASL}'/>")
        wire.feed(stream_header(stream_id="p3") + features())
        wire.events()
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert len(manager.server.router.routed) == 1
        assert stream.auth_method == "certificate"

    def test_without_a_valid_certificate_the_reach_through_dns_is_the_proof(self):
        """Our certificate was accepted, but the peer's does not validate for its domain:
        under secure its proof is what it would be after our dialback, our having reached
        it through DNS (over TLS), so its stanzas are taken on that, as they are after
        dialback. Under trusted it never gets that far (below)."""
        manager = bidi_manager("secure")
        wire = start_outgoing(manager, "m1")
        stream = link(manager).stream
        stream.certificate_check = lambda domain: BAD_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.feed(stream_header(stream_id="p2") + features(EXTERNAL, BIDI_FEATURE))
        wire.events()
        wire.feed(f"<success xmlns='{ns.SASL}'/>")
        wire.feed(stream_header(stream_id="p3") + features())
        assert wire.stream_error() is None
        assert (stream.ready, stream.auth_method) == (True, "certificate")
        assert stream.verified == {(PEER, OURS)}
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert len(manager.server.router.routed) == 1

    def test_under_trusted_external_without_the_peers_valid_certificate_is_refused(self):
        manager = bidi_manager("trusted")
        wire = start_outgoing(manager, "m1")
        stream = link(manager).stream
        stream.certificate_check = lambda domain: BAD_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.events()
        wire.feed(stream_header(stream_id="p2") + features(EXTERNAL, BIDI_FEATURE))
        assert wire.stream_error() == "policy-violation"
        assert not stream.ready and stream.verified == set()

    def test_dialback_alone_is_enough_where_the_policy_takes_dialback(self):
        manager = bidi_manager("verified")
        wire = answer_ready_outgoing(manager)
        stream = link(manager).stream
        assert (stream.auth_method, stream.verified) == ("dialback", {(PEER, OURS)})
        wire.feed(message_xml(f"bob@{PEER}", f"alice@{OURS}"))
        assert len(manager.server.router.routed) == 1

    def test_under_trusted_dialback_never_gets_that_far(self):
        manager = bidi_manager("trusted")
        wire = start_outgoing(manager, "m1")
        link(manager).stream.certificate_check = lambda domain: BAD_CERT
        wire.feed(stream_header(stream_id="p1") + features(STARTTLS_REQUIRED))
        wire.feed(PROCEED)
        wire.events()
        wire.feed(stream_header(stream_id="p2") + features(DIALBACK, BIDI_FEATURE))
        assert wire.stream_error() == "policy-violation"
        assert link(manager).stream.verified == set()

    def test_closing_takes_both_directions_down_once(self):
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager, "m1")
        rows = manager.list_links()
        assert sorted(row["direction"] for row in rows) == ["incoming", "outgoing"]
        assert len({row["peer"] for row in rows}) == 1
        assert manager.close_links(PEER) == 2
        wire.drop()
        assert manager.server.emitted == [(events.S2S_LINK_UP, PEER),
                                          (events.S2S_LINK_DOWN, PEER)]
        assert manager.list_links() == []


class TestUnsolicitedDialback:
    """XEP-0220 §Security: answers without our request end the stream."""

    def test_a_valid_result_before_we_asked(self):
        manager = bidi_manager()
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(PEER, OURS, stream_id="p1"))
        wire.feed(db_element("result", PEER, OURS, type="valid"))
        assert wire.stream_error() == "bad-format"
        assert not link(manager).stream.ready

    @pytest.mark.parametrize(("frm", "to"), [(PEER_TOO, OURS), (PEER, OURS_TOO)])
    def test_a_valid_result_for_a_pair_we_did_not_ask_for(self, frm, to):
        manager = bidi_manager()
        wire = start_outgoing(manager, "m1")
        wire.feed(stream_header(PEER, OURS, stream_id="p1") + features(DIALBACK, BIDI_FEATURE))
        wire.events()
        wire.feed(db_element("result", frm, to, type="valid"))
        assert wire.stream_error() == "bad-format"
        assert not link(manager).stream.ready

    def test_a_second_valid_result(self):
        manager = bidi_manager()
        wire = answer_ready_outgoing(manager)
        wire.events()
        wire.feed(db_element("result", PEER, OURS, type="valid"))
        assert wire.stream_error() == "bad-format"

    def test_a_verify_answer_for_another_stream(self):
        manager = bidi_manager()
        answers: list[bool] = []
        manager.verify_dialback(PEER, OURS, "their-stream", "k3y").addCallback(answers.append)
        wire = answer_connection(manager)
        wire.feed(stream_header(PEER, OURS, stream_id="v1") + features(DIALBACK))
        wire.events()
        wire.feed(db_element("verify", PEER, OURS, type="valid", id="another-stream"))
        assert wire.stream_error() == "bad-format"
        wire.drop()
        assert answers == [False]


class TestReversePiggybacking:
    """XEP-0288 §2.2: the receiving server may prove more of its domains on our stream."""

    def ready(self):
        manager = bidi_manager()
        callback = manager.verify_dialback = DialbackCallback()
        wire = answer_ready_outgoing(manager)
        wire.events()
        return manager, callback, wire, link(manager).stream

    def test_verified_over_a_new_connection_then_its_stanzas_are_taken(self):
        manager, callback, wire, stream = self.ready()
        wire.feed(db_element("result", PEER_TOO, OURS, "rooms-key"))
        assert callback.asked == [(PEER_TOO, OURS, "peer-stream-1", "rooms-key")]
        assert wire.elements() == []
        callback.answer(True)
        (answer,) = wire.elements()
        assert (answer.name, answer["from"], answer["to"], answer["type"]) == (
            "result", OURS, PEER_TOO, "valid")
        assert stream.verified == {(PEER, OURS), (PEER_TOO, OURS)}
        wire.feed(message_xml(f"room@{PEER_TOO}", f"alice@{OURS}"))
        assert len(manager.server.router.routed) == 1
        wire.drop()
        assert manager.server.emitted == [
            (events.S2S_LINK_UP, PEER), (events.S2S_LINK_UP, PEER_TOO),
            (events.S2S_LINK_DOWN, PEER), (events.S2S_LINK_DOWN, PEER_TOO)]

    def test_a_key_that_does_not_verify_is_invalid(self):
        manager, callback, wire, stream = self.ready()
        wire.feed(db_element("result", PEER_TOO, OURS, "f0rged"))
        callback.answer(False)
        events_ = wire.events()
        assert events_[0][1]["type"] == "invalid"
        assert (PEER_TOO, OURS) not in stream.verified

    def test_a_target_not_ours_is_a_dialback_error(self):
        manager, callback, wire, _ = self.ready()
        wire.feed(db_element("result", PEER_TOO, "c.example", "k3y"))
        (answer,) = wire.elements()
        assert answer["type"] == "error"
        assert next(next(answer.elements()).elements()).name == "item-not-found"
        assert callback.asked == []

    def test_a_verify_request_is_answered_as_the_authoritative_server(self):
        manager, _, wire, _ = self.ready()
        key = manager.make_key(receiving=PEER, originating=OURS, stream_id="s-9")
        wire.feed(db_element("verify", PEER, OURS, key, id="s-9"))
        (answer,) = wire.elements()
        assert (answer.name, answer["type"], answer["id"]) == ("verify", "valid", "s-9")

    def test_not_on_a_stream_that_is_not_bidirectional(self):
        manager = bidi_manager()
        manager.verify_dialback = DialbackCallback()
        wire = answer_ready_outgoing(manager, bidi=False)
        wire.events()
        wire.feed(db_element("result", PEER_TOO, OURS, "k3y"))
        assert wire.stream_error() == "bad-format"


def test_an_incoming_stream_carries_only_the_proven_pairs_reversed():
    """A bidirectional incoming stream carries ours→peer for each proven (peer, ours); a
    one-way one carries nothing."""
    manager = bidi_manager()
    wire, stream = bidi_incoming(manager, (PEER, OURS))
    assert isinstance(stream, IncomingServerStream)
    assert stream.carries(OURS, PEER)
    assert not stream.carries(PEER, OURS) and not stream.carries(OURS_TOO, PEER)
    plain = make_manager("verified")
    plain_wire, plain_stream = incoming(plain)
    plain_wire.feed(stream_header())
    assert not plain_stream.carries(OURS, PEER)


def test_external_authzid_names_the_proven_domain():
    """SASL EXTERNAL for another domain of the peer: that domain is the one proven."""
    manager = bidi_manager("secure")
    wire, stream = incoming(manager, cert=VALID_CERT)
    wire.feed(stream_header() + STARTTLS)
    wire.feed(stream_header())
    wire.events()
    authzid = base64.b64encode(PEER_TOO.encode()).decode()
    wire.feed(BIDI + f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
    assert stream.verified == {(PEER_TOO, OURS)}
    wire.feed(stream_header())
    wire.events()
    manager.send(outbound("m1", to=f"x@{PEER_TOO}"))
    assert messages(wire) == ["m1"]
