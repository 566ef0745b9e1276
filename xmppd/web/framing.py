# -*- test-case-name: tests.unit.test_web_framing -*-
"""RFC 7395 framing: one XML element per WebSocket message instead of one long document.

The client stream (xmppd.c2s.stream.ClientStream) is the same as on TCP; only what crosses
the transport differs. In: ``<open/>`` stands for the stream header, ``<close/>`` for
``</stream:stream>``, and every other message must be exactly one complete element, parsed
by itself with the stream parser's restrictions (RFC 6120 §11) and size limit. Out: our
header becomes ``<open/>``, our end ``<close/>``, and every element carries the namespace
declarations a standalone document needs (``xmlns='jabber:client'``, ``xmlns:stream``).
"""

from __future__ import annotations

import re

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


class MessageParser:
    """One stream's messages, parsed by one long-lived stream parser inside a fixed
    ``<stream:stream>`` wrapper. A new parser per message cost more than parsing a chat
    message itself (``make bench``, 2026-12-06); the stream makes a new one at every restart
    and the idle sweeper (xmppd.stream.idle) may free its expat between messages."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._found: list[domish.Element] = []
        self._ended = False
        self._parser = StreamParser(_ignore_header, self._found.append, self._on_end,
                                    max_stanza_size=max_size)
        self._parser.feed(_WRAPPER)

    def parse(self, message: bytes) -> domish.Element:
        """The one element ``message`` holds; StreamError (as the stream parser raises them,
        ``bad-format`` for none or several, ``not-well-formed`` for an unfinished one)."""
        if len(message) > self._max_size:
            raise StreamError("policy-violation", f"message larger than {self._max_size} bytes")
        found = self._found
        found.clear()
        self._parser.feed(message)
        if not self._ended and not self._parser.between_stanzas():
            self._parser.stop()  # as if the wrapper's end came: a mismatched tag on TCP
            raise StreamError("not-well-formed", "a WebSocket message ends inside an element")
        if len(found) != 1 or self._ended:
            self._parser.stop()
            raise StreamError("bad-format", "a WebSocket message is one XML element (RFC 7395)")
        return found.pop()

    def stop(self) -> None:
        self._parser.stop()

    def release_if_idle(self) -> bool:
        return self._parser.release_if_idle()

    def _on_end(self) -> None:
        self._ended = True


def _ignore_header(_header: StreamHeader) -> None:
    pass


def parse_message(message: bytes, max_size: int) -> domish.Element:
    """The one element a lone message holds (see ``MessageParser.parse``)."""
    return MessageParser(max_size).parse(message)


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
    found = _NAME_END.search(data, 1)
    return len(data) if found is None else found.start()


_NAME_END = re.compile(rb"[ />]")
