# -*- test-case-name: tests.unit.test_muc_occupants -*-
"""Who is in a room: one Occupant per nick, with every session (full JID) of its account
that joined under that nick (multi-session nicks), and XEP-0421 occupant ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

from twisted.words.xish import domish

from xmppd.jid import JID


@dataclass
class Occupant:
    """One nick in the room: one account (``bare``), one or more of its sessions, each with
    the last presence it sent the room."""

    nick: str
    bare: JID
    role: str
    affiliation: str
    sessions: dict[JID, domish.Element] = field(default_factory=dict)  # full JID -> presence

    def jids(self) -> list[JID]:
        return list(self.sessions)

    def presence(self) -> domish.Element | None:
        """What others see of it: the presence of the session that spoke last."""
        return next(reversed(self.sessions.values()), None)


def occupant_id(secret: bytes, bare: JID) -> str:
    """XEP-0421's id: the same for one account in one room, for ever (the room's secret is
    kept with it), and says nothing about the account to those who cannot see its JID."""
    digest = hmac.new(secret, bare.full().encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


class Occupants:
    """The room's occupants by nick, and by session for the look-up of every stanza."""

    def __init__(self) -> None:
        self.by_nick: dict[str, Occupant] = {}
        self.by_session: dict[JID, Occupant] = {}

    def __len__(self) -> int:
        return len(self.by_nick)

    def __iter__(self) -> Iterator[Occupant]:
        return iter(list(self.by_nick.values()))

    def get(self, nick: str) -> Occupant | None:
        return self.by_nick.get(nick)

    def of_session(self, jid: JID) -> Occupant | None:
        return self.by_session.get(jid)

    def of_account(self, bare: JID) -> list[Occupant]:
        return [each for each in self.by_nick.values() if each.bare == bare]

    def add_session(self, occupant: Occupant, jid: JID, presence: domish.Element) -> None:
        self.by_nick[occupant.nick] = occupant
        occupant.sessions.pop(jid, None)  # the newest last: its presence is shown
        occupant.sessions[jid] = presence
        self.by_session[jid] = occupant

    def remove_session(self, jid: JID) -> Occupant | None:
        """Take one session out; the occupant goes with its last session."""
        occupant = self.by_session.pop(jid, None)
        if occupant is None:
            return None
        occupant.sessions.pop(jid, None)
        if not occupant.sessions:
            self.by_nick.pop(occupant.nick, None)
        return occupant

    def remove(self, occupant: Occupant) -> None:
        for jid in occupant.sessions:
            self.by_session.pop(jid, None)
        self.by_nick.pop(occupant.nick, None)

    def rename(self, occupant: Occupant, nick: str) -> None:
        self.by_nick.pop(occupant.nick, None)
        occupant.nick = nick
        self.by_nick[nick] = occupant

    def sessions(self) -> list[tuple[Occupant, JID]]:
        """Every (occupant, full JID) pair: where a broadcast goes."""
        return [(occupant, jid) for occupant in self.by_nick.values() for jid in occupant.jids()]
