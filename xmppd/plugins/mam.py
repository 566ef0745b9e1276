# -*- test-case-name: tests.unit.test_mam_plugin -*-
"""XEP-0313 message archive management (``urn:xmpp:mam:2`` and ``#extended``): every
one-to-one message worth keeping, archived once per local account, stamped with a XEP-0359
stanza-id, queried by the account alone.

The links sit at ``LINK_PRIORITY`` (50): after blocking (1000), which drops what is never
delivered, before carbons (0), which copy the message as stamped, and before delivery. The
archive writes are batched (xmppd.mam.writer says what that costs and how an answer from
the server still proves earlier messages archived); every IQ from an account waits for the
commit of the archive entries its earlier messages made.

``[plugins.mam]``: ``default_prefs`` (always | never | roster, for accounts that set none),
``retention_days`` (0: keep forever; older entries are purged every hour), ``batch_ms`` and
``batch_size`` (the batching; 0 ms: a commit per message), ``page_size`` and
``max_page_size`` (results per query when the client says nothing, and at most).
"""

from __future__ import annotations

from twisted.internet import defer, task
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IArchiveWrites, IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.mam.archiver import Archiver
from xmppd.mam.prefs import DEFAULTS, ArchivePrefs, parse_prefs
from xmppd.mam.query import fin, parse_query, query_form, result_messages
from xmppd.mam.writer import BatchWriter
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import MESSAGE_TYPES, Stanza
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.stores.archive_log import SQLArchiveLog

log = get_logger(__name__)

LINK_PRIORITY = 50
ARCHIVED_TYPES = ("normal", "chat")  # xmppd.mam.stanza_ids.archivable keeps no other type
PURGE_INTERVAL = 3600.0  # seconds between retention purges
DAY = 86_400.0


