"""The parser and the serializer against their alternatives, on one realistic stream (issue 6).

``python -m bench.parsers [--stanzas N] [--profile]`` prints, in about half a minute, the
microseconds per stanza of:

* parsing a client stream (the header, then ``N`` stanzas of one kind, or a mix) fed in
  chunks of 1 and 8 KiB, cut wherever they fall, as reads off a socket are:
  xmppd's StreamParser (expat ▸ domish elements, restricted as RFC 6120 §11 asks); plain
  expat with no-op Python callbacks and with none (the floors of anything built on expat);
  lxml's feed parser with a target building the same domish elements; lxml building its own
  elements (what a switch of the element type too would cost at best); lxml with no-op
  callbacks;
* serializing one stanza: xmppd's serializer, domish's ``toXml()``, lxml's ``tostring()``.

Each figure is the median (and the minimum) of several rounds, in CPU time of this process;
every round runs every candidate once, each on fresh parsers, so a disturbance from another
process on a shared machine spreads over all of them alike. ``--profile`` adds a
cProfile of StreamParser on the mixed stream. lxml is optional (``pip install lxml``): it is
measured only where installed, and it is not one of xmppd's dependencies.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import pyexpat
import statistics
import time
from collections.abc import Callable

from twisted.words.xish import domish

from bench.workloads import BODY
from xmppd import ns
from xmppd.xml import StreamParser, serialize

try:
    from lxml import etree
except ImportError:  # measured only where installed
    etree = None

HEADER = (f"<?xml version='1.0'?><stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAMS}'"
          " to='localhost' version='1.0' xml:lang='en'>").encode()
STANZAS = {
    "message": f"<message to='u1@localhost' type='chat' id='m1'><body>{BODY}</body></message>",
    "presence": ("<presence><show>away</show><status>at lunch</status><priority>5</priority>"
                 "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                 "node='https://example.org/client' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
                 "</presence>"),
    "iq": "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
}
# A chat-heavy mix: eight messages for each presence and IQ.
MIX = ["message"] * 8 + ["presence", "iq"]
CHUNK_SIZES = (1024, 8192)
REPEATS = 9
# CPU time of this process: other processes on a shared machine delay us but do not count.
_clock = time.process_time

Feeder = Callable[[list[bytes]], int]  # feeds a whole stream; returns the stanzas seen


def stream_of(kind: str, count: int) -> bytes:
    kinds = MIX if kind == "mix" else [kind]
    body = "".join(STANZAS[kinds[i % len(kinds)]] for i in range(count))
    return HEADER + body.encode()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# ------------------------------------------------------------------------- parse candidates


def xmppd_stream_parser(chunks: list[bytes]) -> int:
    elements: list[domish.Element] = []
    parser = StreamParser(lambda header: None, elements.append, lambda: None)
    return _feed_all(parser.feed, chunks, elements)


def _feed_all(feed: Callable[[bytes], object], chunks: list[bytes], elements: list) -> int:
    """Feed every chunk; elements are dropped as they come, as a server drops them once
    routed (keeping them all would measure the garbage collector instead)."""
    count = 0
    for chunk in chunks:
        feed(chunk)
        count += len(elements)
        elements.clear()
    return count


def _noop(*_args: object) -> None:
    return None


def expat_noop_callbacks(chunks: list[bytes]) -> int:
    """expat with the same handlers set as StreamParser, each doing nothing."""
    parser = pyexpat.ParserCreate("UTF-8", " ")
    parser.buffer_text = True
    parser.StartNamespaceDeclHandler = _noop
    parser.StartElementHandler = _noop
    parser.EndElementHandler = _noop
    parser.CharacterDataHandler = _noop
    for chunk in chunks:
        parser.Parse(chunk, False)
    return 0


def expat_no_callbacks(chunks: list[bytes]) -> int:
    parser = pyexpat.ParserCreate("UTF-8", " ")
    for chunk in chunks:
        parser.Parse(chunk, False)
    return 0


class _DomishTarget:
    """An lxml parser target that builds one domish element per stanza, as StreamParser does
    (namespaces, ``defaultUri``, ``localPrefixes``, ``xml:`` attributes); no restrictions."""

    def __init__(self, on_element: Callable[[domish.Element], None]) -> None:
        self.on_element = on_element
        self.depth = 0
        self.current: domish.Element | None = None
        self.root_default = ""
        self.pending_default: str | None = None
        self.pending_prefixes: dict[str, str] = {}

    def start_ns(self, prefix: str, uri: str) -> None:
        if prefix:
            self.pending_prefixes[prefix] = uri
        else:
            self.pending_default = uri

    def start(self, tag: str, attrib) -> None:
        self.depth += 1
        default, self.pending_default = self.pending_default, None
        prefixes = self.pending_prefixes
        if prefixes:
            self.pending_prefixes = {}
        if self.depth == 1:
            self.root_default = default or ""
            return
        uri, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        parent = self.current
        if default is None:
            default = self.root_default if parent is None else parent.defaultUri
        attributes = {}
        for key, value in attrib.items():
            if key[0] != "{":
                attributes[key] = value
            else:
                attribute_uri, _, attribute_name = key[1:].partition("}")
                if attribute_uri == ns.XML:
                    attributes["xml:" + attribute_name] = value
                else:
                    attributes[(attribute_uri, attribute_name)] = value
        element = domish.Element((uri, name), default, attributes, prefixes or None)
        if parent is not None:
            element.parent = parent
            parent.children.append(element)
        self.current = element

    def data(self, text: str) -> None:
        element = self.current
        if element is not None:
            element.children.append(text)

    def end(self, _tag: str) -> None:
        self.depth -= 1
        element = self.current
        if element is None:
            return
        self.current = element.parent
        if self.current is None:
            self.on_element(element)

    def close(self) -> None:
        return None


def _lxml_parser(target=None):
    return etree.XMLParser(target=target, resolve_entities=False, no_network=True,
                           load_dtd=False, huge_tree=False)


def lxml_domish_target(chunks: list[bytes]) -> int:
    elements: list[domish.Element] = []
    parser = _lxml_parser(_DomishTarget(elements.append))
    return _feed_all(parser.feed, chunks, elements)


class _NoopTarget:
    def start(self, tag, attrib):
        return None

    def end(self, tag):
        return None

    def data(self, text):
        return None

    def close(self):
        return None


def lxml_noop_target(chunks: list[bytes]) -> int:
    parser = _lxml_parser(_NoopTarget())
    for chunk in chunks:
        parser.feed(chunk)
    return 0


def lxml_elements(chunks: list[bytes]) -> int:
    """lxml's own elements, one per stanza, each detached from the stream root once read."""
    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False,
                                 no_network=True, load_dtd=False)
    depth = 0
    stanzas = 0
    root = None
    for chunk in chunks:
        parser.feed(chunk)
        for event, element in parser.read_events():
            if event == "start":
                depth += 1
                if depth == 1:
                    root = element
                continue
            depth -= 1
            if depth == 1:
                stanzas += 1
                root.remove(element)
    return stanzas


