# -*- test-case-name: tests.unit.test_web_framing -*-
"""RFC 7395 framing: one XML element per WebSocket message instead of one long document.

The client stream (xmppd.c2s.stream.ClientStream) is the same as on TCP; only what crosses
the transport differs. In: ``<open/>`` stands for the stream header, ``<close/>`` for
``</stream:stream>``, and every other message must be exactly one complete element, parsed
on its own with the stream parser's restrictions (RFC 6120 §11) and size limit. Out: our
header becomes ``<open/>``, our end ``<close/>``, and every element carries the namespace
declarations a standalone document needs (``xmlns='jabber:client'``, ``xmlns:stream``).
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.xml import StreamHeader, StreamParser, serialize
from xmppd.xml.serializer import escape_attribute

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
CLOSE = f"<close xmlns='{FRAMING}'/>".encode()
_WRAPPER = (f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAMS}'>").encode()
_WRAPPER_END = b"</stream:stream>"
_STREAM_DECLARATION = f" xmlns:stream='{ns.STREAMS}'".encode()
_CLIENT_DECLARATION = f" xmlns='{ns.CLIENT}'".encode()


def parse_message(message: bytes, max_size: int) -> domish.Element:
    """The one element a message holds; StreamError (as the stream parser raises them, or
    ``bad-format`` for none or several) otherwise."""
    if len(message) > max_size:
        raise StreamError("policy-violation", f"message larger than {max_size} bytes")
    found: list[domish.Element] = []
    ended: list[bool] = []
    parser = StreamParser(lambda header: None, found.append, lambda: ended.append(True),
                          max_stanza_size=max_size)
    parser.feed(_WRAPPER)
    parser.feed(message)
    parser.feed(_WRAPPER_END)  # an unfinished element: not-well-formed, as on TCP
    if len(found) != 1 or not ended:
        raise StreamError("bad-format", "a WebSocket message is one XML element (RFC 7395)")
    return found[0]


def is_framing(element: domish.Element, name: str) -> bool:
    return element.uri == FRAMING and element.name == name


def header_from_open(element: domish.Element) -> StreamHeader:
    """The stream header an ``<open/>`` stands for, to go through the stream's usual checks."""
    if element.children:
        raise StreamError("bad-format", "<open/> is empty")
    attributes = {key: value for key, value in element.attributes.items()
                  if isinstance(key, str)}
    return StreamHeader(uri=ns.STREAMS, name="stream", attributes=attributes,
                        default_namespace=ns.CLIENT, prefixes={"stream": ns.STREAMS})


def open_element(to: str | None, from_: str | None, id: str | None, version: str | None,
                 lang: str | None) -> bytes:
    """Our ``<open/>`` (RFC 7395 §3.3.2)."""
    parts = [f"<open xmlns='{FRAMING}'"]
    for name, value in (("to", to), ("from", from_), ("id", id), ("version", version),
                        ("xml:lang", lang)):
        if value is not None:
            parts.append(f" {name}='{escape_attribute(value)}'")
    parts.append("/>")
    return "".join(parts).encode("utf-8")


def close_element(see_other_uri: str | None = None) -> bytes:
    """``<close/>``, with ``see-other-uri`` to send the client elsewhere (RFC 7395 §3.6.1)."""
    if see_other_uri is None:
        return CLOSE
    return f"<close xmlns='{FRAMING}' see-other-uri='{escape_attribute(see_other_uri)}'/>".encode()


def frame_element(element: domish.Element) -> bytes:
    """``element`` as a standalone document: the stream serializer's output plus the
    declarations the stream root would have made for it."""
    data = serialize(element, ns.CLIENT)
    end = _tag_end(data)
    declarations = b""
    if b"<stream:" in data:
        declarations += _STREAM_DECLARATION
    if not data.startswith(b"<stream:") and not data.startswith(b" xmlns=", end):
        declarations += _CLIENT_DECLARATION
    return data[:end] + declarations + data[end:] if declarations else data


def _tag_end(data: bytes) -> int:
    """Where the first tag's name ends."""
    for index in range(1, len(data)):
        if data[index] in b" />":
            return index
    return len(data)