@implementer(IXmppdPlugin)
class Mam:
    name = "mam"
    requires = ()

    def configure(self, options) -> dict:
        """``[plugins.mam]``, checked before the database opens."""
        return _read_options(options)

    def setup(self, ctx) -> defer.Deferred:
        self.ctx = ctx
        options = ctx.settings
        self.page_size, self.max_page = options["page_size"], options["max_page_size"]
        # The message archive's own table (archive_log: cheap appends for ids in the order
        # made), not open_store's generic one; entries from before it are adopted below.
        self.store = SQLArchiveLog(ctx.storage, "mam")
        self.writer = BatchWriter(self.store, ctx.reactor.callLater, options["batch_ms"] / 1000,
                                  options["batch_size"], self.store.append_rows)
        ctx.provide(IArchiveWrites, self.writer)  # stream management's <a/> waits for it too
        self.prefs = ArchivePrefs(ctx.open_store("mam_prefs", "map"), options["default_prefs"])
        users = ctx.storage.users
        self.archiver = archiver = Archiver(
            self.writer, self.prefs, ctx.query, ctx.domains, ctx.reactor.seconds,
            ctx.sessions.resources, lambda account: users.user_exists(account.user,
                                                                      account.host))
        self._add_links(ctx, archiver)
        self._add_answerers(ctx)
        ctx.on(events.USER_DELETING, self.on_user_deleting)
        ctx.on(events.USER_DELETED, self.on_user_deleted)
        ctx.on(events.SERVER_STOPPING, self.writer.flush)
        self.retention_days = options["retention_days"]
        self.purger = None
        if self.retention_days:
            self.purger = task.LoopingCall(self.purge)
            self.purger.clock = ctx.reactor
            self.purger.start(PURGE_INTERVAL, now=True)
        return defer.ensureDeferred(self._load(ctx.domains))

    async def _load(self, domains) -> None:
        moved = await self.store.adopt()
        if moved:
            log.info("archive: {count} entries moved to the message archive table",
                     count=moved)
        newest = await self.store.newest_position()
        if newest is not None:
            self.archiver.not_before(newest)  # the clock may be behind the archive
        await self.prefs.load(domains)

    def _add_links(self, ctx, archiver: Archiver) -> None:
        for type in ARCHIVED_TYPES:
            ctx.stanza("message", type, "outgoing", archiver.outgoing, LINK_PRIORITY)
        # Every type, for forged stanza-ids: an error or a groupchat may carry them too.
        for type in MESSAGE_TYPES:
            for target in ("bare", "full"):
                ctx.stanza("message", type, target, archiver.incoming, LINK_PRIORITY)
        for type in ("get", "set"):
            for target in ("host", "bare", "full"):
                ctx.stanza("iq", type, target, self.settle, LINK_PRIORITY)

    def _add_answerers(self, ctx) -> None:
        for feature in (ns.MAM, ns.MAM_EXTENDED):
            ctx.feature(feature, to="account")
        ctx.iq("get", ns.MAM, "query", self.on_form, to="self")
        ctx.iq("set", ns.MAM, "query", self.on_query, to="self")
        ctx.iq("get", ns.MAM, "prefs", self.on_get_prefs, to="self")
        ctx.iq("set", ns.MAM, "prefs", self.on_set_prefs, to="self")
        for type in ("get", "set"):
            for name in ("query", "prefs"):
                ctx.iq(type, ns.MAM, name, self.on_other, to="bare")

    def teardown(self) -> None:
        """Hand what is collected to the database before it closes (its queue is written
        before the connection goes)."""
        if self.purger is not None and self.purger.running:
            self.purger.stop()
        self.writer.flush()

    # -- the archive is settled before any answer to the account

    def settle(self, stanza: Stanza, origin) -> defer.Deferred | None:
        """An IQ from an account whose messages still have entries waiting: commit them
        first, so the answer proves them on disk (README: an answer from the server...)."""
        sender = stanza.sender
        if sender is None or sender.host not in self.ctx.domains:
            return None
        return self.writer.settled(sender.userhost())

    # -- queries (XEP-0313 §4)

    def on_form(self, stanza: Stanza, origin):
        return query_form()

    async def on_query(self, stanza: Stanza, origin):
        request = parse_query(stanza.payload(), default_max=self.page_size, limit=self.max_page)
        archive = stanza.recipient.userhost()
        await _maybe(self.writer.settled(archive))
        try:
            page = await self.store.query(archive, request.query)
        except ArchiveEntryNotFound as error:
            raise StanzaError("item-not-found", "no such id in the archive") from error
        session = self.ctx.sessions.get(stanza.sender)
        if session is not None:
            for message in result_messages(page, request, stanza.sender.full(), archive):
                session.send(message)
        return fin(page)

    def on_other(self, stanza: Stanza, origin):
        raise StanzaError("forbidden", "an archive is for its account alone")

    # -- preferences (XEP-0313 §6)

    def on_get_prefs(self, stanza: Stanza, origin):
        return self.prefs.get(stanza.recipient).to_element()

    async def on_set_prefs(self, stanza: Stanza, origin):
        prefs = parse_prefs(stanza.payload())
        await self.prefs.set(stanza.recipient, prefs)
        return prefs.to_element()

    # -- accounts and retention

    def on_user_deleting(self, account: JID) -> defer.Deferred | None:
        """Drop the account's entries still in memory and wait for those on their way to
        disk, so that none lands after its data is deleted."""
        self.writer.forget(account.userhost())
        return self.writer.settled(account.userhost())

    def on_user_deleted(self, account: JID) -> defer.Deferred:
        """The preferences go; so does what still waits for the archive: on a cluster's
        other nodes (xmppd.cluster.accounts) this is the first word of the deletion."""
        self.writer.forget(account.userhost())
        return defer.ensureDeferred(self.prefs.forget(account))

    def purge(self) -> defer.Deferred:
        """Delete every entry older than ``retention_days``; a failure is logged, and the
        next purge tries again."""
        before = self.ctx.reactor.seconds() - self.retention_days * DAY
        d = self.store.delete_before(before)
        d.addCallback(self._purged)
        d.addErrback(lambda failure: log.failure("archive purge failed", failure))
        return d

    def _purged(self, count: int) -> None:
        if count:
            log.info("archive retention: {count} entries purged", count=count)


def _read_options(options) -> dict:
    """A bad value stops start-up with a line naming [plugins.mam] and the key."""
    reject_unknown_keys(options, ("default_prefs", "retention_days", "batch_ms", "batch_size",
                              "page_size", "max_page_size"))
    max_page = options.option_int("max_page_size", 250, minimum=1, maximum=10_000)
    return {
        "default_prefs": options.option_str("default_prefs", "always", DEFAULTS),
        "retention_days": options.option_int("retention_days", 0, minimum=0),
        "batch_ms": options.option_int("batch_ms", 50, minimum=0, maximum=10_000),
        "batch_size": options.option_int("batch_size", 5000, minimum=1),
        "page_size": options.option_int("page_size", 50, minimum=1, maximum=max_page),
        "max_page_size": max_page,
    }


async def _maybe(d: defer.Deferred | None) -> None:
    if d is not None:
        await d


mam = Mam()
