"""The parser's memory while a stream is idle: expat released between stanzas, and resumed."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from tests.unit.test_xml_parser import HEADER, MESSAGE, ROSTER_IQ, Recorder, parse, tree
from xmppd.errors import StreamError
from xmppd.xml import StreamParser

SERVER_HEADER = (
    b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
    b" xmlns:db='jabber:server:dialback' to='example.com' version='1.0'>"
)
DIALBACK = b"<db:result from='a.example' to='b.example'>key</db:result>"


def idle(parser) -> bool:
    """What a periodic sweep does: the first call only notes activity, the second releases."""
    parser.release_if_idle()
    return parser.release_if_idle()


def test_a_stream_fed_since_the_last_call_is_not_released():
    parser = Recorder().parser()
    parser.feed(HEADER)
    assert parser.release_if_idle() is False
    assert parser.release_if_idle() is True
    assert parser.release_if_idle() is False  # nothing left to release


def test_parsing_continues_after_a_release():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER + MESSAGE)
    assert idle(parser)
    parser.feed(ROSTER_IQ + b" ")
    assert idle(parser)
    parser.feed(MESSAGE + b"</stream:stream>")
    expected = parse(HEADER + MESSAGE + ROSTER_IQ + MESSAGE).elements
    assert [tree(e) for e in recorder.elements] == [tree(e) for e in expected]
    assert recorder.ended == 1


def test_every_split_point_gives_the_same_elements_with_a_release_there():
    data = HEADER + b" " + MESSAGE + b"\n" + ROSTER_IQ + b"<presence/></stream:stream>"
    expected = [tree(e) for e in parse(data).elements]
    released = 0
    for cut in range(len(data) + 1):
        recorder = Recorder()
        parser = recorder.parser()
        parser.feed(data[:cut])
        released += idle(parser)
        parser.feed(data[cut:])
        assert [tree(e) for e in recorder.elements] == expected, cut
        assert recorder.ended == 1, cut
    assert released >= 4  # after the header and between every two stanzas


def test_nothing_is_released_before_the_header_inside_a_stanza_or_a_tag():
    for data in (b"<stream:stream xmlns='jabber:client'", HEADER + b"<message><body>hi",
                 HEADER + b"<presence type='unav"):
        parser = Recorder().parser()
        parser.feed(data)
        assert not idle(parser), data


def test_nothing_is_released_once_stopped_or_failed():
    parser = Recorder().parser()
    parser.feed(HEADER)
    parser.stop()
    assert not idle(parser)
    parser = Recorder().parser()
    with pytest.raises(StreamError):
        parser.feed(HEADER + b"<a></b>")
    assert not idle(parser)


def test_root_prefixes_and_name_survive_a_release():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(SERVER_HEADER)
    assert idle(parser)
    parser.feed(DIALBACK)
    assert idle(parser)
    parser.feed(b"</stream:stream>")
    (result,) = recorder.elements
    assert tree(result) == tree(parse(SERVER_HEADER + DIALBACK).elements[0])
    assert (result.uri, result.name) == ("jabber:server:dialback", "result")
    assert recorder.ended == 1


def test_an_unusual_root_prefix_must_still_close_the_stream():
    header = b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>"
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(header)
    assert idle(parser)
    parser.feed(b"<presence/></s:stream>")
    assert recorder.ended == 1
    parser = Recorder().parser()
    parser.feed(header)
    assert idle(parser)
    with pytest.raises(StreamError) as caught:
        parser.feed(b"</stream:stream>")
    assert caught.value.condition == "not-well-formed"


def test_namespace_uris_needing_escapes_survive_a_release():
    uri = "urn:x?a=1&b='2'<\n"
    header = (b"<stream:stream xmlns='jabber:client' xmlns:stream="
              b"'http://etherx.jabber.org/streams' xmlns:p='urn:x?a=1&amp;b=&apos;2&apos;"
              b"&lt;&#10;'>")
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(header)
    assert recorder.headers[0].prefixes["p"] == uri
    assert idle(parser)
    parser.feed(b"<p:x/>")
    assert recorder.elements[0].uri == uri


def test_limits_still_hold_after_a_release():
    parser = Recorder().parser(max_stanza_size=200)
    parser.feed(HEADER)
    assert idle(parser)
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message><body>" + b"x" * 300)
    assert caught.value.condition == "policy-violation"
    parser = Recorder().parser(max_depth=3)
    parser.feed(HEADER)
    assert idle(parser)
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<a><b><c/></b></a>")
    assert caught.value.condition == "policy-violation"


def test_long_text_across_feeds_is_one_string():
    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER + b"<message><body>" + b"a" * 20000)
    parser.feed(b"b" * 20000 + b"</body></message>")
    body = recorder.elements[0].firstChildElement()
    assert body.children == ["a" * 20000 + "b" * 20000]


def _retained_per_parser(release: bool, count: int = 50) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parsers = []
        for _ in range(count):
            parser = StreamParser(lambda header: None, lambda element: None, lambda: None)
            parser.feed(HEADER + ROSTER_IQ + b"<presence/>")
            if release:
                assert idle(parser)
            parsers.append(parser)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()


def test_an_idle_parser_keeps_little_memory():
    kept = _retained_per_parser(release=False)
    released = _retained_per_parser(release=True)
    # expat's 8 KiB text buffer is never kept between feeds (expat's tables and input buffer
    # come to about 13 KiB); a release frees expat itself, leaving our own small object.
    assert kept < 2 * 8192
    assert released < 4096


def test_a_header_fed_byte_by_byte_is_resumed_with_its_own_name():
    header = b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>"
    recorder = Recorder()
    parser = recorder.parser()
    for index in range(len(header)):
        parser.feed(header[index : index + 1])
    assert idle(parser)
    parser.feed(b"<presence/></s:stream>")
    assert [e.name for e in recorder.elements] == ["presence"]
    assert recorder.ended == 1


def test_the_shared_table_of_element_names_stays_bounded():
    from xmppd.xml import parser as parser_module

    recorder = Recorder()
    parser = recorder.parser()
    parser.feed(HEADER)
    last = 3 * parser_module._SPLIT_NAMES_MAX - 1
    for index in range(last + 1):
        parser.feed(b"<x%d xmlns='urn:n%d'/>" % (index, index))
    assert len(parser_module._split_names) <= parser_module._SPLIT_NAMES_MAX
    assert (recorder.elements[-1].uri, recorder.elements[-1].name) == (f"urn:n{last}", f"x{last}")
