# -*- test-case-name: tests.unit.test_archive_log -*-
"""The message archive's entries packed into one text per pack (xmppd.storage.stores.
archive_log): what a row of ``store_archive_pack`` holds, both ways.

An entry is its position (21 characters: an id of xmppd.mam.ids, or the position an adopted
entry got), one kind character, then length-prefixed fields, so any payload fits and
nothing needs escaping:

- ``=``: the id is the position and the stamp its time (every entry the message path makes):
  ``<with length>:<with><payload length>:<payload>``;
- ``+``: an id or a stamp of its own (adopted, or appended with another stamp):
  ``<id length>:<id><stamp length>:<repr(stamp)>`` and then the same two fields.

Lengths count characters (str indices), never bytes.
"""

from __future__ import annotations

from typing import NamedTuple

from xmppd.mam.ids import ID_LENGTH, micros_of

MAX_PACK = 256  # entries in one pack at most: a page of a query decodes a pack or two


class Packed(NamedTuple):
    """One entry as a pack holds it."""

    position: str
    id: str
    stamp: float
    with_jid: str
    payload: str


def stamp_of(position: str) -> float:
    """The stamp an entry of the message path has: its position's microsecond."""
    return micros_of(position) / 1_000_000


def encode(entry: Packed) -> str:
    position, id, stamp, with_jid, payload = entry
    if id == position and stamp == stamp_of(position):
        return f"{position}={len(with_jid)}:{with_jid}{len(payload)}:{payload}"
    stamp_text = repr(float(stamp))
    return (f"{position}+{len(id)}:{id}{len(stamp_text)}:{stamp_text}"
            f"{len(with_jid)}:{with_jid}{len(payload)}:{payload}")


def encode_plain(position: str, with_jid: str, payload: str) -> str:
    """``encode`` of an entry of the message path (id = position, stamp its time)."""
    return f"{position}={len(with_jid)}:{with_jid}{len(payload)}:{payload}"


def decode(body: str) -> list[Packed]:
    """Every entry of a pack, in its order (positions ascending)."""
    entries = []
    at, end = 0, len(body)
    find = body.find
    while at < end:
        position = body[at:at + ID_LENGTH]
        kind = body[at + ID_LENGTH]
        at += ID_LENGTH + 1
        if kind == "+":
            id, at = _field(body, find, at)
            stamp_text, at = _field(body, find, at)
            stamp = float(stamp_text)
        else:
            id, stamp = position, None
        with_jid, at = _field(body, find, at)
        payload, at = _field(body, find, at)
        entries.append(Packed(position, id, stamp_of(position) if stamp is None else stamp,
                              with_jid, payload))
    return entries


def _field(body: str, find, at: int) -> tuple[str, int]:
    colon = find(":", at)
    start = colon + 1
    stop = start + int(body[at:colon])
    return body[start:stop], stop
