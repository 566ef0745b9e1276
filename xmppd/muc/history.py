# -*- test-case-name: tests.unit.test_muc_history -*-
"""The discussion history a room keeps in memory and sends to whoever joins (XEP-0045
§7.2.14): the last ``history_length`` groupchat messages, as broadcast (each with its
stanza-id and occupant-id) plus a delay stamp, cut by the joiner's ``<history/>``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.mam.dates import format_stamp


@dataclass(frozen=True)
class HistoryRequest:
    """A joiner's ``<history/>`` limits; None: no limit of that kind."""

    maxstanzas: int | None = None
    maxchars: int | None = None
    seconds: int | None = None
    since: float | None = None


@dataclass(frozen=True)
class Entry:
    stamp: float
    message: domish.Element  # as broadcast, without 'to'; never changed once here
    chars: int  # the length of its XML, for maxchars
    stanza_id: str


def parse_request(join: domish.Element | None) -> HistoryRequest:
    """The ``<history/>`` of a join's ``<x xmlns='…muc'/>``; a bad value is bad-request."""
    if join is None:
        return HistoryRequest()
    for child in join.elements():
        if child.name == "history" and child.uri == ns.MUC:
            return HistoryRequest(_int(child, "maxstanzas"), _int(child, "maxchars"),
                                  _int(child, "seconds"), _since(child))
    return HistoryRequest()


def _int(element: domish.Element, name: str) -> int | None:
    text = element.getAttribute(name)
    if text is None:
        return None
    if not text.isdigit():
        raise StanzaError("bad-request", f"history {name} is a count, not {text[:20]!r}")
    return int(text)


def _since(element: domish.Element) -> float | None:
    text = element.getAttribute("since")
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StanzaError("bad-request", "history since is a XEP-0082 DateTime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class History:
    """The newest messages, at most ``length``."""

    def __init__(self, length: int) -> None:
        self.entries: deque[Entry] = deque(maxlen=max(length, 0) or None)
        self.length = length

    def resize(self, length: int) -> None:
        self.length = length
        self.entries = deque(self.entries if length else (), maxlen=length or None)

    def add(self, entry: Entry) -> None:
        if self.length:
            self.entries.append(entry)

    def remove(self, stanza_id: str) -> None:
        """A moderated message is not sent to those who join later."""
        self.entries = deque((each for each in self.entries if each.stanza_id != stanza_id),
                             maxlen=self.entries.maxlen)

    def select(self, request: HistoryRequest, now: float) -> list[Entry]:
        """The newest entries that fit every limit of the request, oldest first."""
        chosen: list[Entry] = []
        chars = 0
        for entry in reversed(self.entries):
            if request.maxstanzas is not None and len(chosen) >= request.maxstanzas:
                break
            if request.seconds is not None and entry.stamp < now - request.seconds:
                break
            if request.since is not None and entry.stamp < request.since:
                break
            chars += entry.chars
            if request.maxchars is not None and chars > request.maxchars:
                break
            chosen.append(entry)
        chosen.reverse()
        return chosen


def delay(stamp: float, by: str) -> domish.Element:
    """The XEP-0203 stamp of a history message, by the room."""
    element = domish.Element((ns.DELAY, "delay"))
    element["stamp"] = format_stamp(stamp)
    element["from"] = by
    return element
