# -*- test-case-name: tests.unit.test_muc_plugin -*-
"""The rooms of one MUC service and the stanzas addressed to them: each room's stanzas to
the module of its job (join, messages, admin, moderation, archive, vcard), rooms made on
first entry, dropped when a temporary room empties, kept and loaded when persistent."""

from __future__ import annotations

import os
from collections.abc import Callable

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.disco import DiscoItem
from xmppd.errors import StanzaError
from xmppd.interfaces import IMucRooms
from xmppd.jid import JID, parse_jid
from xmppd.logs import get_logger
from xmppd.muc import admin, handoff, join, messages, moderation, registration, store, vcard
from xmppd.muc import presence as codes
from xmppd.muc.admin import Limits
from xmppd.muc.archive import RoomArchive
from xmppd.muc.config import RoomConfig
from xmppd.muc.discovery import info_query, public_items, room_info
from xmppd.muc.iq_relay import IqRelay
from xmppd.muc.room import Room
from xmppd.stanza import Stanza

log = get_logger(__name__)

SECRET_BYTES = 32


@implementer(IMucRooms)
class MucService:
    """Every room of the service's domains, by bare JID (in a cluster: those run here)."""

    def __init__(self, *, send: Callable[[domish.Element], object], clock: Callable[[], float],
                 rooms: store.RoomStore, archive: RoomArchive | None, limits: Limits,
                 may_create: Callable[[JID], bool], defaults: RoomConfig,
                 new_id: Callable[[], str], max_vcard: int = 65536,
                 max_rooms_per_owner: int = 0) -> None:
        self.send = send
        self.clock = clock
        self.store = rooms
        self.archive = archive
        self.limits = limits
        self.may_create = may_create
        self.defaults = defaults
        self.new_id = new_id
        self.max_vcard = max_vcard
        self.max_rooms_per_owner = max_rooms_per_owner  # 0: no cap
        self.rooms: dict[JID, Room] = {}
        self._stored: set[JID] = set()
        self._saving: dict[JID, defer.Deferred] = {}
        self.relay = IqRelay()
        # the router's service (xmppd.services.Service), for a cluster (IMucRooms)
        self.service = None
        # public rooms run elsewhere: domain -> Deferred list of DiscoItem (a cluster)
        self.elsewhere: Callable | None = None

    # -- the service as a cluster sees it (IMucRooms)

    @property
    def domains(self) -> frozenset[str]:
        return self.service.domains

    @property
    def dispatcher(self):
        return self.service.dispatcher

    def route(self, stanza: Stanza, origin):
        return self.service.route(stanza, origin)

    # -- rooms

    def new_room(self, jid: JID, config: RoomConfig, secret: bytes | None = None) -> Room:
        room = Room(jid, config, secret or os.urandom(SECRET_BYTES), send=self.send,
                    clock=self.clock, changed=self.changed, new_id=self.new_id,
                    archive=self._archive)
        self.rooms[jid] = room
        return room

    async def load(self, domains, wanted: Callable[[JID], bool] | None = None) -> int:
        """The persistent rooms of ``domains`` back in memory (those ``wanted``, all without
        it; a room in memory already stays as it is); how many."""
        count = 0
        for domain in sorted(domains):
            records = await self.store.load(domain)
            for local, record in records.items():
                jid = JID(local, domain)
                if jid in self.rooms or (wanted is not None and not wanted(jid)):
                    continue
                try:
                    room = self.new_room(jid, RoomConfig(), store.secret_of(record))
                    store.restore(room, record)
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    self.rooms.pop(jid, None)
                    log.error("room {room} is unreadable in the store, left out: {error}",
                              room=jid.full(), error=error)
                    continue
                vcard.restore_hash(room)
                await self._history_from_archive(room)
                self._stored.add(jid)
                count += 1
        return count

    async def _history_from_archive(self, room: Room) -> None:
        """A logging room's history is its archive's newest messages: what a joiner sees
        survives a restart, and a node's death in a cluster."""
        if self.archive is None or not room.config.enable_logging or not room.history.length:
            return
        try:
            entries = await self.archive.recent(room, room.history.length)
        except Exception:
            log.failure("room {room}: history not read from its archive", room=room.jid.full())
            return
        for entry in entries:
            room.history.add(entry)

    def changed(self, room: Room) -> defer.Deferred | None:
        """A persistent room saved (a temporary one deleted if it was kept)."""
        if room.destroyed or room.locked:
            return None
        if room.config.persistent:
            self._stored.add(room.jid)
            d = self.store.save(room)
        elif room.jid in self._stored:
            self._stored.discard(room.jid)
            d = self.store.delete(room.jid)
        else:
            return None
        return self._track(room.jid, d)

    def _track(self, jid: JID, d: defer.Deferred) -> defer.Deferred:
        """Remember the write, so that the answer to the IQ that made it waits for it."""
        self._saving[jid] = d
        d.addErrback(lambda failure: log.failure("room {room} not saved", failure,
                                                 room=jid.full()))
        d.addBoth(self._saved, jid, d)
        return d

    def _saved(self, _result, jid: JID, d: defer.Deferred) -> None:
        if self._saving.get(jid) is d:
            del self._saving[jid]

    async def saved(self, room: Room) -> None:
        d = self._saving.get(room.jid)
        if d is not None:
            await defer.DeferredList([d])

    def _archive(self, room: Room, message: domish.Element, stanza_id: str,
                 stamp: float) -> defer.Deferred | None:
        if self.archive is None:
            return None
        return self.archive.add(room, message, stanza_id, stamp)

    def drop_if_unused(self, room: Room) -> None:
        if room.is_empty() and (not room.config.persistent or room.locked):
            self.rooms.pop(room.jid, None)

    def destroy(self, room: Room, element: domish.Element | None) -> None:
        admin.destruction_notice(room, element)
        room.destroyed = True
        self.rooms.pop(room.jid, None)
        if room.jid in self._stored:
            self._stored.discard(room.jid)
            self._track(room.jid, self.store.delete(room.jid))

    def shutdown(self) -> None:
        """The service stops: every occupant told it is out, with 332 (§15.6.2)."""
        for jid in list(self.rooms):
            self.close(jid)

    def close(self, jid: JID) -> None:
        """The room stops here (this process stops, or a cluster could not hand it over):
        every occupant told it is out, with 332; what is stored stays."""
        room = self.rooms.pop(jid, None)
        if room is None:
            return
        self._stored.discard(jid)
        for occupant in room.occupants:
            for session in occupant.jids():
                room.send(room.presence_of(occupant, occupant, session, [codes.SHUTDOWN],
                                           "unavailable"))
            room.occupants.remove(occupant)

    def export(self, jid: JID) -> dict | None:
        """The room's whole state, and the room forgotten here (its occupants told nothing:
        it goes on elsewhere)."""
        room = self.rooms.pop(jid, None)
        if room is None:
            return None
        self._stored.discard(jid)
        return handoff.room_state(room)

    def adopt(self, state: dict) -> Room:
        """A room exported by another process runs here now; a copy here is replaced (its
        occupants, who joined in the instant the room moved, are told 332)."""
        jid = parse_jid(state["jid"]).bare()
        self.close(jid)
        room = self.new_room(jid, RoomConfig(), store.secret_of(state["record"]))
        try:
            handoff.restore_state(room, state)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.rooms.pop(jid, None)
            raise
        vcard.restore_hash(room)
        if room.config.persistent:
            self._stored.add(jid)
        return room

    def leave_sessions(self, gone: Callable[[JID], bool]) -> int:
        """Occupant sessions that are gone without a word (their process died) leave, as
        after an error bounced from them (§7.2.21); how many."""
        count = 0
        for room in list(self.rooms.values()):
            for _, session in room.occupants.sessions():
                occupant = room.occupants.of_session(session)
                if occupant is not None and gone(session):
                    join.leave(room, occupant, session, None)
                    count += 1
            self.drop_if_unused(room)
        return count

    def _check_room_cap(self, owner: JID) -> None:
        """An account owns at most ``max_rooms_per_owner`` rooms: each costs memory for as
        long as it lives, and a persistent one for ever."""
        cap = self.max_rooms_per_owner
        if cap and sum(1 for room in self.rooms.values()
                       if room.affiliations.get(owner) == "owner") >= cap:
            raise StanzaError("policy-violation", f"you own {cap} rooms already")

    def existing(self, jid: JID) -> Room:
        room = self.rooms.get(jid.bare())
        if room is None:
            raise StanzaError("item-not-found", "no such room")
        return room

    # -- presence and messages

    def on_presence(self, stanza: Stanza, origin=None) -> bool:
        bare = stanza.recipient.bare()
        room = self.rooms.get(bare)
        created = False
        if room is None:
            if stanza.type != "available":
                return True
            if not stanza.recipient.resource:
                raise StanzaError("jid-malformed", "a nick is the resource of the room/nick JID")
            if not self.may_create(stanza.sender):
                raise StanzaError("not-allowed", "you may not create rooms here")
            self._check_room_cap(stanza.sender.bare())
            room = self.new_room(bare, self.defaults)
            room.set_affiliation(stanza.sender.bare(), "owner")
            room.locked = join.muc_join_element(stanza.element) is not None
            created = True
        try:
            maybe_empty = join.on_presence(room, stanza, created)
        except StanzaError:
            if created:
                self.rooms.pop(bare, None)
            raise
        if maybe_empty:
            self.drop_if_unused(room)
        return True

    def on_message(self, stanza: Stanza, origin=None) -> bool:
        room = self.existing(stanza.recipient)
        if stanza.type == "error":
            occupant = room.occupants.of_session(stanza.sender)
            if occupant is not None:  # a session gone without a word: out (§7.2.21)
                join.leave(room, occupant, stanza.sender, None)
                self.drop_if_unused(room)
            return True
        if stanza.recipient.resource is not None:
            messages.on_private(room, stanza)
        elif stanza.type == "groupchat":
            waiting = messages.on_groupchat(room, stanza)
            if waiting is not None:  # the archive's disk is behind: the sender waits
                return waiting.addCallback(lambda _: True)
        else:
            messages.on_normal(room, stanza)
        return True

    # -- IQs to a room (answerers: the return is the result's payload)

    def disco_info(self, stanza: Stanza, origin=None) -> domish.Element:
        room = self.existing(stanza.recipient)
        node = stanza.payload().getAttribute("node")
        if node == registration.NICK_NODE:
            query = info_query(registration.nick_info(room, stanza.sender))
            query["node"] = node
            return query
        if node:
            raise StanzaError("item-not-found", "no such node of the room")
        return info_query(room_info(room, self.archive is not None))

    def disco_items(self, stanza: Stanza, origin=None) -> domish.Element:
        self.existing(stanza.recipient)
        return domish.Element((ns.DISCO_ITEMS, "query"))

    def service_items(self, stanza: Stanza, node: str | None) -> list[DiscoItem] | None:
        if node is not None:
            return None
        domain = stanza.recipient.host
        here = public_items(room for room in self.rooms.values() if room.jid.host == domain)
        if self.elsewhere is None:
            return here
        return self.elsewhere(domain).addCallback(
            lambda there: sorted({item.jid: item for item in [*there, *here]}.values(),
                                 key=lambda item: item.jid))

    def admin_get(self, stanza: Stanza, origin=None) -> domish.Element:
        return admin.get_list(self.existing(stanza.recipient), stanza.sender, stanza.payload())

    async def admin_set(self, stanza: Stanza, origin=None) -> None:
        room = self.existing(stanza.recipient)
        admin.set_list(room, stanza.sender, stanza.payload())
        await self.saved(room)
        self.drop_if_unused(room)

    def owner_get(self, stanza: Stanza, origin=None) -> domish.Element:
        room = self.existing(stanza.recipient)
        return admin.get_config(room, stanza.sender, self.limits)

    async def owner_set(self, stanza: Stanza, origin=None) -> None:
        room = self.existing(stanza.recipient)
        admin.set_owner(room, stanza.sender, stanza.payload(), self.limits, self.destroy)
        await self.saved(room)
        if not room.destroyed:
            self.drop_if_unused(room)

    def register_get(self, stanza: Stanza, origin=None) -> domish.Element:
        return registration.get_form(self.existing(stanza.recipient), stanza.sender)

    async def register_set(self, stanza: Stanza, origin=None) -> None:
        room = self.existing(stanza.recipient)
        registration.register(room, stanza.sender, stanza.payload())
        await self.saved(room)

    def vcard_get(self, stanza: Stanza, origin=None) -> domish.Element:
        return vcard.get_vcard(self.existing(stanza.recipient))

    async def vcard_set(self, stanza: Stanza, origin=None) -> None:
        room = self.existing(stanza.recipient)
        vcard.set_vcard(room, stanza.sender, stanza.payload(), self.max_vcard)
        await self.saved(room)

    async def mam_query(self, stanza: Stanza, origin=None) -> domish.Element:
        room = self.existing(stanza.recipient)
        if self.archive is None or not room.config.enable_logging:
            raise StanzaError("service-unavailable", "this room keeps no archive")
        return await self.archive.query(room, stanza.sender, stanza.payload(), self.send)

    async def moderate(self, stanza: Stanza, origin=None) -> None:
        room = self.existing(stanza.recipient)
        nick = moderation.check_moderator(room, stanza.sender)
        stanza_id, reason = moderation.parse_moderate(stanza.payload())
        in_history = any(entry.stanza_id == stanza_id for entry in room.history.entries)
        archived = False
        if self.archive is not None:
            tombstone = moderation.moderated(room, nick, stanza.sender, reason, "retracted",
                                             self.clock())
            archived = await self.archive.tombstone(room, stanza_id, tombstone)
        if not (in_history or archived):
            raise StanzaError("item-not-found", "no message of the room has this stanza-id")
        room.history.remove(stanza_id)
        message, retraction_id = moderation.retraction(room, stanza_id, nick, stanza.sender,
                                                       reason)
        if room.config.enable_logging:
            self._archive(room, message, retraction_id, self.clock())
        room.broadcast(message)

    # -- IQs to an occupant

    def on_occupant_iq(self, stanza: Stanza, origin=None) -> bool:
        """A chain link for IQs to room/nick: requests relayed (or self-pings answered),
        answers to relayed requests sent back."""
        room = self.rooms.get(stanza.recipient.bare())
        if stanza.type in ("result", "error"):
            answer = self.relay.answer(room, stanza) if room is not None else None
            if answer is not None:
                self.send(answer)
            return True
        if room is None:
            raise StanzaError("not-acceptable", "you are not joined in this room")
        self.send(self.relay.request(room, stanza))
        return True
