# -*- test-case-name: tests.unit.test_xml_serializer -*-
"""Write domish elements into an XML stream as UTF-8 bytes.

The stream's content namespace (jabber:client, jabber:server, ...) is the default namespace
declared on the stream root. A stanza in any content namespace is written without ``xmlns``,
so one built for (or parsed from) a client stream can be relayed on a server stream and takes
that stream's namespace, as RFC 6120 §4.8.3 expects. Below that, an element gets ``xmlns``
only where its namespace differs from the default in scope; element prefixes are never kept,
except for the namespaces the stream root binds (``stream:`` always).

Children that are ``domish.SerializedXML`` are written as they are; other strings are text.
A top-level ``WiredElement`` (a copy the message archive stamps) brings its own bytes for a
client stream, made from text serialized once already (xmppd.mam.stanza_ids).
A child that kept the text it arrived as (xmppd.xml.passthrough) is written as that text
when the default namespace in force is the one it was parsed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from twisted.words.xish import domish

from xmppd import ns
from xmppd.xml.passthrough import KeptElement, kept_text

STREAM_END = b"</stream:stream>"

CONTENT_NAMESPACES = frozenset((ns.CLIENT, ns.SERVER))
_ROOT_PREFIXES = {ns.STREAMS: "stream"}
_SerializedXML = domish.SerializedXML
_ATTRIBUTE_SPECIAL = re.compile("[&<>'\"\n\r\t]").search


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", "&#13;"
    )


def escape_attribute(value: str) -> str:
    """An attribute value (written between quotes) that parses back to exactly ``value``."""
    if _ATTRIBUTE_SPECIAL(value) is None:  # most are addresses and ids: nothing to escape
        return value
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = value.replace("'", "&apos;").replace('"', "&quot;")
    # Parsers turn raw white space in attribute values into spaces; references survive.
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return value


class WiredElement(domish.Element):
    """An element with its serialization on a client stream known in advance (``wire``: what
    ``serialize(element, ns.CLIENT)`` returns), so each session it goes to skips the walk.
    A guard, not a promise: if its attributes or its list of children changed since, the
    bytes are ignored (children are shared read-only, never edited in place)."""

    wire: bytes
    wire_attributes: dict
    wire_children: int


def serialize(
    element: domish.Element, stream_ns: str, prefixes: Mapping[str, str] | None = None
) -> bytes:
    """Serialize one top-level element for a stream whose content namespace is ``stream_ns``.

    ``prefixes`` maps namespace URIs to the prefixes that stream's root declares beyond
    ``stream:`` (as given to ``stream_header``); elements in them are written prefixed.
    """
    if (type(element) is WiredElement and stream_ns == ns.CLIENT and not prefixes
            and len(element.children) == element.wire_children
            and element.attributes == element.wire_attributes):
        return element.wire
    root_prefixes = _ROOT_PREFIXES if not prefixes else {**prefixes, **_ROOT_PREFIXES}
    parts: list[str] = []
    _write(element, stream_ns, stream_ns, True, stream_ns, root_prefixes, parts.append)
    return "".join(parts).encode("utf-8")


def _write(element, scope, inherited, in_content, stream_ns, root_prefixes, append) -> None:
    """Append ``element`` to the output.

    ``scope`` is the default namespace in force in the output, ``inherited`` the namespace an
    element with uri None belongs to, and ``in_content`` whether ``scope`` is still the
    stream's own content namespace.
    """
    uri = element.uri
    if uri is None:
        uri = inherited
    name = element.name
    prefix = root_prefixes.get(uri)
    if prefix is not None:
        tag = f"{prefix}:{name}"
        append("<" + tag)
    elif uri == scope or (in_content and uri in CONTENT_NAMESPACES):
        tag = name
        append("<" + tag)
    else:
        tag = name
        append(f"<{name} xmlns='{escape_attribute(uri)}'")
        scope = uri
        in_content = False

    state = element.__dict__  # not through a KeptElement's properties: reading drops nothing
    attributes = state["attributes"]
    if attributes:
        declared = None
        for key, value in attributes.items():
            if type(key) is str:
                append(f" {key}='{escape_attribute(value)}'")
                continue
            attribute_uri, attribute_name = key
            if attribute_uri == ns.XML:
                append(f" xml:{attribute_name}='{escape_attribute(value)}'")
                continue
            if declared is None:
                declared = {}
            attribute_prefix = declared.get(attribute_uri)
            if attribute_prefix is None:
                attribute_prefix = declared[attribute_uri] = f"ns{len(declared)}"
                append(f" xmlns:{attribute_prefix}='{escape_attribute(attribute_uri)}'")
            append(f" {attribute_prefix}:{attribute_name}='{escape_attribute(value)}'")

    children = state["children"]
    if not children:
        append("/>")
        return
    append(">")
    default = element.defaultUri
    inherited = uri if default is None else default
    for child in children:
        if type(child) is str:
            append(_escape_text(child))
        elif type(child) is KeptElement and (kept := kept_text(child, scope)) is not None:
            append(kept)
        elif isinstance(child, _SerializedXML):
            append(child)
        elif isinstance(child, str):
            append(_escape_text(child))
        else:
            _write(child, scope, inherited, in_content, stream_ns, root_prefixes, append)
    append(f"</{tag}>")


def stream_header(
    to: str | None = None,
    from_: str | None = None,
    id: str | None = None,
    version: str | None = "1.0",
    content_ns: str = ns.CLIENT,
    lang: str | None = "en",
    prefixes: Mapping[str, str] | None = None,
) -> bytes:
    """The XML declaration and stream root start tag (RFC 6120 §4.7); None values are omitted.

    ``prefixes`` maps extra namespace URIs to prefixes to bind on the root, e.g.
    ``{"jabber:server:dialback": "db"}`` on server streams (XEP-0220).
    """
    parts = [
        "<?xml version='1.0'?><stream:stream xmlns='",
        escape_attribute(content_ns),
        "' xmlns:stream='",
        ns.STREAMS,
        "'",
    ]
    for uri, prefix in (prefixes or {}).items():
        parts.append(f" xmlns:{prefix}='{escape_attribute(uri)}'")
    for name, value in (("to", to), ("from", from_), ("id", id), ("version", version),
                        ("xml:lang", lang)):
        if value is not None:
            parts.append(f" {name}='{escape_attribute(value)}'")
    parts.append(">")
    return "".join(parts).encode("utf-8")
