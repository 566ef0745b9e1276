"""The stream serializer: namespaces relative to the stream, escaping, headers, round trips."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError, StreamError
from xmppd.xml import STREAM_END, StreamParser, serialize, stream_header

DIALBACK = "jabber:server:dialback"
CHATSTATES = "http://jabber.org/protocol/chatstates"
FORWARD = "urn:xmpp:forward:0"


def reparse(data: bytes, content_ns: str = ns.CLIENT) -> list[domish.Element]:
    """Parse serializer output inside a stream, as a peer would."""
    elements: list[domish.Element] = []
    parser = StreamParser(lambda header: None, elements.append, lambda: None)
    parser.feed(stream_header(content_ns=content_ns, prefixes={DIALBACK: "db"}) + data)
    return elements


def tree(node, translate: dict | None = None):
    """A comparable snapshot of an element, optionally renaming namespaces."""
    translate = translate or {}
    if isinstance(node, str):
        return node
    return (
        translate.get(node.uri, node.uri),
        node.name,
        sorted(node.attributes.items(), key=repr),
        [tree(child, translate) for child in node.children],
    )


# -- namespaces


@pytest.mark.parametrize("uri", [None, ns.CLIENT, ns.SERVER])
@pytest.mark.parametrize("stream_ns", [ns.CLIENT, ns.SERVER])
def test_top_level_content_element_has_no_xmlns(uri, stream_ns):
    message = domish.Element((uri, "message"))
    message["to"] = "juliet@example.com"
    message.addElement("body", content="hi")
    assert serialize(message, stream_ns) == (
        b"<message to='juliet@example.com'><body>hi</body></message>"
    )


def test_client_stanza_on_server_stream_takes_the_server_namespace():
    message = domish.Element((ns.CLIENT, "message"))
    message.addElement((ns.CLIENT, "body"), content="hi")
    (relayed,) = reparse(serialize(message, ns.SERVER), ns.SERVER)
    assert (relayed.uri, relayed.body.uri) == (ns.SERVER, ns.SERVER)


def test_payload_in_other_namespace_declares_it_once():
    iq = domish.Element((None, "iq"))
    iq["type"] = "result"
    query = iq.addElement((ns.ROSTER, "query"))
    item = query.addElement("item")
    item["jid"] = "romeo@example.net"
    item.addElement("group", content="Friends")
    query.addChild(domish.Element((None, "item")))
    assert serialize(iq, ns.CLIENT) == (
        b"<iq type='result'><query xmlns='jabber:iq:roster'>"
        b"<item jid='romeo@example.net'><group>Friends</group></item><item/>"
        b"</query></iq>"
    )


def test_top_level_element_in_another_namespace_declares_it():
    starttls = domish.Element((ns.TLS, "proceed"))
    assert serialize(starttls, ns.CLIENT) == (
        b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    )


def test_content_namespace_nested_in_a_payload_is_declared_again():
    message = domish.Element((ns.CLIENT, "message"))
    forwarded = message.addElement((FORWARD, "forwarded"))
    inner = forwarded.addElement((ns.CLIENT, "message"))
    inner.addElement("body", content="old")
    data = serialize(message, ns.SERVER)
    assert data == (
        b"<message><forwarded xmlns='urn:xmpp:forward:0'>"
        b"<message xmlns='jabber:client'><body>old</body></message></forwarded></message>"
    )
    (outer,) = reparse(data, ns.SERVER)
    assert outer.forwarded.message.body.uri == ns.CLIENT


def test_stream_namespace_uses_the_stream_prefix():
    features = domish.Element((ns.STREAMS, "features"))
    features.addElement((ns.TLS, "starttls")).addElement("required")
    assert serialize(features, ns.CLIENT) == (
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
        b"<required/></starttls></stream:features>"
    )


def test_stream_error_serializes_as_rfc_6120_shows_it():
    data = serialize(StreamError("host-unknown", "no such host").to_element(), ns.CLIENT)
    assert data == (
        b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text>"
        b"</stream:error>"
    )
    (error,) = reparse(data)
    assert (error.uri, error.name) == (ns.STREAMS, "error")


def test_stanza_error_reply_keeps_payload_namespaces():
    iq = domish.Element((ns.CLIENT, "iq"))
    iq["type"], iq["id"], iq["from"] = "get", "q1", "romeo@example.net/orchard"
    iq.addElement((ns.VERSION, "query"))
    reply = StanzaError("service-unavailable").to_response(iq)
    (parsed,) = reparse(serialize(reply, ns.CLIENT))
    assert parsed.query.uri == ns.VERSION
    condition = parsed.error.firstChildElement()
    assert (parsed.error.uri, condition.uri) == (ns.CLIENT, ns.STANZA_ERRORS)


def test_extra_root_prefixes_are_used():
    result = domish.Element((DIALBACK, "result"))
    result["from"], result["to"] = "a.example", "b.example"
    result.addContent("key")
    data = serialize(result, ns.SERVER, prefixes={DIALBACK: "db"})
    assert data == b"<db:result from='a.example' to='b.example'>key</db:result>"
    (parsed,) = reparse(data, ns.SERVER)
    assert (parsed.uri, parsed.name) == (DIALBACK, "result")


def test_element_in_no_namespace_undeclares_the_default():
    message = domish.Element((None, "message"))
    message.addElement(("", "odd"))
    assert serialize(message, ns.CLIENT) == b"<message><odd xmlns=''/></message>"


# -- attributes


def test_xml_lang_attribute_both_spellings():
    message = domish.Element((None, "message"))
    message["xml:lang"] = "en"
    body = message.addElement("body", content="x")
    body[(ns.XML, "lang")] = "de"
    data = serialize(message, ns.CLIENT)
    assert data == b"<message xml:lang='en'><body xml:lang='de'>x</body></message>"
    (parsed,) = reparse(data)
    assert parsed["xml:lang"] == "en"
    assert parsed.body["xml:lang"] == "de"


def test_namespaced_attributes_get_a_declared_prefix():
    item = domish.Element(("urn:example:x", "item"))
    item[("urn:example:a", "one")] = "1"
    item[("urn:example:a", "two")] = "2"
    item[("urn:example:b", "three")] = "3"
    (parsed,) = reparse(serialize(item, ns.CLIENT))
    assert parsed.attributes == {
        ("urn:example:a", "one"): "1",
        ("urn:example:a", "two"): "2",
        ("urn:example:b", "three"): "3",
    }


def test_attribute_values_are_escaped():
    message = domish.Element((None, "message"))
    message["id"] = "a&b<c>d'e\"f\ng\th\ri"
    data = serialize(message, ns.CLIENT)
    assert data == b"<message id='a&amp;b&lt;c&gt;d&apos;e&quot;f&#10;g&#9;h&#13;i'/>"
    (parsed,) = reparse(data)
    assert parsed["id"] == "a&b<c>d'e\"f\ng\th\ri"


# -- text and children


def test_text_is_escaped():
    body = domish.Element((None, "body"))
    body.addContent("1 < 2 && 3 > 2 ]]> 'q' \"q\"\r\n")
    data = serialize(body, ns.CLIENT)
    assert data == b"<body>1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt; 'q' \"q\"&#13;\n</body>"
    (parsed,) = reparse(data)
    assert str(parsed) == "1 < 2 && 3 > 2 ]]> 'q' \"q\"\r\n"


def test_unicode_is_written_as_utf8():
    body = domish.Element((None, "body"))
    body.addContent("h\u00e9llo \u2603 \U0001f600 \u4e2d\u6587")
    body["title"] = "\u00fc"
    data = serialize(body, ns.CLIENT)
    assert data == "<body title='\u00fc'>h\u00e9llo \u2603 \U0001f600 \u4e2d\u6587</body>".encode()
    (parsed,) = reparse(data)
    assert str(parsed) == "h\u00e9llo \u2603 \U0001f600 \u4e2d\u6587"


def test_serialized_xml_children_are_written_as_they_are():
    message = domish.Element((None, "message"))
    message.addContent("<not raw>")
    message.addRawXml("<x xmlns='urn:example'><y/></x>")
    assert serialize(message, ns.CLIENT) == (
        b"<message>&lt;not raw&gt;<x xmlns='urn:example'><y/></x></message>"
    )


def test_empty_and_text_only_elements():
    assert serialize(domish.Element((None, "presence")), ns.CLIENT) == b"<presence/>"
    message = domish.Element((None, "message"))
    message.addElement("body").addContent("")
    assert serialize(message, ns.CLIENT) == b"<message><body></body></message>"


def test_mixed_content_keeps_order():
    body = domish.Element(("http://www.w3.org/1999/xhtml", "body"))
    body.addContent("a ")
    body.addElement("em", content="b")
    body.addContent(" c")
    assert serialize(body, ns.CLIENT) == (
        b"<body xmlns='http://www.w3.org/1999/xhtml'>a <em>b</em> c</body>"
    )


# -- round trips

STANZAS = (
    b"<message to='juliet@example.com' type='chat' id='m1' xml:lang='de'>"
    b"<body>Wherefore &amp; why &lt;art&gt; thou \xe2\x98\x83</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    b"<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v1'>"
    b"<item jid='romeo@example.net' subscription='both'><group>Friends</group></item>"
    b"</query></iq>"
    b"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
    b"<status>away &apos;n&apos; about</status></presence>"
    b"<message><p:x xmlns:p='urn:example:p' p:flag='1'><y>t</y><p:z/></p:x>"
    b"<html xmlns='http://jabber.org/protocol/xhtml-im'>"
    b"<body xmlns='http://www.w3.org/1999/xhtml'>a <em>b</em> c</body></html></message>"
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
    b"</starttls></stream:features>"
)


def test_parse_serialize_parse_gives_the_same_trees():
    first = reparse(STANZAS)
    assert len(first) == 5
    second = reparse(b"".join(serialize(e, ns.CLIENT) for e in first))
    assert [tree(e) for e in second] == [tree(e) for e in first]


def test_canonical_stanzas_serialize_byte_for_byte():
    canonical = STANZAS.split(b"<message><p:x")[0].replace(b"&apos;", b"'")
    elements = reparse(canonical)
    assert b"".join(serialize(e, ns.CLIENT) for e in elements) == canonical


def test_relaying_from_client_to_server_stream_changes_only_the_content_namespace():
    first = reparse(STANZAS)
    relayed = reparse(b"".join(serialize(e, ns.SERVER) for e in first), ns.SERVER)
    to_client = {ns.SERVER: ns.CLIENT}
    assert [tree(e, to_client) for e in relayed] == [tree(e) for e in first]


def test_agrees_with_domish_to_xml():
    first = reparse(STANZAS)
    ours = reparse(b"".join(serialize(e, ns.CLIENT) for e in first))
    domish_written = reparse("".join(e.toXml() for e in first).encode())
    assert [tree(e) for e in ours] == [tree(e) for e in domish_written]


# -- stream framing


def test_stream_header():
    assert stream_header(to="example.com", from_="romeo@example.net", id=None) == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='example.com' from='romeo@example.net' version='1.0' xml:lang='en'>"
    )


def test_stream_header_for_servers_with_dialback_and_no_lang():
    header = stream_header(
        from_="a.example", id="s1", content_ns=ns.SERVER, lang=None, prefixes={DIALBACK: "db"}
    )
    assert header == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server'"
        b" xmlns:stream='http://etherx.jabber.org/streams'"
        b" xmlns:db='jabber:server:dialback' from='a.example' id='s1' version='1.0'>"
    )


def test_stream_header_escapes_values_and_parses():
    headers = []
    parser = StreamParser(headers.append, lambda e: None, lambda: None)
    parser.feed(stream_header(to="a'b&c<d>", id="x\"y", version=None, lang="fr"))
    (header,) = headers
    assert header.attributes == {"to": "a'b&c<d>", "id": 'x"y', "xml:lang": "fr"}
    assert header.default_namespace == ns.CLIENT


def test_stream_end_closes_a_stream():
    ended = []
    parser = StreamParser(lambda h: None, lambda e: None, lambda: ended.append(True))
    parser.feed(stream_header() + STREAM_END)
    assert STREAM_END == b"</stream:stream>"
    assert ended == [True]
