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
