"""Stanzas kept as text (offline messages, subscription requests) and read back safely."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.xml.parser import StreamParser
from xmppd.xml.serializer import serialize

_STREAM_OPEN = f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAMS}'>".encode()


def stanza_to_text(element: domish.Element) -> str:
    """The text to store: the stanza as a jabber:client stream would carry it."""
    return serialize(element, ns.CLIENT).decode("utf-8")


def stanza_from_text(text: str) -> domish.Element | None:
    """One stored stanza back, through the same restricted parser as the network;
    None if the text is not exactly one well-formed stanza."""
    data = text.encode("utf-8")
    found: list[domish.Element] = []
    parser = StreamParser(lambda _header: None, found.append, lambda: None,
                          max_stanza_size=len(data) + 4096)
    try:
        parser.feed(_STREAM_OPEN + data)
    except StreamError:
        return None
    return found[0] if len(found) == 1 else None


class StanzaReader:
    """``stanza_from_text`` for a steady flow of stanzas (those forwarded between the nodes
    of a cluster): one restricted parser kept open inside a stream root instead of a new one
    per stanza, which cost more than all the rest of a forwarded message's way. A text that
    is not exactly one well-formed stanza is None, as there, and the parser starts afresh."""

    def __init__(self, max_stanza_size: int = 16 * 1024 * 1024) -> None:
        self._max = max_stanza_size
        self._found: list[domish.Element] = []
        self._parser: StreamParser | None = None

    def read(self, text: str) -> domish.Element | None:
        parser = self._parser or self._open()
        found = self._found
        found.clear()
        try:
            parser.feed(text.encode("utf-8"))
        except StreamError:
            self._parser = None
            return None
        if not parser.between_stanzas():  # an unfinished tag, or the root closed
            self._parser = None
            return None
        return found[0] if len(found) == 1 else None

    def _open(self) -> StreamParser:
        parser = StreamParser(lambda _header: None, self._found.append, lambda: None,
                              max_stanza_size=self._max)
        parser.feed(_STREAM_OPEN)
        self._parser = parser
        return parser