PARSERS: list[tuple[str, Feeder, bool]] = [  # (name, feeder, needs lxml)
    ("xmppd StreamParser (expat ▸ domish)", xmppd_stream_parser, False),
    ("expat, no-op Python callbacks", expat_noop_callbacks, False),
    ("expat, no callbacks", expat_no_callbacks, False),
    ("lxml target ▸ domish", lxml_domish_target, True),
    ("lxml elements (XMLPullParser)", lxml_elements, True),
    ("lxml target, no-op callbacks", lxml_noop_target, True),
]


def _interleaved(jobs: dict[tuple[str, str], Callable[[], object]], count: int
                 ) -> dict[tuple[str, str], tuple[float, float]]:
    """(median, min) µs per stanza of every job over REPEATS rounds; each round runs every
    job once, so a disturbance from another process spreads over all of them alike."""
    runs: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    for _ in range(REPEATS):
        for key, job in jobs.items():
            started = _clock()
            job()
            runs[key].append((_clock() - started) / count * 1e6)
    return {key: (statistics.median(values), min(values)) for key, values in runs.items()}


# ------------------------------------------------------------------------------ serializers


def _parsed(kind: str) -> domish.Element:
    elements: list[domish.Element] = []
    StreamParser(lambda header: None, elements.append, lambda: None).feed(
        HEADER + STANZAS[kind].encode())
    return elements[0]


