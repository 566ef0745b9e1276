# -*- test-case-name: tests.unit.test_muc_room -*-
"""One room's state and what every part of the room needs of it: affiliations, occupants,
subject, history, and the presence and messages it sends to its occupants.

The room never touches the network: ``send(element)`` hands what it makes to the service,
``clock()`` gives the time, ``changed()`` asks for a persistent room to be saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.words.xish import domish

from xmppd.jid import JID
from xmppd.muc import presence as codes
from xmppd.muc.config import RoomConfig
from xmppd.muc.history import History
from xmppd.muc.occupants import Occupant, Occupants, occupant_id
from xmppd.muc.presence import Item, occupant_presence
from xmppd.muc.roles import default_role


class Room:
    """A room at ``jid`` (bare)."""

    def __init__(self, jid: JID, config: RoomConfig, secret: bytes, *,
                 send: Callable[[domish.Element], object], clock: Callable[[], float],
                 changed: Callable[[Room], object], new_id: Callable[[], str],
                 archive: Callable[[Room, domish.Element, str, float], object]) -> None:
        self.jid = jid
        self.config = config
        self.secret = secret
        self.send = send
        self.clock = clock
        self.changed = changed
        self.new_id = new_id  # XEP-0359 stanza-ids of the room's messages
        self.archive = archive  # archive(room, message, stanza_id, stamp), when logging
        self.affiliations: dict[JID, str] = {}  # bare JID -> owner | admin | member | outcast
        self.nicks: dict[JID, str] = {}  # bare JID -> the nick it registered (§7.10)
        self.occupants = Occupants()
        self.subject = ""
        self.subject_by: str | None = None  # the nick (or room) that set it
        self.history = History(config.history_length)
        self.locked = False  # a reserved room not configured yet (§10.1.3)
        self.avatar: str | None = None  # the room's vCard, as XML text
        self.avatar_hash: str | None = None
        self.destroyed = False

    # -- who is who

    def affiliation(self, jid: JID) -> str:
        return self.affiliations.get(jid.bare(), "none")

    def set_affiliation(self, bare: JID, affiliation: str) -> None:
        """Who loses the affiliation or is banned loses the nick they registered too."""
        if affiliation in ("none", "outcast"):
            self.nicks.pop(bare, None)
        if affiliation == "none":
            self.affiliations.pop(bare, None)
        else:
            self.affiliations[bare] = affiliation

    def owners(self) -> list[JID]:
        return [jid for jid, each in self.affiliations.items() if each == "owner"]

    def role_for(self, affiliation: str) -> str:
        return default_role(affiliation, self.config.moderated)

    def shows(self, occupant: Occupant) -> bool:
        """Whether the others see this occupant (``muc#roomconfig_presencebroadcast``)."""
        return occupant.role in self.config.presence_broadcast

    def nick_jid(self, nick: str) -> JID:
        return JID(self.jid.user, self.jid.host, nick)

    def occupant_id(self, bare: JID) -> str:
        return occupant_id(self.secret, bare.bare())

    def sees_jids(self, viewer: Occupant) -> bool:
        """Real JIDs are shown to everyone in a non-anonymous room, else to moderators."""
        return self.config.non_anonymous or viewer.role == "moderator"

    # -- sending

    def item_for(self, occupant: Occupant, viewer: Occupant | None, session: JID | None,
                 **extra) -> Item:
        shown = session if viewer is not None and self.sees_jids(viewer) else None
        return Item(occupant.affiliation, occupant.role, shown, **extra)

    def presence_of(self, occupant: Occupant, viewer: Occupant, to: JID,
                    extra_codes: Iterable[int] = (), type: str | None = None,
                    source: domish.Element | None = None, **item) -> domish.Element:
        """``occupant``'s presence as ``viewer`` sees it (with 110 when it is itself)."""
        session = next(reversed(occupant.sessions), None)
        if type is None and source is None:
            source = occupant.presence()
        status = set(extra_codes)
        if viewer is occupant:
            status.add(codes.SELF)
            if self.config.non_anonymous:
                status.add(codes.NON_ANONYMOUS)
        return occupant_presence(source, self.nick_jid(occupant.nick), to,
                                 self.item_for(occupant, viewer, session, **item), status,
                                 self.occupant_id(occupant.bare), type)

    def broadcast_presence(self, occupant: Occupant, extra_codes: Iterable[int] = (),
                           self_codes: Iterable[int] = (), type: str | None = None,
                           source: domish.Element | None = None,
                           also: Iterable[tuple[Occupant, JID]] = (), **item) -> None:
        """``occupant``'s presence to everyone in the room (and to ``also``: sessions that
        just left), the status codes for its own sessions added to theirs. An available
        presence of a role the room does not broadcast goes to the occupant alone; leaving
        is told to everyone."""
        shown = type == "unavailable" or self.shows(occupant)
        for viewer, jid in [*self.occupants.sessions(), *also]:
            own = viewer is occupant
            if not (shown or own):
                continue
            self.send(self.presence_of(occupant, viewer, jid,
                                       [*extra_codes, *(self_codes if own else ())],
                                       type, source, **item))

    def broadcast(self, message: domish.Element) -> None:
        """A message (without 'to') to every session of every occupant."""
        for _, jid in self.occupants.sessions():
            self.send(addressed(message, jid))

    def send_to_occupant(self, occupant: Occupant, message: domish.Element) -> None:
        for jid in occupant.jids():
            self.send(addressed(message, jid))

    # -- life

    def is_empty(self) -> bool:
        return len(self.occupants) == 0


def addressed(element: domish.Element, to: JID) -> domish.Element:
    """A copy of ``element`` (children shared, read-only) with 'to' set."""
    copy = domish.Element((element.uri, element.name), element.defaultUri,
                          dict(element.attributes), dict(element.localPrefixes or {}))
    copy.children = list(element.children)
    copy["to"] = to.full()
    return copy
