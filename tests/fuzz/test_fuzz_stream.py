"""Property test of a whole client stream before and through authentication (XmlStream,
ClientStream, the SASL and SASL2 exchange, bind): sequences of negotiation elements with
arbitrary or almost-right payloads, on a stream that counts as encrypted, never make the
server fail inside (no <internal-server-error/>), whatever order they come in."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.streams import client_stream
from tests.fuzz.test_fuzz_sasl import PASSWORD, Accounts

HEADER = ("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams'>")
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
ACCOUNTS = Accounts("localhost")
SASL2 = "urn:xmpp:sasl:2"
MECHANISMS = ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "X-BOGUS", ""]

payloads = st.one_of(
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["=", "", "!!notbase64", base64.b64encode(
        b"\0alice\0" + PASSWORD.encode()).decode(), base64.b64encode(b"n,,n=alice,r=abc").decode(),
        base64.b64encode(b"\0alice\0wrong").decode()]),
)


@st.composite
def elements(draw) -> str:
    kind = draw(st.sampled_from(["auth", "response", "abort", "sasl2", "sasl2-response",
                                 "bind", "session", "header", "starttls", "iq", "junk",
                                 "login", "login", "login2"]))
    mechanism = draw(st.sampled_from(MECHANISMS))
    payload = draw(payloads)
    if kind in ("login", "login2"):  # the right password: the later steps get reached
        kind, mechanism = ("auth" if kind == "login" else "sasl2"), "PLAIN"
        payload = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    if kind == "auth":
        return f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{payload}</auth>"
    if kind == "response":
        return f"<response xmlns='{SASL}'>{payload}</response>"
    if kind == "abort":
        return f"<abort xmlns='{SASL}'/>"
    if kind == "sasl2":
        inner = draw(st.sampled_from(["", "<user-agent id='x'/>",
                                      "<bind xmlns='urn:xmpp:bind:0'/>"]))
        return (f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>"
                f"<initial-response>{payload}</initial-response>{inner}</authenticate>")
    if kind == "sasl2-response":
        return f"<response xmlns='{SASL2}'>{payload}</response>"
    if kind == "bind":
        resource = draw(st.sampled_from(["", "<resource>r</resource>", "<resource/>",
                                         "<resource>\u202e</resource>"]))
        return (f"<iq type='{draw(st.sampled_from(['set', 'get']))}' id='b'>"
                f"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{resource}</bind></iq>")
    if kind == "session":
        return "<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    if kind == "header":
        return HEADER
    if kind == "starttls":
        return "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    if kind == "iq":
        return "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    return draw(st.sampled_from(["<message><body>x</body></message>", "<presence/>",
                                 "<x xmlns='urn:x'/>", "</stream:stream>"]))


LOGIN = (f"<auth xmlns='{SASL}' mechanism='PLAIN'>"
         + base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode() + "</auth>")
BIND = ("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>r</resource></bind></iq>")
# How far the script gets right before the hostile part: nowhere, logged in, restarted, bound.
PREFIXES = [[], [LOGIN], [LOGIN, HEADER], [LOGIN, HEADER, BIND]]


@given(st.booleans(), st.sampled_from(PREFIXES), st.lists(elements(), max_size=8))
def test_negotiation_in_any_order_never_fails_inside(direct_tls, prefix, sequence):
    stream, transport = client_stream(direct_tls, ACCOUNTS)
    stream.dataReceived(HEADER.encode())
    for element in prefix + sequence:
        if stream.disconnected or transport.disconnecting:
            break
        stream.dataReceived(element.encode())
    written = transport.value()
    assert b"internal-server-error" not in written, written
    assert b"undefined-condition" not in written, written
