"""Kept text (xmppd.xml.passthrough): what a recipient gets equals, as XML, what the full
serializer writes for the same stanza, and any change to a kept child is written in full."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.words.xish import domish

from xmppd import ns
from xmppd.web.framing import frame_element, parse_message
from xmppd.xml import StreamParser, serialize, stream_header
from xmppd.xml.passthrough import KeptElement, drop_kept, kept_text
from xmppd.xml.stored import stanza_from_text, stanza_to_text

DIALBACK = "jabber:server:dialback"
FORWARD = "urn:xmpp:forward:0"
ROOT = (f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAMS}' "
        "xmlns:r='urn:root'>").encode()


def parse(data: bytes, pass_through: bool = True, chunks: list[int] | None = None,
          root: bytes = ROOT) -> list[domish.Element]:
    """The stanzas in ``data`` after ``root``, fed in pieces cut at ``chunks``."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda header: None, found.append, lambda: None,
                          pass_through=pass_through)
    parser.feed(root)
    start = 0
    for cut in sorted(set(chunks or ())):
        if start < cut < len(data):
            parser.feed(data[start:cut])
            start = cut
    parser.feed(data[start:])
    return found


def reparse(data: bytes, content_ns: str = ns.CLIENT) -> domish.Element:
    """Serializer output as the peer reads it (the full parser)."""
    header = stream_header(content_ns=content_ns, prefixes={DIALBACK: "db"})
    found = parse(data, pass_through=False, root=header)
    assert len(found) == 1, data
    return found[0]


def tree(node):
    """What XML equality compares: names, namespaces, attributes, merged text."""
    if isinstance(node, str):
        return node
    children: list = []
    for child in node.__dict__["children"]:
        if isinstance(child, str) and children and isinstance(children[-1], str):
            children[-1] += child
        else:
            children.append(tree(child))
    return (node.uri, node.name, sorted(node.__dict__["attributes"].items(), key=repr),
            children)


def forwarded(stanza: domish.Element) -> domish.Element:
    """A carbon-like wrapper around ``stanza`` (the stanza keeps being its parsed self)."""
    wrapper = domish.Element((ns.CLIENT, "message"))
    wrapper["to"] = "someone@example.org"
    inner = wrapper.addElement((FORWARD, "forwarded"))
    inner.addChild(stanza)
    return wrapper


def outputs(stanza: domish.Element) -> list[domish.Element]:
    """The stanza as every writer writes it, read back."""
    stanza["from"] = "juliet@example.com/balcony"
    return [
        reparse(serialize(stanza, ns.CLIENT)),
        reparse(serialize(stanza, ns.SERVER, {DIALBACK: "db"}), ns.SERVER),
        reparse(serialize(forwarded(stanza), ns.CLIENT)),
        parse_message(frame_element(stanza), 1 << 20),
        stanza_from_text(stanza_to_text(stanza)),
    ]


def assert_same_as_full_path(data: bytes, chunks: list[int] | None = None) -> None:
    kept = parse(data, chunks=chunks)
    full = parse(data, pass_through=False)
    assert len(kept) == len(full)
    for mine, reference in zip(kept, full, strict=True):
        for got, expected in zip(outputs(mine), outputs(reference), strict=True):
            assert tree(got) == tree(expected)


# -- generated stanzas

NAMES = ("a", "body", "x", "message", "error")
NAMESPACES = ("", "urn:a", "urn:b", ns.CLIENT, ns.SERVER, ns.STREAMS, "urn:root")
ATTRIBUTES = ("a", "id", "type", "lang")
TEXT = st.text(alphabet=st.sampled_from("ab <>&'\"\t\n\r\u00e9\u4e2d\U0001f600]"),
               max_size=8)


