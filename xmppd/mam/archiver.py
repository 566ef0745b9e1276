# -*- test-case-name: tests.unit.test_mam_archiver -*-
"""The message path of the archive: chain links that keep each one-to-one message once per
local account, and stamp the recipient's copy with its XEP-0359 stanza-id.

A message between two local accounts passes twice: at 'outgoing' (the sender's copy, with
the recipient as 'with') and at 'bare'/'full' (the recipient's copy). A message from another
server gets only the second, one to another server only the first. The recipient's id is
made before delivery (the write waits in the BatchWriter), so the delivered message carries
the id under which the archive will hold it.

The usual case costs no storage call on the path: preferences come from memory, and the
entry joins the batch. Only a message for an account without a session (is there such an
account?) or one whose default is 'roster' waits for a read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from twisted.internet import defer

from xmppd import ns
from xmppd.interfaces import IRoster
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.mam.ids import EntryIds
from xmppd.mam.prefs import ArchivePrefs
from xmppd.mam.stanza_ids import (
    archivable,
    has_stanza_id,
    with_stanza_id,
    without_forged_ids,
)
from xmppd.mam.writer import BatchWriter
from xmppd.stanza import Stanza
from xmppd.xml.serializer import serialize

log = get_logger(__name__)


class Archiver:
    """``outgoing`` and ``incoming`` are the chain links; ``domains`` our hosts."""

    def __init__(self, writer: BatchWriter, prefs: ArchivePrefs, query: Callable,
                 domains: Collection[str], seconds: Callable[[], float],
                 online: Callable[[JID], list], exists: Callable[[JID], defer.Deferred]
                 ) -> None:
        self._writer = writer
        self._prefs = prefs
        self._query = query  # the context's provider look-up, for IRoster
        self._online = online  # an account's sessions: it exists
        self._exists = exists  # Deferred of whether an account without sessions exists
        self._domains = frozenset(domains)
        self._new_id = EntryIds(_nanoseconds(seconds))
        self._last: tuple[object, bytes, str] = (None, b"", "")  # serialized last: bytes, text
        self._checked: tuple[object, tuple[bool, bool]] = (None, (False, False))  # _look's

    def not_before(self, position: str) -> None:
        """Ids made from now on sort after ``position`` (the archive's newest at start)."""
        self._new_id.not_before(position)

    def outgoing(self, stanza: Stanza, origin):
        """What a local client sends: forged ids out; the sender's copy archived."""
        stripped = None
        element = stanza.element
        keep, ids = self._look(element)
        if ids:  # rare: the scan below allocates nothing
            stripped = without_forged_ids(stanza, self._domains | {stanza.sender.userhost()})
            if stripped is not None:
                stanza = stripped
                keep = self._look(stanza.element)[0]
        recipient = stanza.recipient
        if recipient is None or not keep:
            return stripped
        sender = stanza.sender.bare()
        contact = recipient.bare()
        if contact == sender:  # a note to self: archived once, as it arrives
            return stripped
        decided = self._decide(sender, contact, True)
        if isinstance(decided, defer.Deferred):
            return decided.addCallback(self._keep_sent, stanza, sender, contact)
        return self._keep_sent(decided, stanza, sender, contact)

    def incoming(self, stanza: Stanza, origin):
        """A message for a local account: forged ids out; its copy archived and stamped."""
        account = stanza.recipient.bare()
        stripped = None
        keep, ids = self._look(stanza.element)
        if ids:
            stripped = without_forged_ids(stanza, self._domains | {account.full()})
            if stripped is not None:
                stanza = stripped
                keep = self._look(stanza.element)[0]
        if stanza.sender is None or not keep:
            return stripped
        decided = self._decide(account, stanza.sender.bare(), bool(self._online(account)))
        if isinstance(decided, defer.Deferred):
            return decided.addCallback(self._keep_received, stanza, account)
        return self._keep_received(decided, stanza, account)

    def _look(self, element) -> tuple[bool, bool]:
        """Whether the element is archivable, and whether it has a stanza-id child at all:
        remembered for the element seen last, as a message between two local accounts
        passes both links as the same element (unless a link took a forged id out: then
        the next link sees a new element)."""
        last, seen = self._checked
        if element is not last:
            seen = (archivable(element), has_stanza_id(element))
            self._checked = (element, seen)
        return seen

    # -- deciding

    def _decide(self, account: JID, contact: JID, known: bool) -> bool | defer.Deferred:
        """Whether ``account`` archives messages with ``contact``: at once, or a Deferred
        when that needs a read (the roster for 'roster'; whether an account with no session
        exists at all, unless ``known``)."""
        decision = self._prefs.get(account).decide(contact.full())
        if decision is False or (decision and known):
            return decision
        d = defer.ensureDeferred(self._decide_slowly(account, contact, decision, known))
        return d.addErrback(self._not_archived, account)

    async def _decide_slowly(self, account: JID, contact: JID, decision: bool | None,
                             known: bool) -> bool:
        if not known and not await self._exists(account):
            return False  # no such account: nothing to archive for it
        if decision is None:
            roster = self._query(IRoster)
            if roster is None:
                return False  # 'roster' without a roster: nobody is in it
            state = await roster.get_state(account, contact)
            decision = state.subscription != "none"
        return decision

    def _not_archived(self, failure, account: JID) -> bool:
        """Storage failed us: the message is delivered all the same, only not archived."""
        log.failure("archive: cannot decide for {account}; message not archived", failure,
                    account=account)
        return False

    # -- keeping

    def _keep_sent(self, decided: bool, stanza: Stanza, sender: JID, contact: JID):
        """The sender's copy into its archive; what the link returns (the stanza, stripped
        or not, possibly after a wait for the disk)."""
        if not decided:
            return stanza
        wait = self._writer.add_row(
            (sender.userhost(), self._new_id(), self._new_id.stamp, contact.userhost(),
             self._text(stanza.element)[1]))
        return stanza if wait is None else wait.addCallback(lambda _: stanza)

    def _keep_received(self, decided: bool, stanza: Stanza, account: JID):
        if not decided:
            return stanza
        entry_id = self._new_id()
        sender = stanza.sender
        owner = account.userhost()
        wire, text = self._text(stanza.element)
        # The stamp is the id's own time: the archive finds time ranges by id (archive_log).
        wait = self._writer.add_row(
            (owner, entry_id, self._new_id.stamp, sender.userhost(), text),
            (sender.userhost(),) if sender.host in self._domains else ())
        stamped = with_stanza_id(stanza, entry_id, owner, wire)
        return stamped if wait is None else wait.addCallback(lambda _: stamped)

    def _text(self, element) -> tuple[bytes, str]:
        """The stanza serialized for a client stream, as bytes and as the text stored, once
        for both archives of a local-to-local message and the recipient's stamped copy: the
        sender's link and the recipient's see the same element, never edited in place
        (copies are made to change one). The stanza-id of the recipient's copy is not in
        the stored text: the query's <result id=.../> says it."""
        last, wire, text = self._last
        if element is not last:
            wire = serialize(element, ns.CLIENT)
            text = wire.decode("utf-8")
            self._last = (element, wire, text)
        return wire, text


def _nanoseconds(seconds: Callable[[], float]) -> Callable[[], int]:
    """The ids' clock from the reactor's (a task.Clock in tests): ``time.time_ns`` itself
    when that is ``time.time``."""
    if seconds is time.time:
        return time.time_ns
    return lambda: int(seconds() * 1_000_000_000)
