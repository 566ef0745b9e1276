"""RFC 7395 framing (xmppd.web.framing) and the web client policy (xmppd.web.policy)."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.web.framing import (
    FRAMING,
    MessageParser,
    close_element,
    frame_element,
    header_from_open,
    is_framing,
    open_element,
    parse_message,
)
from xmppd.web.policy import WebPolicy


def test_a_message_is_one_element():
    element = parse_message(b"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
                            1000)
    assert (element.uri, element.name, element["to"]) == (ns.CLIENT, "message", "a@b")
    opened = parse_message(f"<open xmlns='{FRAMING}' to='example.org' version='1.0'/>".encode(),
                           1000)
    assert is_framing(opened, "open")
    header = header_from_open(opened)
    assert header.attributes == {"to": "example.org", "version": "1.0"}
    assert (header.uri, header.default_namespace) == (ns.STREAMS, ns.CLIENT)


@pytest.mark.parametrize(("message", "condition"), [
    (b"<a/><b/>", "bad-format"),
    (b"", "bad-format"),
    (b"  ", "bad-format"),
    (b"<a>", "not-well-formed"),
    (b"<a></b>", "not-well-formed"),
    (b"</stream:stream>", "bad-format"),
    (b"<a><!-- no --></a>", "restricted-xml"),
    (b"<a>&ent;</a>", "restricted-xml"),
    (b"text", "bad-format"),
    (b"<a>" + b"x" * 2000 + b"</a>", "policy-violation"),
])
def test_bad_messages(message, condition):
    with pytest.raises(StreamError) as raised:
        parse_message(message, 1000)
    assert raised.value.condition == condition


def test_one_parser_reads_a_whole_stream_of_messages():
    """One parser per stream (not per message): every message still stands alone, the
    parser survives the idle sweeper freeing its expat, and a bad message ends it."""
    parser = MessageParser(1000)
    first = parser.parse(b"<message xmlns='jabber:client' to='a@b'><body>1</body></message>")
    assert (first.uri, first.parent, str(first.body)) == (ns.CLIENT, None, "1")
    assert parser.release_if_idle() is False  # fed since the last sweep
    assert parser.release_if_idle() is True
    second = parser.parse(b" <presence/>\n")
    assert (second.uri, second.name, second.parent) == (ns.CLIENT, "presence", None)
    assert is_framing(parser.parse(f"<close xmlns='{FRAMING}'/>".encode()), "close")
    with pytest.raises(StreamError) as raised:
        parser.parse(b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/>")  # unfinished
    assert raised.value.condition == "not-well-formed"
    with pytest.raises(StreamError):
        parser.parse(b"<presence/>")  # the stream is over


@pytest.mark.parametrize(("message", "condition"), [
    (b"<a/><b", "not-well-formed"),  # a tag cut off after a whole element
    (b"<a/></stream:stream>", "bad-format"),  # the wrapper is not the client's to end
    (b"<message>" + b"x" * 1000 + b"</message>", "policy-violation"),
])
def test_a_message_after_a_good_one(message, condition):
    parser = MessageParser(1000)
    parser.parse(b"<presence/>")
    with pytest.raises(StreamError) as raised:
        parser.parse(message)
    assert raised.value.condition == condition


def test_output_is_standalone_xml():
    message = domish.Element((ns.CLIENT, "message"))
    message["to"] = "a@b"
    message.addElement("body", content="x")
    assert frame_element(message) == (
        b"<message xmlns='jabber:client' to='a@b'><body>x</body></message>")
    features = domish.Element((ns.STREAMS, "features"))
    features.addElement((ns.BIND, "bind"))
    assert frame_element(features) == (
        f"<stream:features xmlns:stream='{ns.STREAMS}'><bind xmlns='{ns.BIND}'/>"
        f"</stream:features>").encode()
    success = domish.Element((ns.SASL, "success"))
    assert frame_element(success) == f"<success xmlns='{ns.SASL}'/>".encode()
    # what we send parses back as a message
    assert parse_message(frame_element(features), 1000).uri == ns.STREAMS
    assert open_element("a", "b", "i&d", "1.0", "en") == (
        f"<open xmlns='{FRAMING}' to='a' from='b' id='i&amp;d' version='1.0' "
        f"xml:lang='en'/>").encode()
    assert b"see-other-uri='wss://x/y'" in close_element("wss://x/y")


def test_origins():
    anyone = WebPolicy()
    assert anyone.origin_allowed("https://evil.example") and anyone.origin_allowed(None)
    pinned = WebPolicy(cors_origins=("https://chat.example.org",))
    assert pinned.origin_allowed("https://Chat.example.org")
    assert pinned.origin_allowed(None)  # not a browser page
    assert not pinned.origin_allowed("https://evil.example")
    assert not pinned.origin_allowed("null")


def test_forwarded_headers_only_from_trusted_proxies():
    policy = WebPolicy(trusted_proxies=("10.0.0.1", "10.0.0.2"))
    headers = {"x-forwarded-for": "203.0.113.9, 198.51.100.7, 10.0.0.2",
               "x-forwarded-proto": "https"}
    client = policy.client("10.0.0.1", False, headers)
    assert (client.address, client.secure) == ("198.51.100.7", True)
    stranger = policy.client("192.0.2.5", False, headers)
    assert (stranger.address, stranger.secure) == ("192.0.2.5", False)
    plain = policy.client("10.0.0.1", True, {"x-forwarded-for": "junk, 203.0.113.9",
                                             "x-forwarded-proto": "http"})
    assert (plain.address, plain.secure) == ("203.0.113.9", False)
    assert policy.client("127.0.0.1", False, {}).secure  # loopback: never leaves the host
    assert policy.client("::1", False, {}).secure


def test_a_forwarded_proto_the_client_wrote_does_not_make_its_leg_encrypted():
    """A proxy that appends to X-Forwarded-Proto keeps what the client sent in front: a
    plain-HTTP client that writes 'https' itself is still plain (it would be offered PLAIN
    and taken for encrypted); every leg the header names must be https."""
    policy = WebPolicy(trusted_proxies=("10.0.0.1",))
    spoofed = policy.client("10.0.0.1", True, {"x-forwarded-for": "203.0.113.9",
                                               "x-forwarded-proto": "https, http"})
    assert not spoofed.secure
    assert not policy.client("10.0.0.1", True, {"x-forwarded-proto": "https,http"}).secure
    assert policy.client("10.0.0.1", False, {"x-forwarded-proto": "https, HTTPS"}).secure
    assert not policy.client("10.0.0.1", False, {"x-forwarded-proto": "https, "}).secure
