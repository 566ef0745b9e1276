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
accounts it concerns (its owner and its local sender), and ``settled(account)`` commits at
once what concerns that account and waits for it. The plugin calls it before answering any
IQ from the account and before a MAM query, and stream management's ``<a/>`` waits for it
(``IArchiveWrites``), so a ping reply or an ack also proves the archive copies of every
earlier message are on disk (tests/integration/test_mam_durability.py kills the server
right after either), and a client never reads an archive that lacks a message it already
sent or received. What a crash (SIGKILL, power loss) can lose is the archive copies of the
last ``delay`` seconds of messages whose senders asked nothing since:
the messages were delivered, but a client that was offline then will not find them in the
archive. ``[plugins.mam] batch_ms = 0`` commits each message's entries before it is
delivered, for whom that matters more than throughput.

Writes are not allowed to pile up unbounded: with ``MAX_IN_FLIGHT`` batches waiting for the
database, ``add`` answers a Deferred that the message path waits for, so a slow disk slows
the senders instead of filling memory.
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

MAX_IN_FLIGHT = 4  # batches written or waiting for the database thread before senders wait


class _Write:
    """One batch on its way to disk, and who waits for it."""

    __slots__ = ("accounts", "size", "_waiters", "done")

    def __init__(self, accounts: set[str], size: int) -> None:
        self.accounts = accounts
        self.size = size
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
    commit per ``add``.
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
        self._timer = None
        self._writing: dict[str, _Write] = {}  # account -> the newest write that concerns it
        self._in_flight: list[_Write] = []

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
        if self._delay <= 0 or len(batch) >= self._max_entries:
            d = self.flush()
            return d if self._delay <= 0 else self._backlog()
        if self._timer is None:
            self._timer = self._call_later(self._delay, self._on_timer)
        if len(self._in_flight) < MAX_IN_FLIGHT:
            return None
        return self._backlog()

    def settled(self, account: str) -> defer.Deferred | None:
        """None when nothing concerning ``account`` waits to be written; otherwise commit it
        now and return a Deferred that fires (with None) once it is on disk."""
        if account in self._touched:
            self.flush()
        write = self._writing.get(account)
        return None if write is None else write.wait()

    def flush(self) -> defer.Deferred:
        """Commit everything collected; a Deferred firing (None) once it is on disk, or after
        the failure was logged."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        accounts, self._touched = self._touched, set()
        if not batch:
            return self._in_flight[-1].wait() if self._in_flight else defer.succeed(None)
        write = _Write(accounts, len(batch))
        for account in accounts:
            self._writing[account] = write
        self._in_flight.append(write)
        d = self._append(batch)
        d.addErrback(self._failed, write)
        d.addBoth(self._written, write)
        return write.wait()

    def forget(self, owner: str) -> None:
        """Drop what waits for ``owner``'s archive (the account is being deleted)."""
        self._batch = [row for row in self._batch if row[0] != owner]

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _backlog(self) -> defer.Deferred | None:
        if len(self._in_flight) < MAX_IN_FLIGHT:
            return None
        return self._in_flight[0].wait()

    def _failed(self, failure, write: _Write) -> None:
        log.failure("archive write failed: {count} entries lost", failure, count=write.size)

    def _written(self, _result, write: _Write) -> None:
        self._in_flight.remove(write)
        for account in write.accounts:
            if self._writing.get(account) is write:
                del self._writing[account]
        # The waiters are streams that stopped for the disk (backlog, settled): they resume
        # here, outside any read, where each stanza they send would be its own TLS record
        # and send(); in one write batch they go out as after a read (xmppd.stream.output).
        output.batch.begin()
        try:
            write.finish()
        finally:
            output.batch.end()
