# -*- test-case-name: tests.unit.test_archive_log -*-
"""Message archives (MAM) in ``store_archive_log`` (migration 0005): the archive store made
cheap to append to, for entries whose ids sort in the order they are made (xmppd.mam.ids).

The generic archive (``store_archive``, still pubsub's) takes any id, so it keeps a serial
for the order, the id, the time and 'with' in five b-trees, and random ids put every entry on
a random page of the id index. At ``make bench``'s message rate that was nearly all of the
server's time. Here the id is the position: ``(scope_id, position)`` is the key, each batch
lands at the end of each owner's range, and only 'with' has an index of its own. Time
filters need none: an id starts with the microsecond it was made (``ids.stamp``), so a
start or end is also a range of positions (``_time_hints``), the stamp column being the
exact test.

The contract, beside IArchiveStore's: every appended entry carries an id from
``xmppd.mam.ids.EntryIds`` and the stamp it gave that id (``EntryIds.stamp``), and ids are
never given twice. Entries of the generic store under the same name (an archive from before
0005) are moved here by ``adopt`` with their ids, which stay valid: they go into
``entry_id`` (NULL for an id that is its position), their positions made from their stamps
in the same form.
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IArchiveStore
from xmppd.mam.ids import ID_LENGTH, position_bound, stamp_position
from xmppd.storage.records import ArchiveEntry
from xmppd.storage.stores.archive import ArchiveStoreBase
from xmppd.storage.stores.archive_query import Layout, row_entry, run_query
from xmppd.storage.stores.base import fails_deferred, is_number, marks
from xmppd.storage.stores.generic import check_owner

TABLE = "store_archive_log"
INSERT = (f"INSERT INTO {TABLE} (scope_id, position, stamp, with_jid, payload)"
          " VALUES (?, ?, ?, ?, ?)")
# An id is a position (NULL entry_id) or an adopted id: one probe of the key or of the
# partial index on entry_id.
WHERE_ID = "scope_id = ? AND ((position = ? AND entry_id IS NULL) OR entry_id = ?)"
COLUMNS = "COALESCE(entry_id, position), stamp, with_jid, payload"


def _time_hints(start: float | None, end: float | None) -> list[tuple[str, str]]:
    hints = []
    if start is not None:
        hints.append(("position >= ?", position_bound(start, -1)))
    if end is not None:
        hints.append(("position < ?", position_bound(end, 2)))
    return hints


LAYOUT = Layout(
    table=TABLE,
    position="position",
    columns=COLUMNS,
    locate=f"SELECT position FROM {TABLE} WHERE {WHERE_ID}",
    locate_params=lambda scope, id: (scope, id, id),
    time_hints=_time_hints,
)


@implementer(IArchiveStore)
class SQLArchiveLog(ArchiveStoreBase):
    """IArchiveStore over ``store_archive_log`` for ids from xmppd.mam.ids (see above)."""

    @staticmethod
    def _checked_entry(entry) -> ArchiveEntry:
        return _checked(entry)

    @fails_deferred
    def delete_before(self, stamp: float, owner: str | None = None) -> defer.Deferred:
        if not is_number(stamp):
            raise TypeError(f"stamp must be POSIX seconds, not {stamp!r}")
        stamp = float(stamp)
        # The position bound lets the delete walk each owner's oldest range only.
        condition = " AND position < ? AND stamp < ?"
        params = (position_bound(stamp, 2), stamp)
        if owner is None:
            return self._db.write(self._retire, condition, params)
        return self._db.write(self._delete_where, check_owner(owner), condition, params)

    def append_rows(self, rows: list[tuple]) -> defer.Deferred:
        """The message path's appends, unchecked: ``(owner, id, stamp, with_jid, payload)``
        tuples as xmppd.mam.archiver makes them (an id from its EntryIds, the stamp it gave,
        a bare JID, the serialized message), no ArchiveEntry made or checked per message.
        Fires with None once committed."""
        if not rows:
            return defer.succeed(None)
        return self._db.write(self._append_rows, rows)

    def newest_position(self) -> defer.Deferred:
        """The greatest position of any owner, or None: ids made after a restart must sort
        after it even if the clock went back (EntryIds.not_before)."""
        return self._db.read(self._newest)

    def adopt(self) -> defer.Deferred:
        """Move this store's entries from the generic archive (written before migration
        0005) here, ids and order kept; fires with how many moved (0, but for the first
        start after the upgrade)."""
        return self._db.write(self._adopt)

    # ------------------------------------------------------------------ on the database thread

    def _append(self, cursor, batch) -> list[str]:
        scopes = self._write_scopes(cursor, {owner for owner, _ in batch})
        cursor.executemany(self._sql(INSERT), [
            (scopes[owner], entry.id, entry.stamp, entry.with_jid, entry.payload)
            for owner, entry in batch])
        return [entry.id for _, entry in batch]

    def _append_rows(self, cursor, rows) -> None:
        scopes = self._write_scopes(cursor, {row[0] for row in rows})
        cursor.executemany(self._sql(INSERT), [
            (scopes[owner], id, stamp, with_jid, payload)
            for owner, id, stamp, with_jid, payload in rows])

    def _get(self, cursor, owner, id) -> ArchiveEntry | None:
        scope = self._scope(cursor, owner)
        if scope is None:
            return None
        cursor.execute(self._sql(f"SELECT {COLUMNS} FROM {TABLE} WHERE {WHERE_ID}"),
                       (scope, id, id))
        row = cursor.fetchone()
        return None if row is None else row_entry(row)

    def _query(self, cursor, owner, query):
        return run_query(cursor, self._sql, owner, self._scope(cursor, owner), query, LAYOUT)

    def _count(self, cursor, owner) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        cursor.execute(self._sql(f"SELECT COUNT(*) FROM {TABLE} WHERE scope_id = ?"), (scope,))
        return cursor.fetchone()[0]

    def _remove(self, cursor, owner, ids) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        removed = 0
        for id in set(ids):
            cursor.execute(self._sql(f"DELETE FROM {TABLE} WHERE {WHERE_ID}"), (scope, id, id))
            removed += cursor.rowcount
        return removed

    def _update_payload(self, cursor, owner, id, payload) -> bool:
        scope = self._scope(cursor, owner)
        if scope is None:
            return False
        cursor.execute(self._sql(f"UPDATE {TABLE} SET payload = ? WHERE {WHERE_ID}"),
                       (payload, scope, id, id))
        return cursor.rowcount > 0

    def _trim(self, cursor, owner, keep) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        cursor.execute(
            self._sql(f"SELECT position FROM {TABLE} WHERE scope_id = ?"
                      " ORDER BY position DESC LIMIT 1 OFFSET ?"), (scope, keep))
        row = cursor.fetchone()
        return 0 if row is None else self._delete_in(cursor, scope, " AND position <= ?",
                                                     (row[0],))

    def _delete_where(self, cursor, owner, condition, params) -> int:
        scope = self._scope(cursor, owner)
        return 0 if scope is None else self._delete_in(cursor, scope, condition, params)

    def _delete_in(self, cursor, scope, condition, params) -> int:
        cursor.execute(self._sql(f"DELETE FROM {TABLE} WHERE scope_id = ?" + condition),
                       (scope, *params))
        return cursor.rowcount

    def _retire(self, cursor, condition, params) -> int:
        cursor.execute(self._sql("SELECT id FROM store_scopes WHERE store = ?"), (self.name,))
        return sum(self._delete_in(cursor, scope, condition, params)
                   for (scope,) in cursor.fetchall())

    def _newest(self, cursor) -> str | None:
        # One probe of the key per owner (portable SQL; no scan of the entries).
        cursor.execute(self._sql(
            f"SELECT MAX((SELECT MAX(position) FROM {TABLE} WHERE scope_id = s.id))"
            " FROM store_scopes s WHERE s.store = ?"), (self.name,))
        row = cursor.fetchone()
        return None if row is None else row[0]

    def _adopt(self, cursor) -> int:
        scopes = "SELECT id FROM store_scopes WHERE store = ?"
        cursor.execute(self._sql(
            f"SELECT scope_id, seq, entry_id, stamp, with_jid, payload FROM store_archive"
            f" WHERE scope_id IN ({scopes})"), (self.name,))
        rows = [(scope, stamp_position(stamp, seq), entry_id, stamp, with_jid, payload)
                for scope, seq, entry_id, stamp, with_jid, payload in cursor.fetchall()]
        if not rows:
            return 0
        rows.sort(key=lambda row: row[:2])  # (scope, position): each owner's range in order
        cursor.executemany(self._sql(
            f"INSERT INTO {TABLE} (scope_id, position, entry_id, stamp, with_jid, payload)"
            f" VALUES ({marks(range(6))})"), rows)
        cursor.execute(self._sql(f"DELETE FROM store_archive WHERE scope_id IN ({scopes})"),
                       (self.name,))
        return len(rows)


def _checked(entry) -> ArchiveEntry:
    if not isinstance(entry, ArchiveEntry):
        raise TypeError(f"an archive takes ArchiveEntry values, not {entry!r}")
    if entry.id is None or len(entry.id) != ID_LENGTH:
        raise ValueError(f"a message archive takes ids from xmppd.mam.ids, not {entry.id!r}")
    return entry
