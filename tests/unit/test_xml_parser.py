"""The restricted stream parser: events, element trees, RFC 6120 §11 restrictions, limits."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.xml import StreamHeader, StreamParser

HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0' xml:lang='en'>"
)
DECLARATION = b"<?xml version='1.0'?>"
MESSAGE = (
    b"<message to='juliet@example.com' type='chat' id='m1' xml:lang='de'>"
    b"<body>Wherefore &amp; why &lt;art&gt; thou \xe2\x98\x83</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
)
ROSTER_IQ = (
    b"<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v1'>"
    b"<item jid='romeo@example.net' subscription='both'><group>Friends</group></item>"
    b"</query></iq>"
)


class Recorder:
    """Collects what the parser reports."""

    def __init__(self) -> None:
        self.headers: list[StreamHeader] = []
        self.elements: list[domish.Element] = []
        self.ended = 0

    def parser(self, **limits) -> StreamParser:
        return StreamParser(self.headers.append, self.elements.append, self.end, **limits)

    def end(self) -> None:
        self.ended += 1


def tree(node):
    """A comparable snapshot of an element: namespaces, names, attributes, children."""
    if isinstance(node, str):
        return node
    return (
        node.uri,
        node.name,
        sorted(node.attributes.items(), key=repr),
        [tree(child) for child in node.children],
    )


def parse(data: bytes, **limits) -> Recorder:
    recorder = Recorder()
    recorder.parser(**limits).feed(data)
    return recorder


def condition_of(data: bytes, **limits) -> str:
    recorder = Recorder()
    parser = recorder.parser(**limits)
    with pytest.raises(StreamError) as caught:
        parser.feed(data)
    return caught.value.condition


# -- the stream header


def test_header_reports_namespaces_and_attributes():
    recorder = parse(DECLARATION + HEADER)
    assert recorder.headers == [
        StreamHeader(
            uri=ns.STREAMS,
            name="stream",
            attributes={"to": "example.com", "version": "1.0", "xml:lang": "en"},
            default_namespace=ns.CLIENT,
            prefixes={"stream": ns.STREAMS},
        )
    ]
    assert recorder.elements == [] and recorder.ended == 0


def test_header_without_default_namespace_or_stream_namespace():
    recorder = parse(b"<stream to='x'>")
    (header,) = recorder.headers
    assert header.uri is None
    assert header.name == "stream"
    assert header.default_namespace is None
    assert header.prefixes == {}


def test_header_on_server_stream_keeps_extra_prefixes():
    recorder = parse(
        b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback'"
        b" xmlns:stream='http://etherx.jabber.org/streams' from='a.example'>"
    )
    (header,) = recorder.headers
    assert header.default_namespace == ns.SERVER
    assert header.prefixes == {"db": "jabber:server:dialback", "stream": ns.STREAMS}
    assert header.attributes == {"from": "a.example"}


@pytest.mark.parametrize(
    "declaration",
    [
        b"<?xml version='1.0'?>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n',
        b"<?xml version='1.0' encoding='utf-8'?>",
        b"\xef\xbb\xbf<?xml version='1.0'?>",
    ],
)
def test_xml_declaration_at_start_is_accepted(declaration):
    recorder = parse(declaration + HEADER + MESSAGE)
    assert len(recorder.headers) == 1
    assert len(recorder.elements) == 1


# -- elements


def test_stanza_becomes_domish_element_with_namespaces():
    recorder = parse(HEADER + MESSAGE)
    (message,) = recorder.elements
    assert (message.uri, message.name, message.defaultUri) == (ns.CLIENT, "message", ns.CLIENT)
    assert message.attributes == {
        "to": "juliet@example.com",
        "type": "chat",
        "id": "m1",
        "xml:lang": "de",
    }
    assert message.parent is None
    body, active = message.elements()
    assert (body.uri, body.name) == (ns.CLIENT, "body")
    assert str(body) == "Wherefore & why <art> thou \u2603"
    assert body.parent is message
    assert (active.uri, active.name) == ("http://jabber.org/protocol/chatstates", "active")


def test_namespaced_payload_and_inheritance():
    (iq,) = parse(HEADER + ROSTER_IQ).elements
    query = iq.firstChildElement()
    assert (query.uri, query.name, query["ver"]) == (ns.ROSTER, "query", "v1")
    item = query.firstChildElement()
    assert (item.uri, item.defaultUri) == (ns.ROSTER, ns.ROSTER)
    assert item.firstChildElement().uri == ns.ROSTER
    assert str(item.group) == "Friends"


def test_text_and_children_keep_their_order():
    (message,) = parse(HEADER + b"<message>one<b/>two<i>x</i>three</message>").elements
    assert [c if isinstance(c, str) else c.name for c in message.children] == [
        "one", "b", "two", "i", "three"
    ]


def test_references_and_cdata_become_text():
    data = (
        b"<message><body>&amp;&lt;&gt;&quot;&apos;&#65;&#x263A;"
        b"<![CDATA[<raw> & ]]></body></message>"
    )
    (message,) = parse(HEADER + data).elements
    assert message.body.children == ["&<>\"'A\u263a<raw> & "]


def test_prefixed_elements_and_attributes_follow_domish_conventions():
    data = (
        b"<message><p:x xmlns:p='urn:example:p' p:flag='1' xml:space='preserve'>"
        b"<y/></p:x><z xmlns=''/></message>"
    )
    (message,) = parse(HEADER + data).elements
    x, z = message.elements()
    assert (x.uri, x.name, x.defaultUri) == ("urn:example:p", "x", ns.CLIENT)
    assert x.localPrefixes == {"p": "urn:example:p"}
    assert x.attributes == {("urn:example:p", "flag"): "1", "xml:space": "preserve"}
    assert x.firstChildElement().uri == ns.CLIENT
    assert (z.uri, z.defaultUri) == ("", "")


def test_domish_to_xml_round_trips_parsed_elements():
    data = MESSAGE + ROSTER_IQ + b"<message><p:x xmlns:p='urn:p' p:a='1'><y/></p:x></message>"
    first = parse(HEADER + data).elements
    again = parse(HEADER + "".join(e.toXml() for e in first).encode()).elements
    assert [tree(e) for e in again] == [tree(e) for e in first]


def test_every_split_point_gives_the_same_elements():
    data = DECLARATION + HEADER + b" " + MESSAGE + b"\n" + ROSTER_IQ + b"</stream:stream>"
    expected = [tree(e) for e in parse(data).elements]
    assert len(expected) == 2
    for cut in range(len(data) + 1):
        recorder = Recorder()
        parser = recorder.parser()
        parser.feed(data[:cut])
        parser.feed(data[cut:])
        assert [tree(e) for e in recorder.elements] == expected, cut
        assert recorder.ended == 1


def test_byte_at_a_time_gives_the_same_elements():
    data = HEADER + MESSAGE + ROSTER_IQ
    expected = [tree(e) for e in parse(data).elements]
    recorder = Recorder()
    parser = recorder.parser()
    for index in range(len(data)):
        parser.feed(data[index : index + 1])
    assert [tree(e) for e in recorder.elements] == expected


def test_element_is_delivered_as_soon_as_it_closes():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER + b"<presence/><message><body>hi</bo")
    assert [e.name for e in recorder.elements] == ["presence"]
    parser.feed(b"dy></message>")
    assert [e.name for e in recorder.elements] == ["presence", "message"]


def test_whitespace_keepalives_are_ignored():
    recorder = Recorder()
    parser = recorder.parser(max_stanza_size=1000)
    parser.feed(HEADER)
    for _ in range(3000):
        parser.feed(b" \n\t\r\n ")
    parser.feed(b"<presence/>   ")
    assert [e.name for e in recorder.elements] == ["presence"]
    assert recorder.elements[0].children == []


def test_stream_end_is_reported_and_later_data_ignored():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER + b"<presence/></stream:stream><message/>garbage<<<")
    parser.feed(b"more garbage")
    assert recorder.ended == 1
    assert [e.name for e in recorder.elements] == ["presence"]


def test_stop_from_a_callback_ignores_the_rest():
    elements = []
    parser = StreamParser(lambda header: None, lambda e: (elements.append(e), parser.stop()),
                          lambda: None)
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message/>")
    parser.feed(b"<presence/>")
    assert [e.name for e in elements] == ["starttls"]


# -- RFC 6120 §11.1 restricted XML

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
    b"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
    + HEADER
    + b"<message><body>&lol3;</body></message>"
)
EXTERNAL_ENTITY = (
    b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
    + HEADER
    + b"<message><body>&xxe;</body></message>"
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<!DOCTYPE stream>" + HEADER, id="doctype"),
        pytest.param(DECLARATION + b"<!DOCTYPE stream SYSTEM 'http://x/y.dtd'>" + HEADER,
                     id="external-dtd"),
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(EXTERNAL_ENTITY, id="external-entity"),
        pytest.param(b"<!DOCTYPE s [<!ENTITY % p SYSTEM 'http://x/p'> %p;]>" + HEADER,
                     id="parameter-entity"),
        pytest.param(b"<!-- hello -->" + HEADER, id="comment-before-root"),
        pytest.param(HEADER + b"<!-- hello -->", id="comment-between-stanzas"),
        pytest.param(HEADER + b"<message><!-- hi --></message>", id="comment-in-stanza"),
        pytest.param(b"<?php echo 1; ?>" + HEADER, id="pi-before-root"),
        pytest.param(HEADER + b"<message><?foo bar?></message>", id="pi-in-stanza"),
        pytest.param(HEADER + b"<?xml version='1.0'?>", id="late-xml-declaration"),
        pytest.param(HEADER + b"<message><body>&xxe;</body></message>", id="undefined-entity"),
    ],
)
def test_restricted_xml_is_refused(data):
    recorder = Recorder()
    parser = recorder.parser()
    with pytest.raises(StreamError) as caught:
        parser.feed(data)
    assert caught.value.condition == "restricted-xml"
    assert recorder.elements == []


def test_restricted_xml_is_refused_when_split():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER + b"<message><!")
    with pytest.raises(StreamError) as caught:
        parser.feed(b"-- x -->")
    assert caught.value.condition == "restricted-xml"


# -- malformed input and encodings


@pytest.mark.parametrize(
    "data",
    [
        b"<<<>>>",
        b"hello world",
        HEADER + b"<message></presence>",
        HEADER + b"<message to='a' to='b'/>",
        HEADER + b"<message to=unquoted/>",
        HEADER + b"<message><body>\xff\xfe</body></message>",
        HEADER + b"<message><body>\xc0\xaf</body></message>",
        HEADER + b"<message><body>\xed\xa0\x80</body></message>",
        HEADER + b"<message><body>&#0;</body></message>",
        HEADER + b"<message><body>\x01</body></message>",
        HEADER + b"</stream:strea>",
    ],
)
def test_malformed_xml_is_not_well_formed(data):
    assert condition_of(data) == "not-well-formed"


def test_unbound_prefix_is_bad_namespace_prefix():
    assert condition_of(HEADER + b"<foo:message/>") == "bad-namespace-prefix"


def test_text_between_stanzas_is_bad_format():
    assert condition_of(HEADER + b"<presence/>hello") == "bad-format"


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER,
        b"<?xml version='1.0' encoding='UTF-16'?>" + HEADER,
        (DECLARATION + HEADER).decode().encode("utf-16"),
        (DECLARATION + HEADER).decode().encode("utf-16-be"),
        (DECLARATION + HEADER).decode().encode("utf-32"),
    ],
)
def test_other_encodings_are_unsupported(data):
    assert condition_of(data) == "unsupported-encoding"


def test_errors_keep_being_raised_afterwards():
    recorder = Recorder()
    parser = recorder.parser()
    with pytest.raises(StreamError):
        parser.feed(HEADER + b"<message><<")
    for later in (b"<presence/>", b"", HEADER):
        with pytest.raises(StreamError) as caught:
            parser.feed(later)
        assert caught.value.condition == "not-well-formed"
    assert recorder.elements == []


def test_stream_error_from_a_callback_propagates_and_sticks():
    def reject(header):
        raise StreamError("invalid-namespace", "wrong root")

    parser = StreamParser(reject, lambda e: None, lambda: None)
    with pytest.raises(StreamError) as caught:
        parser.feed(HEADER + b"<message/>")
    assert caught.value.condition == "invalid-namespace"
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message/>")
    assert caught.value.condition == "invalid-namespace"


def test_other_callback_exceptions_propagate_then_become_internal_errors():
    def broken(element):
        raise KeyError("bug")

    parser = StreamParser(lambda h: None, broken, lambda: None)
    with pytest.raises(KeyError):
        parser.feed(HEADER + b"<message/>")
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message/>")
    assert caught.value.condition == "internal-server-error"


# -- size and depth limits


def stanza_of_size(size: int) -> bytes:
    """A <message/> of exactly ``size`` bytes."""
    frame = b"<message><body></body></message>"
    return b"<message><body>" + b"x" * (size - len(frame)) + b"</body></message>"


def test_stanza_within_the_limit_is_accepted():
    stanza = stanza_of_size(1000)
    recorder = parse(HEADER + stanza * 5, max_stanza_size=1000)
    assert len(recorder.elements) == 5


def test_many_small_stanzas_in_one_large_chunk_are_accepted():
    recorder = parse(HEADER + stanza_of_size(500) * 200, max_stanza_size=1000)
    assert len(recorder.elements) == 200


def test_oversized_stanza_is_refused_before_it_ends():
    recorder = Recorder()
    parser = recorder.parser(max_stanza_size=1000)
    parser.feed(HEADER + b"<message><body>")
    with pytest.raises(StreamError) as caught:
        for _ in range(100):
            parser.feed(b"x" * 100)
    assert caught.value.condition == "policy-violation"
    assert recorder.elements == []


def test_oversized_stanza_in_one_chunk_is_never_delivered():
    for size in (1001, 1500, 2500, 100_000):
        assert condition_of(HEADER + stanza_of_size(size), max_stanza_size=1000) == (
            "policy-violation"
        )


def test_default_limit_refuses_a_huge_stanza_without_reading_it_all():
    huge = HEADER + b"<message><body>" + b"x" * 10_000_000
    recorder = Recorder()
    parser = recorder.parser()
    with pytest.raises(StreamError) as caught:
        parser.feed(huge)
    assert caught.value.condition == "policy-violation"
    assert recorder.elements == []


def test_unfinished_tag_between_stanzas_is_bounded():
    recorder = Recorder()
    parser = recorder.parser(max_stanza_size=1000)
    parser.feed(HEADER + b"<presence/><message to='")
    with pytest.raises(StreamError) as caught:
        for _ in range(20):
            parser.feed(b"a" * 100)
    assert caught.value.condition == "policy-violation"


def test_oversized_header_is_refused():
    header = HEADER[:-1] + b" id='" + b"a" * 2000 + b"'>"
    assert condition_of(header, max_stanza_size=1000) == "policy-violation"


def nested(depth: int) -> bytes:
    return b"<message>" + b"<x>" * (depth - 1) + b"</x>" * (depth - 1) + b"</message>"


def test_nesting_up_to_the_limit_is_accepted():
    # The stream root counts as one level.
    recorder = parse(HEADER + nested(63), max_depth=64)
    assert len(recorder.elements) == 1


def test_deep_nesting_is_a_policy_violation():
    assert condition_of(HEADER + nested(64), max_depth=64) == "policy-violation"
    assert condition_of(HEADER + b"<a>" * 100_000) == "policy-violation"
