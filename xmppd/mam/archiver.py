# -*- test-case-name: tests.unit.test_mam_archiver -*-
"""The message path of the archive: chain links that keep each one-to-one message once per
local account, and stamp the recipient's copy with its XEP-0359 stanza-id.

A message between two local accounts passes twice: at 'outgoing' (the sender's copy, with
the recipient as 'with') and at 'bare'/'full' (the recipient's copy). A message from another
server gets only the second, one to another server only the first. The recipient's id is
made before delivery (the write waits in the BatchWriter), so the delivered message carries
the id under which the archive will hold it.

The usual case costs no storage call on the path: preferences come from memory, and the
entry joins the batch. Only an account whose preferences are not cached, or whose default is
'roster', makes the message wait for a read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from twisted.internet import defer

from xmppd.interfaces import IRoster
from xmppd.jid import JID
from xmppd.mam.ids import EntryIds
from xmppd.mam.prefs import ArchivePrefs
from xmppd.mam.stanza_ids import archivable, with_stanza_id, without_forged_ids
from xmppd.mam.writer import BatchWriter
from xmppd.stanza import Stanza
from xmppd.storage.records import ArchiveEntry
from xmppd.xml.stored import stanza_to_text


class Archiver:
    """``outgoing`` and ``incoming`` are the chain links; ``domains`` our hosts."""

    def __init__(self, writer: BatchWriter, prefs: ArchivePrefs, query: Callable,
                 domains: Collection[str], seconds: Callable[[], float]) -> None:
        self._writer = writer
        self._prefs = prefs
        self._query = query  # the context's provider look-up, for IRoster
        self._domains = frozenset(domains)
        self._seconds = seconds
        self._new_id = EntryIds()

    def outgoing(self, stanza: Stanza, origin):
        """What a local client sends: forged ids out; the sender's copy archived."""
        sender = stanza.sender.bare()
        stripped = without_forged_ids(stanza, self._domains | {sender.full()})
        if stripped is not None:
            stanza = stripped
        recipient = stanza.recipient
        if (recipient is None or recipient.bare() == sender  # a note to self: archived once,
                or not archivable(stanza.element)):          # as it arrives
            return stripped
        decided = self._decide(sender, recipient.bare())
        if isinstance(decided, defer.Deferred):
            return decided.addCallback(self._keep_sent, stanza, sender, recipient.bare())
        return self._keep_sent(decided, stanza, sender, recipient.bare())

    def incoming(self, stanza: Stanza, origin):
        """A message for a local account: forged ids out; its copy archived and stamped."""
        account = stanza.recipient.bare()
        stripped = without_forged_ids(stanza, self._domains | {account.full()})
        if stripped is not None:
            stanza = stripped
        if stanza.sender is None or not archivable(stanza.element):
            return stripped
        decided = self._decide(account, stanza.sender.bare())
        if isinstance(decided, defer.Deferred):
            return decided.addCallback(self._keep_received, stanza, account)
        return self._keep_received(decided, stanza, account)

    # -- deciding

    def _decide(self, account: JID, contact: JID) -> bool | defer.Deferred:
        """Whether ``account`` archives messages with ``contact``: at once when its
        preferences are in memory and need no roster, else a Deferred of it."""
        prefs = self._prefs.cached(account.full())
        if prefs is not None:
            decision = prefs.decide(contact.full())
            if decision is not None:
                return decision
        return defer.ensureDeferred(self._decide_slowly(account, contact))

    async def _decide_slowly(self, account: JID, contact: JID) -> bool:
        prefs = await self._prefs.get(account)
        if prefs is None:
            return False  # no such account: nothing to archive for it
        decision = prefs.decide(contact.full())
        if decision is None:
            roster = self._query(IRoster)
            if roster is None:
                return False  # 'roster' without a roster: nobody is in it
            state = await roster.get_state(account, contact)
            decision = state.subscription != "none"
        return decision

    # -- keeping

    def _keep_sent(self, decided: bool, stanza: Stanza, sender: JID, contact: JID):
        """The sender's copy into its archive; what the link returns (the stanza, stripped
        or not, possibly after a wait for the disk)."""
        if not decided:
            return stanza
        wait = self._add(sender, contact, stanza, self._new_id(), ())
        return stanza if wait is None else wait.addCallback(lambda _: stanza)

    def _keep_received(self, decided: bool, stanza: Stanza, account: JID):
        if not decided:
            return stanza
        entry_id = self._new_id()
        stamped = with_stanza_id(stanza, entry_id, account.full())
        sender = stanza.sender.bare()
        local_sender = (sender.full(),) if sender.host in self._domains else ()
        wait = self._add(account, sender, stamped, entry_id, local_sender)
        return stamped if wait is None else wait.addCallback(lambda _: stamped)

    def _add(self, owner: JID, contact: JID, stanza: Stanza, entry_id: str,
             accounts: tuple[str, ...]) -> defer.Deferred | None:
        entry = ArchiveEntry(self._seconds(), contact.full(), stanza_to_text(stanza.element),
                             entry_id)
        return self._writer.add(owner.full(), entry, accounts)