def _attribute_value(value: str, quote: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;")
    return value.replace(quote, "&apos;" if quote == "'" else "&quot;")


def _text(draw, text: str) -> str:
    style = draw(st.sampled_from(("escaped", "references", "cdata")))
    if style == "cdata" and "]]>" not in text and "\r" not in text:
        return f"<![CDATA[{text}]]>"
    if style == "references":
        return "".join(f"&#{ord(char)};" if char in "<&>\r" else char for char in text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def elements(draw, depth: int = 0) -> str:
    """One element as text: namespaces by default or prefix (its own, or the root's 'r'
    and 'stream'), attributes in either quote, text, children, empty tags both ways."""
    name = draw(st.sampled_from(NAMES))
    declarations = ""
    how = draw(st.sampled_from(("inherit", "default", "prefix", "root prefix")))
    if how == "default":
        declarations = f" xmlns='{draw(st.sampled_from(NAMESPACES))}'"
    elif how == "prefix":
        uri = draw(st.sampled_from([uri for uri in NAMESPACES if uri]))
        declarations = f" xmlns:p='{uri}'"
        name = f"p:{name}"
    elif how == "root prefix":
        name = f"{draw(st.sampled_from(('r', 'stream')))}:{name}"
    attributes = ""
    for attribute in draw(st.lists(st.sampled_from(ATTRIBUTES), unique=True, max_size=3)):
        quote = draw(st.sampled_from("'\""))
        if draw(st.booleans()) and how == "prefix":
            attribute = f"p:{attribute}"
        elif draw(st.integers(0, 5)) == 0:
            attribute = f"xml:{attribute}"
        value = _attribute_value(draw(TEXT), quote)
        space = draw(st.sampled_from((" ", "\n ", "  ")))
        attributes += f"{space}{attribute}={quote}{value}{quote}"
    content = ""
    if depth < 3:
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                content += _text(draw, draw(TEXT))
            else:
                content += draw(elements(depth + 1))
    if not content and draw(st.booleans()):
        return f"<{name}{declarations}{attributes}/>"
    return f"<{name}{declarations}{attributes}{draw(st.sampled_from(('', ' ')))}>{content}</{name}>"


@st.composite
def stanzas(draw) -> bytes:
    kind = draw(st.sampled_from(("message", "presence", "iq")))
    declarations = draw(st.sampled_from(("", f" xmlns='{ns.CLIENT}'", " xmlns:q='urn:q'")))
    children = "".join(draw(st.lists(st.one_of(elements(), TEXT.map(
        lambda text: text.replace("&", "&amp;").replace("<", "&lt;"))), max_size=4)))
    return f"<{kind} to='romeo@example.net' type='chat'{declarations}>{children}</{kind}>".encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stanzas(), min_size=1, max_size=3), st.lists(st.integers(1, 2000), max_size=6))
def test_generated_stanzas_are_written_as_the_full_path_writes_them(stanzas, chunks):
    assert_same_as_full_path(b"".join(stanzas), chunks)


def test_every_cut_of_a_stanza_keeps_the_same_text():
    data = (b"<message to='a@b'><x xmlns='urn:a' v='>\"'><y/>t&amp;</x><b>hi</b>"
            b"<z xmlns='urn:z' k=\"it's\"/></message>")
    whole = parse(data)[0]
    texts = [kept_text(child, ns.CLIENT) for child in whole.elements()]
    assert texts == ["<x xmlns='urn:a' v='>\"'><y/>t&amp;</x>", None, None]
    for cut in range(1, len(data)):
        parsed = parse(data, chunks=[cut])[0]
        assert [kept_text(child, ns.CLIENT) for child in parsed.elements()] == texts


def test_a_child_sent_a_byte_at_a_time_is_carried_in_one_growing_buffer():
    # copying what was carried at every feed would cost the square of a child's size
    data = (b"<message><x xmlns='urn:a'>" + b"<y>12345678</y>" * 200 + b"</x></message>")
    found: list = []
    parser = StreamParser(lambda header: None, found.append, lambda: None)
    parser.feed(ROOT)
    carried = set()
    for index in range(len(data)):
        parser.feed(data[index:index + 1])
        if parser._holder is not None and index > 100:
            carried.add(id(parser._carry))
    assert len(carried) == 1
    assert kept_text(found[0].x, ns.CLIENT) == data[9:-10].decode()


# -- what is kept, and what is not


def test_a_routed_payload_is_written_as_it_arrived():
    data = (b"<message to='a@b'><encrypted xmlns='eu.siacs.conversations.axolotl'>"
            b"<header sid='1'><key rid=\"2\">AAA=</key><iv>BB</iv></header></encrypted>"
            b"</message>")
    stanza = parse(data)[0]
    stanza["from"] = "c@d/e"
    assert serialize(stanza, ns.CLIENT) == (
        b"<message to='a@b' from='c@d/e'><encrypted xmlns='eu.siacs.conversations.axolotl'>"
        b"<header sid='1'><key rid=\"2\">AAA=</key><iv>BB</iv></header></encrypted>"
        b"</message>")


def test_leaves_are_not_kept_writing_them_costs_no_more():
    stanza = parse(b"<message><body>hi</body><active xmlns='urn:chatstates'/>"
                   b"<origin-id xmlns='urn:xmpp:sid:0' id='1'/></message>")[0]
    assert [type(child) for child in stanza.elements()] == [domish.Element] * 3


def test_iq_children_are_plain_elements():
    stanza = parse(b"<iq type='get' id='1'><query xmlns='urn:a'><x/></query></iq>")[0]
    assert type(stanza.query) is domish.Element


