# -*- test-case-name: tests.unit.test_muc_plugin -*-
"""Persistent rooms across restarts: per service domain, one map entry per room (its
config, affiliations, subject, occupant-id secret and vCard), in the generic map store
``muc_rooms``. Temporary rooms are never written; a room made temporary is deleted."""

from __future__ import annotations

import base64

from twisted.internet import defer

from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.muc.config import RoomConfig
from xmppd.muc.roles import AFFILIATIONS

log = get_logger(__name__)

STORE = "muc_rooms"


def room_record(room) -> dict:
    """What is kept of a room."""
    return {
        "config": room.config.to_dict(),
        "affiliations": {jid.full(): each for jid, each in room.affiliations.items()},
        "subject": room.subject,
        "subject_by": room.subject_by,
        "secret": base64.b64encode(room.secret).decode("ascii"),
        "vcard": room.avatar,
        "nicks": {jid.full(): nick for jid, nick in room.nicks.items()},
    }


def restore(room, record: dict) -> None:
    """Put a kept record back into a fresh room; bad entries are logged and left out."""
    room.config = RoomConfig.from_dict(record.get("config", {}))
    room.history.resize(room.config.history_length)
    for text, affiliation in record.get("affiliations", {}).items():
        try:
            jid = parse_jid(text)
        except InvalidJID:
            log.error("room {room}: unreadable affiliated JID left out", room=room.jid)
            continue
        if affiliation in AFFILIATIONS and affiliation != "none":
            room.affiliations[jid] = affiliation
    for text, nick in record.get("nicks", {}).items():
        try:
            room.nicks[parse_jid(text)] = nick
        except InvalidJID:
            log.error("room {room}: unreadable registered JID left out", room=room.jid)
    room.subject = record.get("subject", "")
    room.subject_by = record.get("subject_by")
    room.avatar = record.get("vcard")


def secret_of(record: dict) -> bytes:
    return base64.b64decode(record["secret"])


class RoomStore:
    """The persistent rooms of every domain of the service."""

    def __init__(self, store) -> None:
        self.store = store

    def load(self, domain: str) -> defer.Deferred:
        """Deferred firing {room localpart: record} of ``domain``."""
        return self.store.items(domain)

    def save(self, room) -> defer.Deferred:
        return self.store.set(room.jid.host, room.jid.user, room_record(room))

    def delete(self, jid: JID) -> defer.Deferred:
        return self.store.delete(jid.host, jid.user)
