# -*- test-case-name: tests.unit.test_storage_generic -*-
"""Archive stores: per owner, entries in the order appended (MAM archives of accounts and
rooms, pubsub nodes' items), queried by time, 'with' and id, with paging both ways."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IArchiveStore
from xmppd.storage.records import ArchiveEntry, ArchiveQuery, new_entry_id
from xmppd.storage.stores.archive_query import COLUMNS, row_entry, run_query
from xmppd.storage.stores.base import fails_deferred, is_number, marks
from xmppd.storage.stores.generic import GenericStore, check_owner

INSERT = (
    "INSERT INTO store_archive (scope_id, entry_id, stamp, with_jid, payload)"
    " VALUES (?, ?, ?, ?, ?)"
)
REPLACED = "DELETE FROM store_archive WHERE scope_id = ? AND entry_id = ?"
SAVEPOINT = "SAVEPOINT archive_append"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT archive_append"
RELEASE_SAVEPOINT = "RELEASE SAVEPOINT archive_append"
EVERYTHING = ArchiveQuery()


class ArchiveStoreBase(GenericStore):
    """IArchiveStore's methods as both archive tables take them: arguments checked here, on
    the reactor, the work done by the subclass's methods on the database thread (``_append``,
    ``_get``, ``_query``, ``_count``, ``_remove``, ``_update_payload``, ``_trim``,
    ``_delete_where``); ``_checked_entry`` says which entries the table takes."""

    kind = "archive"

    @staticmethod
    def _checked_entry(entry) -> ArchiveEntry:
        raise NotImplementedError

    @fails_deferred
    def append(self, owner: str, entry: ArchiveEntry) -> defer.Deferred:
        return self.append_many([(owner, entry)]).addCallback(lambda ids: ids[0])

    @fails_deferred
    def append_many(self, entries: Iterable[tuple[str, ArchiveEntry]]) -> defer.Deferred:
        # Entries are checked (and ids made) here, not on the database thread, so the ids are
        # known before the write.
        batch = [(check_owner(owner), self._checked_entry(entry)) for owner, entry in entries]
        if not batch:
            return defer.succeed([])
        return self._db.write(self._append, batch)

    @fails_deferred
    def get(self, owner: str, id: str) -> defer.Deferred:
        return self._db.read(self._get, check_owner(owner), check_id(id))

    @fails_deferred
    def query(self, owner: str, query: ArchiveQuery | None = None) -> defer.Deferred:
        if query is None:
            query = EVERYTHING
        if not isinstance(query, ArchiveQuery):
            raise TypeError(f"query takes an ArchiveQuery, not {query!r}")
        return self._db.read(self._query, check_owner(owner), query)

    @fails_deferred
    def update_payload(self, owner: str, id: str, payload: str) -> defer.Deferred:
        """Replace one entry's payload where it is (a XEP-0425 tombstone keeps the place and
        stamp of the message it replaces, which ``append`` of the same id would not);
        Deferred firing whether the entry was there."""
        if not isinstance(payload, str):
            raise TypeError(f"a payload is a str, not {payload!r}")
        return self._db.write(self._update_payload, check_owner(owner), check_id(id), payload)

    @fails_deferred
    def count(self, owner: str) -> defer.Deferred:
        return self._db.read(self._count, check_owner(owner))

    @fails_deferred
    def remove(self, owner: str, ids: Iterable[str]) -> defer.Deferred:
        ids = tuple(check_id(id) for id in _not_a_str(ids))
        if not ids:
            return defer.succeed(0)
        return self._db.write(self._remove, check_owner(owner), ids)

    @fails_deferred
    def trim(self, owner: str, keep: int) -> defer.Deferred:
        if not is_number(keep, int) or keep < 0:
            raise ValueError(f"keep must be a count of entries, not {keep!r}")
        return self._db.write(self._trim, check_owner(owner), keep)

    @fails_deferred
    def clear(self, owner: str) -> defer.Deferred:
        return self._db.write(self._delete_where, check_owner(owner), "", ())


@implementer(IArchiveStore)
class SQLArchiveStore(ArchiveStoreBase):
    """IArchiveStore in portable SQL."""

    @staticmethod
    def _checked_entry(entry) -> ArchiveEntry:
        return _with_id(entry)

    @fails_deferred
    def delete_before(self, stamp: float, owner: str | None = None) -> defer.Deferred:
        if not is_number(stamp):
            raise TypeError(f"stamp must be POSIX seconds, not {stamp!r}")
        if owner is None:
            return self._db.write(self._retire, float(stamp))
        return self._db.write(self._delete_where, check_owner(owner), " AND stamp < ?",
                              (float(stamp),))

    # ------------------------------------------------------------------ on the database thread

    def _append(self, cursor, batch) -> list[str]:
        scopes = self._write_scopes(cursor, {owner for owner, _ in batch})
        rows = [(scopes[owner], entry.id, entry.stamp, entry.with_jid, entry.payload)
                for owner, entry in batch]
        # Ids are nearly always new (MAM's and ours are 96 random bits), so the whole batch
        # goes in as one executemany of plain inserts. An id already there (a pubsub item
        # published again, or twice in one batch) fails that with the unique constraint; the
        # savepoint takes back what it wrote and the batch goes in again row by row, each id
        # there replaced: its entry becomes the newest, as the contract says.
        cursor.execute(SAVEPOINT)
        try:
            cursor.executemany(self._sql(INSERT), rows)
        except self._db.dbapi.IntegrityError:
            cursor.execute(ROLLBACK_TO_SAVEPOINT)
            self._replace(cursor, rows)
        cursor.execute(RELEASE_SAVEPOINT)
        return [entry.id for _, entry in batch]

    def _replace(self, cursor, rows) -> None:
        """Insert ``rows`` one by one, each replacing the entry of its id if there is one."""
        replaced, insert = self._sql(REPLACED), self._sql(INSERT)
        for row in rows:
            cursor.execute(replaced, row[:2])
            cursor.execute(insert, row)

    def _remove(self, cursor, owner, ids) -> int:
        return self._delete_where(cursor, owner, f" AND entry_id IN ({marks(ids)})", ids)

    def _get(self, cursor, owner, id) -> ArchiveEntry | None:
        scope = self._scope(cursor, owner)
        if scope is None:
            return None
        cursor.execute(
            self._sql(f"SELECT {COLUMNS} FROM store_archive WHERE scope_id = ? AND entry_id = ?"),
            (scope, id),
        )
        row = cursor.fetchone()
        return None if row is None else row_entry(row)

    def _query(self, cursor, owner, query):
        return run_query(cursor, self._sql, owner, self._scope(cursor, owner), query)

    def _update_payload(self, cursor, owner, id, payload) -> bool:
        scope = self._scope(cursor, owner)
        if scope is None:
            return False
        cursor.execute(
            self._sql("UPDATE store_archive SET payload = ? WHERE scope_id = ? AND entry_id = ?"),
            (payload, scope, id),
        )
        return cursor.rowcount > 0

    def _count(self, cursor, owner) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        cursor.execute(self._sql("SELECT COUNT(*) FROM store_archive WHERE scope_id = ?"), (scope,))
        return cursor.fetchone()[0]

    def _trim(self, cursor, owner, keep) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        # The newest entry to go is the (keep + 1)th newest; with fewer entries, none goes.
        cursor.execute(
            self._sql(
                "SELECT seq FROM store_archive WHERE scope_id = ?"
                " ORDER BY seq DESC LIMIT 1 OFFSET ?"
            ),
            (scope, keep),
        )
        row = cursor.fetchone()
        return 0 if row is None else self._delete_in(cursor, scope, " AND seq <= ?", (row[0],))

    def _delete_where(self, cursor, owner, condition, params) -> int:
        """Delete the owner's entries that match ``condition``; how many went."""
        scope = self._scope(cursor, owner)
        return 0 if scope is None else self._delete_in(cursor, scope, condition, params)

    def _delete_in(self, cursor, scope, condition, params) -> int:
        cursor.execute(
            self._sql("DELETE FROM store_archive WHERE scope_id = ?" + condition), (scope, *params)
        )
        return cursor.rowcount

    def _retire(self, cursor, stamp) -> int:
        cursor.execute(
            self._sql(
                "DELETE FROM store_archive WHERE stamp < ?"
                " AND scope_id IN (SELECT id FROM store_scopes WHERE store = ?)"
            ),
            (stamp, self.name),
        )
        return cursor.rowcount


def _with_id(entry) -> ArchiveEntry:
    if not isinstance(entry, ArchiveEntry):
        raise TypeError(f"an archive takes ArchiveEntry values, not {entry!r}")
    return entry if entry.id is not None else dataclasses.replace(entry, id=new_entry_id())


def check_id(id) -> str:
    """``id`` if it can name an archive entry (a non-empty str); TypeError if not."""
    if not isinstance(id, str) or not id:
        raise TypeError(f"an archive entry id is a non-empty str, not {id!r}")
    return id


def _not_a_str(ids):
    # A str is iterable too: "abc" must not remove entries a, b and c.
    if isinstance(ids, str):
        raise TypeError(f"remove takes a collection of ids, not the str {ids!r}")
    return ids