def _lxml_parsed(kind: str):
    root = etree.fromstring(HEADER + STANZAS[kind].encode() + b"</stream:stream>",
                            _lxml_parser())
    return root[0]


def serializers(kind: str) -> list[tuple[str, Callable[[], object]]]:
    element = _parsed(kind)
    found = [("xmppd serialize()", lambda: serialize(element, ns.CLIENT)),
             ("domish toXml()", lambda: element.toXml().encode("utf-8"))]
    if etree is not None:
        lxml_element = _lxml_parsed(kind)
        found.append(("lxml tostring()", lambda: etree.tostring(lxml_element)))
    return found


def _repeat(function: Callable[[], object], count: int) -> Callable[[], None]:
    def job() -> None:
        for _ in range(count):
            function()
    return job


# ----------------------------------------------------------------------------------- report


def _table(title: str, names: list[str], columns: list[str],
           results: dict[tuple[str, str], tuple[float, float]]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name in names)
    print(f"{'':{width}}  " + "  ".join(f"{c:>15}" for c in columns))
    for name in names:
        cells = (f"{results[name, c][0]:6.2f} ({results[name, c][1]:5.2f})" for c in columns)
        print(f"{name:{width}}  " + "  ".join(f"{cell:>15}" for cell in cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stanzas", type=int, default=2000, help="stanzas per stream")
    parser.add_argument("--profile", action="store_true", help="cProfile StreamParser too")
    args = parser.parse_args(argv)
    kinds = [*STANZAS, "mix"]
    streams = {kind: stream_of(kind, args.stanzas) for kind in kinds}
    for kind, data in streams.items():  # every candidate sees every stanza
        chunks = chunked(data, 4096)
        assert xmppd_stream_parser(chunks) == args.stanzas, kind
        if etree is not None:
            assert lxml_domish_target(chunks) == args.stanzas, kind
            assert lxml_elements(chunks) == args.stanzas, kind
    if etree is None:
        print("lxml is not installed: its rows are left out (pip install lxml to add them)")
    available = [(name, feeder) for name, feeder, needs_lxml in PARSERS
                 if etree is not None or not needs_lxml]
    names = [name for name, _ in available]
    for size in CHUNK_SIZES:
        jobs = {}
        for name, feeder in available:
            for kind in kinds:
                jobs[name, kind] = functools.partial(feeder, chunked(streams[kind], size))
        _table(f"Parsing, µs per stanza ({args.stanzas} stanzas, {size // 1024} KiB chunks): "
               f"median (min) of {REPEATS}", names, kinds, _interleaved(jobs, args.stanzas))
    by_kind = {kind: serializers(kind) for kind in STANZAS}
    names = [name for name, _ in by_kind["message"]]
    jobs = {(name, kind): _repeat(function, args.stanzas)
            for kind in STANZAS for name, function in by_kind[kind]}
    _table(f"Serializing one stanza, µs: median (min) of {REPEATS}", names, list(STANZAS),
           _interleaved(jobs, args.stanzas))
    if args.profile:
        chunks = chunked(streams["mix"], 4096)
        profiler = cProfile.Profile()
        profiler.runcall(xmppd_stream_parser, chunks)
        print(f"\ncProfile of StreamParser on the mixed stream ({args.stanzas} stanzas):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
