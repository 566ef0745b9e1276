"""Property tests of the stream parser (xmppd.xml.parser) and the stream layer above it
(xmppd.stream.xmlstream): however a valid stream is cut into reads it gives the same stanzas,
and no input makes anything but a StreamError come out of the parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xmppd.errors import STREAM_ERROR_CONDITIONS, StreamError
from xmppd.xml import StreamParser

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")

# Names and text that a stanza may hold, including what needs escaping and non-ASCII.
names = st.sampled_from(["a", "body", "x", "item", "query", "ns1:tag", "emoji"])
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00",
                              max_codepoint=0x1F9FF).filter(
    lambda c: c in "\t\n" or ord(c) >= 0x20 and c not in "\ufffe\uffff"), max_size=20)


def escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


@st.composite
def elements(draw, depth: int = 0) -> str:
    name = draw(names)
    if name == "ns1:tag":
        open_tag, close_tag = "<ns1:tag xmlns:ns1='urn:x'", "</ns1:tag>"
    else:
        open_tag, close_tag = f"<{name}", f"</{name}>"
    attrs = draw(st.dictionaries(st.sampled_from(["id", "type", "to", "xml:lang"]), texts,
                                 max_size=3))
    open_tag += "".join(f" {key}='{escape(value)}'" for key, value in attrs.items())
    if draw(st.booleans()):
        open_tag += f" xmlns='urn:{draw(st.integers(0, 3))}'"
    if depth >= 3 or draw(st.booleans()):
        body = escape(draw(texts))
    else:
        body = "".join(draw(st.lists(elements(depth + 1), max_size=3)))
    return f"{open_tag}>{body}{close_tag}"


@st.composite
def streams(draw) -> tuple[bytes, int]:
    stanzas = draw(st.lists(elements(), min_size=1, max_size=6))
    glue = draw(st.sampled_from(["", " ", "\n", "\r\n\t"]))
    return HEADER + glue.join(stanzas).encode() + b"</stream:stream>", len(stanzas)


def parse_in_chunks(data: bytes, cuts: list[int]) -> tuple[list[str], int]:
    got: list[str] = []
    ends = []
    parser = StreamParser(lambda header: None, lambda element: got.append(element.toXml()),
                          lambda: ends.append(True))
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        parser.feed(data[previous:cut])
        previous = cut
    return got, len(ends)


@given(streams(), st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_a_valid_stream_gives_the_same_stanzas(stream, raw_cuts):
    data, count = stream
    whole, ended = parse_in_chunks(data, [])
    assert len(whole) == count and ended == 1
    cuts = [cut % (len(data) + 1) for cut in raw_cuts]
    assert parse_in_chunks(data, cuts) == (whole, 1)


@given(streams())
def test_byte_at_a_time_gives_the_same_stanzas(stream):
    data, _ = stream
    assert parse_in_chunks(data, list(range(len(data)))) == parse_in_chunks(data, [])


def feed_all(chunks: list[bytes], max_stanza_size: int = 4096) -> None:
    parser = StreamParser(lambda header: None, lambda element: element.toXml(), lambda: None,
                          max_stanza_size=max_stanza_size, max_depth=16)
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except StreamError as error:
            assert error.condition in STREAM_ERROR_CONDITIONS, error.condition
            return


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_only_ever_raise_stream_errors(chunks):
    feed_all(chunks)


@given(st.lists(st.binary(max_size=80), max_size=6))
def test_arbitrary_bytes_inside_an_open_stream_only_raise_stream_errors(chunks):
    feed_all([HEADER, *chunks])


# Fragments of XML a hostile peer strings together: tags, entities, CDATA, PIs, DTDs, bad
# UTF-8, namespaces, deep nesting.
FRAGMENTS = [
    b"<message>", b"</message>", b"<iq type='get' id='1'>", b"</iq>", b"<a:b>",
    b"<a:b xmlns:a='u'>", b"</a:b>", b"&amp;", b"&lt;", b"&foo;", b"&#0;", b"&#x1F600;",
    b"&#xD800;", b"<![CDATA[x]]>",
    b"<?pi x?>", b"<!-- c -->", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"\xff\xfe", b"\xc3\x28",
    b"\xf0\x9f\x98", b"<x xmlns=''>", b"<x xmlns:xml='urn:bad'>", b"<x a='1' a='2'/>",
    b"<x>" * 20, b"</x>", b"</stream:stream>", b"<stream:stream>", b"text", b" ", b"\x00",
    b"<stream:error/>", b"<x y='<'/>", b"<x y=\"\xe2\x80\"/>", b"]]>", b"<x/>",
    b"<?xml version='1.0'?>", b"<body xml:lang='en'>", b"</body>",
]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25),
       st.sampled_from([True, False]))
def test_hostile_fragments_only_raise_stream_errors(fragments, with_header):
    feed_all(([HEADER] if with_header else []) + fragments, max_stanza_size=512)


@given(st.binary(max_size=300))
def test_a_stream_survives_any_bytes_over_a_real_protocol(data):
    """The whole stream layer (XmlStream under a ClientStream) on a transport: any bytes end
    in stanzas handled or a stream error written, never an exception to the reactor."""
    from tests.fuzz.streams import client_stream

    stream, transport = client_stream()
    stream.dataReceived(HEADER)
    stream.dataReceived(data)
    written = transport.value()
    assert b"internal-server-error" not in written, written
