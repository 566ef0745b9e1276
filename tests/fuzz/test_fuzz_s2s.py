"""Property test of an incoming server-to-server stream (xmppd.s2s.streams) under any
sequence of what a hostile peer can send: headers, STARTTLS, SASL EXTERNAL, dialback requests
and unsolicited answers, bidi, stanzas with any addresses. The stream never fails inside
(no <internal-server-error/>), and the router only ever gets a stanza from a domain the peer
proved on that stream, for one of our domains."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_s2s_streams import (
    OURS,
    OURS_TOO,
    PEER,
    PEER_TOO,
    STARTTLS,
    DialbackCallback,
    db_element,
    incoming,
    make_manager,
    message_xml,
    stream_header,
)

DOMAINS = [OURS, OURS_TOO, PEER, PEER_TOO, "evil.example", "", "bad domain", "a@b"]
ADDRESSES = [f"u@{d}" if d else "" for d in DOMAINS] + [PEER, OURS, f"u@{PEER}/r"]


@st.composite
def peer_elements(draw) -> str:
    kind = draw(st.sampled_from(["header", "starttls", "result", "verify", "answer", "sasl",
                                 "bidi", "stanza", "stanza", "stanza", "stanza", "iq",
                                 "error", "junk"]))
    frm, to = draw(st.sampled_from(DOMAINS)), draw(st.sampled_from(DOMAINS))
    if kind == "header":
        return stream_header(frm=frm or None, to=to or None,
                             version=draw(st.sampled_from(["1.0", "2.0", "0.9", None])),
                             db=draw(st.booleans()))
    if kind == "starttls":
        return STARTTLS
    if kind in ("result", "verify"):
        attributes = {"id": "s1"} if kind == "verify" else {}
        return db_element(kind, frm, to, draw(st.sampled_from(["k3y", "", "x" * 70])),
                          **attributes)
    if kind == "answer":
        return db_element(draw(st.sampled_from(["result", "verify"])), frm, to,
                          type=draw(st.sampled_from(["valid", "invalid", "error", "bogus"])))
    if kind == "sasl":
        authzid = base64.b64encode(frm.encode()).decode() if draw(st.booleans()) else "="
        return ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism="
                f"'{draw(st.sampled_from(['EXTERNAL', 'PLAIN']))}'>{authzid}</auth>")
    if kind == "bidi":
        return "<bidi xmlns='urn:xmpp:bidi'/>"
    if kind == "stanza":  # mostly plausible addresses, so that some pass the checks
        senders = [f"u@{d}" for d in (PEER, PEER, PEER, PEER_TOO, "evil.example")]
        recipients = [f"u@{d}" for d in (OURS, OURS, OURS, OURS_TOO, PEER)]
        if draw(st.integers(0, 4)) == 0:
            senders = recipients = ADDRESSES
        return message_xml(draw(st.sampled_from(senders)), draw(st.sampled_from(recipients)))
    if kind == "iq":
        type_ = draw(st.sampled_from(["get", "set", "result", "bogus"]))
        id_ = draw(st.sampled_from(["", " id='1'"]))
        payload = draw(st.sampled_from(["", "<ping xmlns='urn:xmpp:ping'/>"]))
        return (f"<iq type='{type_}' from='{draw(st.sampled_from(ADDRESSES))}' "
                f"to='{draw(st.sampled_from(ADDRESSES))}'{id_}>{payload}</iq>")
    if kind == "error":
        return ("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error>")
    return draw(st.sampled_from(["<x xmlns='urn:x'/>", "<presence/>", "</stream:stream>",
                                 "<db:result/>"]))


# How far the peer gets right before the hostile part: nothing, a header, a dialback request.
LEADS = [[], [stream_header()], [stream_header(), db_element("result", PEER, OURS, "k3y")]]


@given(st.sampled_from(["promiscuous", "verified", "verified", "secure", "trusted"]),
       st.sampled_from([None, True, True, False]),  # dialback callbacks: unanswered, valid, invalid
       st.sampled_from(LEADS), st.lists(peer_elements(), max_size=10))
def test_a_hostile_peer_never_gets_anything_routed_it_did_not_prove(level, answer, lead,
                                                                     elements):
    manager = make_manager(level)
    callback = manager.verify_dialback = DialbackCallback()
    wire, stream = incoming(manager)
    for element in lead + elements:
        if stream.disconnected or wire.closed:
            break
        wire.feed(element)
        while answer is not None and callback.pending:  # the authoritative server says
            callback.answer(answer)
    written = wire.transport.value()
    assert b"internal-server-error" not in written, written
    for stanza, _origin in manager.server.router.routed:
        assert (stanza.sender.host, stanza.recipient.host) in stream.verified, stanza
        assert stanza.recipient.host in (OURS, OURS_TOO), stanza
