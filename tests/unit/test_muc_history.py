"""The history a joining occupant gets (XEP-0045 §7.2.14)."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.muc.history import Entry, History, HistoryRequest, parse_request


def entry(n: int, stamp: float, chars: int = 10) -> Entry:
    message = domish.Element((None, "message"))
    message.addElement("body", content=str(n))
    return Entry(stamp, message, chars, f"id{n}")


def join(**attributes) -> domish.Element:
    x = domish.Element(("http://jabber.org/protocol/muc", "x"))
    history = x.addElement("history")
    for key, value in attributes.items():
        history[key] = value
    return x


def bodies(entries) -> list[str]:
    return [str(next(e.message.elements())) for e in entries]


def filled(length: int = 5) -> History:
    history = History(length)
    for n in range(8):
        history.add(entry(n, 100.0 + n))
    return history


def test_keeps_the_newest_length():
    assert bodies(filled().select(HistoryRequest(), 200.0)) == ["3", "4", "5", "6", "7"]


def test_limits():
    history = filled()
    assert bodies(history.select(parse_request(join(maxstanzas="2")), 200.0)) == ["6", "7"]
    assert bodies(history.select(parse_request(join(maxchars="25")), 200.0)) == ["6", "7"]
    assert bodies(history.select(parse_request(join(seconds="2")), 107.5)) == ["6", "7"]
    assert bodies(history.select(parse_request(join(since="1970-01-01T00:01:47Z")),
                                 200.0)) == ["7"]
    assert history.select(parse_request(join(maxstanzas="0")), 200.0) == []


def test_no_history_element_and_bad_values():
    assert parse_request(None) == HistoryRequest()
    with pytest.raises(StanzaError):
        parse_request(join(maxstanzas="-1"))
    with pytest.raises(StanzaError):
        parse_request(join(since="yesterday"))


def test_resize_and_remove():
    history = filled()
    history.remove("id6")
    assert "6" not in bodies(history.entries)
    history.resize(2)
    assert bodies(history.entries) == ["5", "7"]
    history.resize(0)
    history.add(entry(9, 300.0))
    assert list(history.entries) == []
