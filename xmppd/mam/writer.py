# -*- test-case-name: tests.unit.test_mam_writer -*-
"""Archive writes off the message path: entries collected, committed in batches.

A commit waits for fsync (``synchronous = FULL``), about a millisecond on a good disk and far
more on a busy one; one per message would make the sender's stream wait for the disk twice
(both archives) before its next stanza. So entries wait in memory and are committed together,
in one ``append_many`` transaction, ``delay`` seconds after the first of them or as soon as
there are ``max_entries``. Their ids were made before (``new_entry_id``), so the messages
went out already stamped.

What that costs, and what keeps the README's promise ("an answer from the server proves every
earlier message was delivered or is on disk"): the message itself is delivered, or kept by
offline storage with its own durable write, before the sender's next stanza, as before; only
the archive copy lags. For the lag to stay invisible, every entry is tracked under the
accounts it concerns (its owner and its local sender), and ``settled(account)`` has what
concerns that account committed now (with the next write: see group commit below) and
waits for it. The plugin calls it before answering any
IQ from the account and before a MAM query, and stream management's ``<a/>`` waits for it
(``IArchiveWrites``), so a ping reply or an ack also proves the archive copies of every
earlier message are on disk (tests/integration/test_mam_durability.py kills the server
right after either), and a client never reads an archive that lacks a message it already
sent or received. What a crash (SIGKILL, power loss) can lose is the archive copies of the
last ``delay`` seconds of messages whose senders asked nothing since:
the messages were delivered, but a client that was offline then will not find them in the
archive. ``[plugins.mam] batch_ms = 0`` commits each message's entries before it is
delivered, for whom that matters more than throughput.

Group commit: one write at a time. ``settled`` calls (every ``<r/>`` of every client with
stream management asks one, every IQ too) and full batches that come while a write is on
its way to disk do not make writes of their own: they all wait for the next write, which
takes everything collected meanwhile and starts as soon as the current one is done; those
that come while the disk is idle start it at the end of the reactor turn, together. So a
busy server commits back to back, each commit as large as the previous one took time, and
never a transaction (with its fsync) per request; an answer waits at most for the write
under way and the next. (``flush`` alone hands the batch over at once, whatever is under
way: the server is stopping and the database thread writes its queue before it goes.)

Writes are not allowed to pile up unbounded: once ``max_entries`` wait behind a write under
way, ``add`` answers a Deferred that the message path waits for, so a slow disk slows the
senders instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IArchiveWrites
from xmppd.logs import get_logger
from xmppd.storage.records import ArchiveEntry
from xmppd.stream import output

log = get_logger(__name__)



class _Write:
    """One batch on its way to disk (or the next one, still collecting), and who waits for it."""

    __slots__ = ("accounts", "size", "_waiters", "done")

    def __init__(self) -> None:
        self.accounts: set[str] = set()
        self.size = 0
        self._waiters: list[defer.Deferred] = []
        self.done = False

    def wait(self) -> defer.Deferred:
        if self.done:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def finish(self) -> None:
        self.done = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


@implementer(IArchiveWrites)
class BatchWriter:
    """Collects rows for one archive store and commits them in batches: ``(owner, entry)``
    pairs for ``store.append_many`` (``add``), or whatever rows ``append`` takes, owner
    first (``add_row``: the message archive's plain tuples, SQLArchiveLog.append_rows).

    ``call_later`` is the reactor's (a task.Clock in tests); ``delay`` in seconds, 0 for a
    commit per ``add`` (group-committed with the other ``add`` calls of the moment).
    """

    def __init__(self, store, call_later: Callable, delay: float, max_entries: int,
                 append: Callable | None = None) -> None:
        self._store = store
        self._append = store.append_many if append is None else append
        self._call_later = call_later
        self._delay = delay
        self._max_entries = max_entries
        self._batch: list[tuple] = []
        self._touched: set[str] = set()  # the accounts the batch concerns
        self._timer = None  # the batch's delay
        self._start_call = None  # the start of the next write at the end of this turn
        self._next: _Write | None = None  # set: the batch is to be written, next
        self._writing: dict[str, _Write] = {}  # account -> the newest write that concerns it
        self._in_flight: list[_Write] = []  # one, but for flush()
        self.writes = 0  # writes handed to the database, and the entries in them (the
        self.written = 0  # average batch: tests, and a look with the manhole)

    @property
    def pending(self) -> int:
        """Entries not yet handed to the database."""
        return len(self._batch)

    def add(self, owner: str, entry: ArchiveEntry,
            accounts: Iterable[str] = ()) -> defer.Deferred | None:
        """Queue one entry (its id already set) of ``owner``'s archive, concerning ``owner``
        and ``accounts`` too. Returns None, or a Deferred to wait for when too much is
        waiting for the disk (or with no delay: the entry's own commit)."""
        return self.add_row((owner, entry), accounts)

    def add_row(self, row: tuple, accounts: Iterable[str] = ()) -> defer.Deferred | None:
        """``add`` for a row as ``append`` takes it, its owner first."""
        batch = self._batch
        batch.append(row)
        touched = self._touched
        touched.add(row[0])
        if accounts:
            touched.update(accounts)
        if self._delay <= 0:
            return self._request().wait()
        if len(batch) >= self._max_entries:
            if not self._in_flight:  # a full batch need not wait for the end of the turn
                self._start()
                return None
            self._request()
            return self._in_flight[0].wait()  # the disk is behind: wait for the write under way
        elif self._timer is None:
            self._timer = self._call_later(self._delay, self._on_timer)
        return None

    def settled(self, account: str) -> defer.Deferred | None:
        """None when nothing concerning ``account`` waits to be written; otherwise a
        Deferred that fires (with None) once it is on disk: the next write (started at the
        end of this reactor turn, or as soon as the one under way is done) for what is
        still collected, else the write under way."""
        if account in self._touched:
            return self._request().wait()
        write = self._writing.get(account)
        return None if write is None else write.wait()

    def flush(self) -> defer.Deferred:
        """Hand everything collected to the database now; a Deferred firing (None) once it
        and every write before it are on disk, or after a failure was logged."""
        if not self._batch and self._next is None:
            return self._in_flight[-1].wait() if self._in_flight else defer.succeed(None)
        return self._start().wait()

    def forget(self, owner: str) -> None:
        """Drop what waits for ``owner``'s archive (the account is being deleted)."""
        self._batch = [row for row in self._batch if row[0] != owner]

    def _request(self) -> _Write:
        """The batch is to be written as soon as may be: the write that will take it."""
        write = self._next
        if write is None:
            write = self._next = _Write()
            if not self._in_flight and self._start_call is None:
                self._start_call = self._call_later(0, self._start_requested)
        return write

    def _start_requested(self) -> None:
        self._start_call = None
        if self._next is not None and not self._in_flight:
            self._start()

    def _start(self) -> _Write:
        """Hand the batch to the database (its waiters, ``_next``, are released when it is
        on disk; at once when there is nothing to write)."""
        for call in (self._timer, self._start_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._start_call = None
        write = self._next or _Write()
        self._next = None
        batch, self._batch = self._batch, []
        write.accounts, self._touched = self._touched, set()
        write.size = len(batch)
        if not batch:
            if self._in_flight:  # nothing new: done when what is under way is
                self._in_flight[-1].wait().addCallback(lambda _: write.finish())
            else:
                write.finish()
            return write
        for account in write.accounts:
            self._writing[account] = write
        self._in_flight.append(write)
        self.writes += 1
        self.written += len(batch)
        d = self._append(batch)
        d.addErrback(self._failed, write)
        d.addBoth(self._written, write)
        return write

    def _on_timer(self) -> None:
        self._timer = None
        self._request()

    def _failed(self, failure, write: _Write) -> None:
        log.failure("archive write failed: {count} entries lost", failure, count=write.size)

    def _written(self, _result, write: _Write) -> None:
        self._in_flight.remove(write)
        for account in write.accounts:
            if self._writing.get(account) is write:
                del self._writing[account]
        if self._next is not None and not self._in_flight:
            self._start()  # what came while this one was on its way
        # The waiters are streams that stopped for the disk (backlog, settled): they resume
        # here, outside any read, where each stanza they send would be its own TLS record
        # and send(); in one write batch they go out as after a read (xmppd.stream.output).
        output.batch.begin()
        try:
            write.finish()
        finally:
            output.batch.end()
