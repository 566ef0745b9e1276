# -*- test-case-name: tests.unit.test_muc_plugin -*-
"""XEP-0313 on a room: its groupchat messages, kept when the owner enabled logging, each
under the stanza-id the room stamped (by = the room), queried at the room's JID with MAM's
own query and result code (xmppd.mam.query); XEP-0425 tombstones replace a moderated
message's content in the archive.

Who may read: anyone who could enter (not an outcast; a member or more in a members-only
room). Entries are the messages as broadcast, so a semi-anonymous room's archive shows
nicks and occupant-ids, never real JIDs."""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import find_form
from xmppd.jid import JID
from xmppd.mam.query import Request, fin, parse_query, result_messages
from xmppd.mam.writer import BatchWriter
from xmppd.muc.history import Entry
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchiveQuery
from xmppd.xml.stored import stanza_from_text, stanza_to_text

STORE = "muc_archive"


class RoomArchive:
    """The archives of the service's rooms, one archive-store owner per room, written in
    batches by MAM's own writer (xmppd.mam.writer): a room's message costs no commit of its
    own, and every query or tombstone of the room commits what waits for it first."""

    def __init__(self, store, call_later, page_size: int = 50, max_page: int = 250,
                 batch_delay: float = 0.05, batch_size: int = 500) -> None:
        self.store = store
        self.page_size = page_size
        self.max_page = max_page
        self.writer = BatchWriter(store, call_later, batch_delay, batch_size)

    def add(self, room, message: domish.Element, stanza_id: str,
            stamp: float) -> defer.Deferred | None:
        """Keep a broadcast message under its stanza-id; a Deferred when the disk is behind
        (the sender's stream waits for it)."""
        entry = ArchiveEntry(stamp, message["from"], stanza_to_text(message), stanza_id)
        return self.writer.add(room.jid.full(), entry)

    async def settled(self, owner: str) -> None:
        d = self.writer.settled(owner)
        if d is not None:
            await d

    def flush(self) -> defer.Deferred:
        return self.writer.flush()

    async def recent(self, room, count: int) -> list[Entry]:
        """The room's newest archived messages that a history shows (a body or a subject;
        a moderated message's tombstone has neither), at most ``count``, oldest first: the
        history of a logging room that comes back from the store (a restart, or its node
        died) instead of an empty one. Looks back twice as far as asked, no further."""
        owner = room.jid.full()
        await self.settled(owner)
        page = await self.store.query(owner, ArchiveQuery(last_page=True, limit=2 * count))
        entries = []
        for entry in page.entries:
            message = stanza_from_text(entry.payload)
            if message is None or not any(child.name in ("body", "subject")
                                          and child.uri in ("", None, ns.CLIENT)
                                          for child in message.elements()):
                continue
            entries.append(Entry(entry.stamp, message, len(message.toXml()), entry.id))
        return entries[-count:]

    async def query(self, room, sender: JID, query: domish.Element,
                    send) -> domish.Element:
        if not may_read(room, sender):
            raise StanzaError("forbidden", "only those who may enter the room read its archive")
        request = occupant_filter(parse_query(query, default_max=self.page_size,
                                              limit=self.max_page), query)
        owner = room.jid.full()
        await self.settled(owner)
        try:
            page = await self.store.query(owner, request.query)
        except ArchiveEntryNotFound as error:
            raise StanzaError("item-not-found", "no such id in the archive") from error
        for message in result_messages(page, request, sender.full(), owner):
            send(message)
        return fin(page)

    async def tombstone(self, room, stanza_id: str, retracted: domish.Element) -> bool:
        """Replace the message's content with ``retracted`` (XEP-0425 §5); False when the
        archive has no such message."""
        owner = room.jid.full()
        await self.settled(owner)
        entry = await self.store.get(owner, stanza_id)
        if entry is None:
            return False
        original = stanza_from_text(entry.payload)
        if original is None:
            return False
        await self.store.update_payload(owner, stanza_id, stanza_to_text(
            tombstone_of(original, retracted)))
        return True


def occupant_filter(request: Request, query: domish.Element) -> Request:
    """MAM's 'with' names an account by its bare JID; in a room's archive it names an
    occupant, room/nick, which is how entries are kept."""
    form = find_form(query)
    with_jid = form.get_jid("with") if form is not None else None
    if with_jid is None or with_jid.resource is None:
        return request
    return dataclasses.replace(request, query=dataclasses.replace(
        request.query, with_jid=with_jid.full()))


def tombstone_of(original: domish.Element, retracted: domish.Element) -> domish.Element:
    """The message with its content gone: addresses, id, occupant-id and stanza-id kept."""
    kept = domish.Element((None, "message"), attribs=dict(original.attributes))
    for child in original.elements():
        if child.name in ("occupant-id", "stanza-id"):
            kept.addChild(child)
    kept.addChild(retracted)
    return kept


def may_read(room, sender: JID) -> bool:
    affiliation = room.affiliation(sender)
    if affiliation == "outcast":
        return False
    if room.config.members_only:
        return affiliation != "none"
    return True