def test_children_using_prefixes_from_outside_are_not_kept():
    data = (b"<message xmlns:q='urn:q'><q:x/></message>"
            b"<message><r:x/></message><message><x xmlns='urn:a' r:v='1'/></message>"
            b"<message><x xmlns='urn:a'><stream:y/></x></message>")
    for stanza in parse(data):
        for child in stanza.elements():
            assert kept_text(child, ns.CLIENT) is None


def test_an_other_content_namespace_inside_is_not_kept():
    # the full path folds jabber:server into the stream's namespace; kept text would not
    data = (b"<message><x xmlns='urn:a'><y xmlns='jabber:server'/></x>"
            b"<z xmlns='jabber:server'><w/></z></message>")
    stanza = parse(data)[0]
    assert [kept_text(child, ns.CLIENT) for child in stanza.elements()] == [None, None]
    assert serialize(stanza, ns.CLIENT) == serialize(parse(data, pass_through=False)[0],
                                                     ns.CLIENT)


def test_kept_text_is_only_used_in_the_namespace_it_was_parsed_in():
    stanza = parse(b"<message><x xmlns='urn:a'><y/></x></message>")[0]
    assert kept_text(stanza.x, ns.CLIENT) is not None
    assert kept_text(stanza.x, ns.SERVER) is None


def test_without_pass_through_nothing_is_kept():
    stanza = parse(b"<message><x xmlns='urn:a'><y/></x></message>", pass_through=False)[0]
    assert type(stanza.x) is domish.Element


# -- changes drop the kept text (safe by construction)

PAYLOAD = b"<message to='a@b'><x xmlns='urn:a' k='v'><y n='1'>text</y><z/></x></message>"


def _changes():
    def set_attribute(x):
        x.y["n"] = "2"

    def delete_attribute(x):
        del x.y["n"]

    def add_element(x):
        x.addElement("w")

    def add_content(x):
        x.z.addContent("more")

    def append_child(x):
        x.children.append(domish.Element(("urn:b", "v")))

    def replace_children(x):
        x.y.children = ["other"]

    def rename(x):
        x.y.name = "renamed"

    def renamespace(x):
        x.uri = "urn:other"

    def swap(x):
        x.attributes["k"] = "changed"

    def update_attributes(x):
        x.y.attributes.update({"m": "3"})

    def clear_children(x):
        del x.children[:]

    def child_by_iteration(x):
        for child in x.elements():
            child["seen"] = "yes"

    return [set_attribute, delete_attribute, add_element, add_content, append_child,
            replace_children, rename, renamespace, swap, update_attributes, clear_children,
            child_by_iteration]


def test_any_change_below_a_kept_child_is_written():
    for change in _changes():
        kept = parse(PAYLOAD)[0]
        full = parse(PAYLOAD, pass_through=False)[0]
        assert kept_text(kept.x, ns.CLIENT) is not None
        change(kept.x)
        change(full.x)
        assert kept_text(kept.x, ns.CLIENT) is None, change.__name__
        assert serialize(kept, ns.CLIENT) == serialize(full, ns.CLIENT), change.__name__


def test_reading_keeps_the_text():
    stanza = parse(PAYLOAD)[0]
    x = stanza.x
    assert x.getAttribute("k") == "v" and x["k"] == "v" and x.hasAttribute("k")
    assert x.compareAttribute("k", "v")
    assert str(x.y) == "text" and x.y.name == "y" and x.y.uri == "urn:a"
    assert [child.name for child in x.elements()] == ["y", "z"]
    assert x.firstChildElement() is x.y and x.missing is None
    assert [child.name for child in x.elements("urn:a", "z")] == ["z"]
    assert kept_text(x, ns.CLIENT) is not None


def test_a_copy_sharing_children_writes_them_from_the_text():
    stanza = parse(PAYLOAD)[0]
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes))
    copy.children = list(stanza.children)
    copy.addElement(("urn:xmpp:delay", "delay"))["stamp"] = "2026-12-06T00:00:00Z"
    assert serialize(copy, ns.CLIENT) == (
        b"<message to='a@b'><x xmlns='urn:a' k='v'><y n='1'>text</y><z/></x>"
        b"<delay xmlns='urn:xmpp:delay' stamp='2026-12-06T00:00:00Z'/></message>")


def test_a_shallow_copy_of_a_kept_child_is_written_in_full():
    import copy

    stanza = parse(PAYLOAD)[0]
    duplicate = copy.copy(stanza.x)
    assert type(duplicate) is KeptElement
    assert kept_text(duplicate, ns.CLIENT) is None
    duplicate["k"] = "other"  # shares the attributes of the original: both change
    assert kept_text(stanza.x, ns.CLIENT) is None
    assert b"k='other'" in serialize(stanza, ns.CLIENT)


def test_drop_kept_forgets_every_text():
    stanza = parse(PAYLOAD)[0]
    drop_kept(stanza)
    assert kept_text(stanza.x, ns.CLIENT) is None
