# -*- test-case-name: tests.unit.test_archive_log -*-
"""Message archives (MAM), packed (migration 0006): the archive store made cheap to append
to, for entries whose ids sort in the order they are made (xmppd.mam.ids).

A batch of the message path writes one row per account, ``store_archive_pack``: that
account's entries of the batch in one text (xmppd.storage.stores.archive_packs), with the
first and last position and the count, plus one small row per contact in it,
``store_archive_pack_with`` (for 'with' queries and counts). At ``make bench``'s rate
that is about ten entries a row, so a tenth of the rows, b-tree insertions and pages a
row per entry (0005's ``store_archive_log``) cost. The id is the position; time filters
need no index: an id starts with the microsecond it was made, so a start or end is also a
range of positions, the stamp the exact test.

Packs of one owner never overlap (a write that would overlap merges with the packs it
meets: rare, as ids only grow), so packs in the order of ``first_position`` hold the
entries in archive order, a query reads a range of packs, and counts are sums of the
packs' counts but for the packs at the edges of a range, which are decoded.

The contract, beside IArchiveStore's: every appended entry carries an id from
``xmppd.mam.ids.EntryIds`` and the stamp it gave that id (``EntryIds.stamp``), and ids are
never given twice. Entries of the generic store under the same name (an archive from before
0005) and of 0005's table are moved here by ``adopt``, their ids kept: an id that is not
its position (from before 0005, or imported) is in ``store_archive_pack_alias``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IArchiveStore
from xmppd.mam.ids import ID_LENGTH, position_bound, stamp_position
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchivePage, ArchiveQuery
from xmppd.storage.stores.archive import ArchiveStoreBase
from xmppd.storage.stores.archive_packs import MAX_PACK, Packed, decode, encode, encode_plain
from xmppd.storage.stores.base import fails_deferred, is_number, marks
from xmppd.storage.stores.generic import NEW_SCOPE, SCOPES_PER_QUERY, check_owner

PACKS = "store_archive_pack"
WITHS = "store_archive_pack_with"
ALIASES = "store_archive_pack_alias"
INSERT_PACK = (f"INSERT INTO {PACKS} (scope_id, first_position, last_position, entries, body)"
               " VALUES (?, ?, ?, ?, ?)")
INSERT_WITH = (f"INSERT INTO {WITHS} (scope_id, with_jid, first_position, last_position,"
               " entries) VALUES (?, ?, ?, ?, ?)")
INSERT_ALIAS = f"INSERT INTO {ALIASES} (scope_id, entry_id, position) VALUES (?, ?, ?)"
READ_CHUNK = 8  # packs read at a time while a page fills


@implementer(IArchiveStore)
class SQLArchiveLog(ArchiveStoreBase):
    """IArchiveStore over packs of entries whose ids come from xmppd.mam.ids (see above)."""

    @staticmethod
    def _checked_entry(entry) -> ArchiveEntry:
        return _checked(entry)

    def append_rows(self, rows: list[tuple]) -> defer.Deferred:
        """The message path's appends, unchecked: ``(owner, id, stamp, with_jid, payload)``
        tuples as xmppd.mam.archiver makes them (an id from its EntryIds and the stamp it
        gave, so the stamp is not stored; a bare JID; the serialized message), in the order
        their ids were made. Fires with None once committed."""
        if not rows:
            return defer.succeed(None)
        return self._db.write(self._append_rows, rows)

    @fails_deferred
    def clear(self, owner: str) -> defer.Deferred:
        return self._db.write(self._clear, check_owner(owner))

    @fails_deferred
    def delete_before(self, stamp: float, owner: str | None = None) -> defer.Deferred:
        if not is_number(stamp):
            raise TypeError(f"stamp must be POSIX seconds, not {stamp!r}")
        stamp = float(stamp)
        if owner is None:
            return self._db.write(self._retire, stamp)
        return self._db.write(self._delete_older, check_owner(owner), stamp)

    def newest_position(self) -> defer.Deferred:
        """The greatest position of any owner, or None: ids made after a restart must sort
        after it even if the clock went back (EntryIds.not_before)."""
        return self._db.read(self._newest)

    def adopt(self) -> defer.Deferred:
        """Move this store's entries from the generic archive (written before migration
        0005) and from 0005's table here, ids and order kept; fires with how many moved
        (0, but for the first start after an upgrade or an import)."""
        return self._db.write(self._adopt)

    # ------------------------------------------------------------------ writing

    def _append(self, cursor, batch) -> list[str]:
        by_owner: dict[str, list[Packed]] = {}
        for owner, entry in batch:
            by_owner.setdefault(owner, []).append(
                Packed(entry.id, entry.id, entry.stamp, entry.with_jid, entry.payload))
        tails = self._tails(cursor, by_owner)
        for owner, entries in by_owner.items():
            scope, tail = tails[owner]
            entries.sort()
            if tail is not None and entries[0].position <= tail:
                self._merge(cursor, scope, entries)
            else:
                self._write_packs(cursor, scope, [(e.position, e.with_jid, encode(e))
                                                  for e in entries])
        return [entry.id for _, entry in batch]

    def _append_rows(self, cursor, rows) -> None:
        by_owner: dict[str, list[tuple]] = {}
        for row in rows:
            entries = by_owner.get(row[0])
            if entries is None:
                by_owner[row[0]] = entries = []
            entries.append(row)
        tails = self._tails(cursor, by_owner)
        for owner, entries in by_owner.items():
            scope, tail = tails[owner]
            if tail is not None and entries[0][1] <= tail or not _ascending(entries):
                self._merge(cursor, scope, sorted(Packed(*row[1:]) for row in entries))
                continue
            self._write_packs(cursor, scope, [(id, with_jid, encode_plain(id, with_jid, payload))
                                              for _, id, _, with_jid, payload in entries])

    def _tails(self, cursor, owners: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """Each owner's scope id (made where missing) and the last position of its newest
        pack (None without packs): one query per SCOPES_PER_QUERY owners."""
        owners = list(owners)
        found = self._scopes_and_tails(cursor, owners)
        missing = [owner for owner in owners if owner not in found]
        if missing:
            cursor.executemany(self._sql(NEW_SCOPE), [(owner, self.name) for owner in missing])
            found.update(self._scopes_and_tails(cursor, missing))
        return found

    def _scopes_and_tails(self, cursor, owners: list[str]) -> dict:
        found = {}
        for at in range(0, len(owners), SCOPES_PER_QUERY):
            chunk = owners[at:at + SCOPES_PER_QUERY]
            cursor.execute(self._sql(
                f"SELECT s.owner, s.id, (SELECT p.last_position FROM {PACKS} p"
                " WHERE p.scope_id = s.id ORDER BY p.first_position DESC LIMIT 1)"
                f" FROM store_scopes s WHERE s.store = ? AND s.owner IN ({marks(chunk)})"),
                (self.name, *chunk))
            found.update((owner, (scope, tail)) for owner, scope, tail in cursor.fetchall())
        return found

    def _write_packs(self, cursor, scope: int, entries: list[tuple[str, str, str]]) -> None:
        """New packs of ``entries``, (position, with, encoded) in position order, after every
        pack of the scope or in a gap between its packs."""
        packs, withs = [], []
        for at in range(0, len(entries), MAX_PACK):
            chunk = entries[at:at + MAX_PACK]
            first, last = chunk[0][0], chunk[-1][0]
            counts: dict[str, int] = {}
            for _, with_jid, _ in chunk:
                counts[with_jid] = counts.get(with_jid, 0) + 1
            packs.append((scope, first, last, len(chunk), "".join([e[2] for e in chunk])))
            withs.extend((scope, with_jid, first, last, n) for with_jid, n in counts.items())
        cursor.executemany(self._sql(INSERT_PACK), packs)
        cursor.executemany(self._sql(INSERT_WITH), withs)

    def _merge(self, cursor, scope: int, entries: list[Packed]) -> None:
        """Write ``entries`` (sorted) where packs exist at or after their first position:
        those packs are read, merged with them (an entry at a position there replaces it)
        and written again."""
        start = self._pack_start(cursor, scope, entries[0].position)
        cursor.execute(self._sql(f"SELECT body FROM {PACKS} WHERE scope_id = ?"
                                 " AND first_position >= ?"), (scope, start))
        merged = {e.position: e for (body,) in cursor.fetchall() for e in decode(body)}
        merged.update((e.position, e) for e in entries)
        self._drop_packs(cursor, scope, " AND first_position >= ?", (start,))
        self._write_packs(cursor, scope, [(e.position, e.with_jid, encode(e))
                                          for _, e in sorted(merged.items())])

    def _rewrite(self, cursor, scope: int, first: str, entries: list[Packed]) -> None:
        """Pack ``first`` again with only ``entries`` (none: it goes)."""
        self._drop_packs(cursor, scope, " AND first_position = ?", (first,))
        if entries:
            self._write_packs(cursor, scope, [(e.position, e.with_jid, encode(e))
                                              for e in entries])

    def _drop_packs(self, cursor, scope: int, condition: str, params: tuple) -> None:
        for table in (PACKS, WITHS):
            cursor.execute(self._sql(f"DELETE FROM {table} WHERE scope_id = ?{condition}"),
                           (scope, *params))

    def _forget_aliases(self, cursor, scope: int, positions: Iterable[str]) -> None:
        cursor.executemany(
            self._sql(f"DELETE FROM {ALIASES} WHERE scope_id = ? AND position = ?"),
            [(scope, position) for position in positions])

    # ------------------------------------------------------------------ finding

    def _pack_start(self, cursor, scope: int, position: str, with_jid: str | None = None
                    ) -> str:
        """The first position of the pack that may hold ``position`` (the newest that
        starts at or before it), or ``position`` itself when none does."""
        table, where, params = _table(scope, with_jid)
        cursor.execute(self._sql(f"SELECT MAX(first_position) FROM {table} WHERE {where}"
                                 " AND first_position <= ?"), (*params, position))
        row = cursor.fetchone()
        return position if row is None or row[0] is None else row[0]

    def _pack_at(self, cursor, scope: int, position: str) -> tuple[str, list[Packed]] | None:
        """(first position, entries) of the pack holding ``position``, or None."""
        cursor.execute(self._sql(
            f"SELECT first_position, last_position, body FROM {PACKS} WHERE scope_id = ?"
            " AND first_position <= ? ORDER BY first_position DESC LIMIT 1"), (scope, position))
        row = cursor.fetchone()
        if row is None or row[1] < position:
            return None
        return row[0], decode(row[2])

    def _entry_at(self, cursor, scope: int, position: str) -> Packed | None:
        found = self._pack_at(cursor, scope, position)
        if found is None:
            return None
        return next((e for e in found[1] if e.position == position), None)

    def _position(self, cursor, scope: int, id: str) -> str | None:
        """Where the entry ``id`` is, or None when the archive has none of that id."""
        cursor.execute(self._sql(f"SELECT position FROM {ALIASES} WHERE scope_id = ?"
                                 " AND entry_id = ?"), (scope, id))
        row = cursor.fetchone()
        if row is not None:
            return row[0]
        if len(id) != ID_LENGTH:
            return None
        entry = self._entry_at(cursor, scope, id)
        return id if entry is not None and entry.id == id else None

    def _locate(self, cursor, owner: str, scope: int, id: str) -> str:
        position = self._position(cursor, scope, id)
        if position is None:
            raise ArchiveEntryNotFound(owner, id)
        return position

    # ------------------------------------------------------------------ reading

    def _get(self, cursor, owner, id) -> ArchiveEntry | None:
        scope = self._scope(cursor, owner)
        position = None if scope is None else self._position(cursor, scope, id)
        if position is None:
            return None
        entry = self._entry_at(cursor, scope, position)
        return None if entry is None else _archive_entry(entry)

    def _count(self, cursor, owner) -> int:
        scope = self._scope(cursor, owner)
        return 0 if scope is None else self._sum(cursor, PACKS, "scope_id = ?", [scope])

    def _sum(self, cursor, table: str, where: str, params: list) -> int:
        cursor.execute(self._sql(f"SELECT COALESCE(SUM(entries), 0) FROM {table} WHERE {where}"),
                       params)
        return int(cursor.fetchone()[0])

    def _query(self, cursor, owner, query: ArchiveQuery) -> ArchivePage:
        scope = self._scope(cursor, owner)
        if scope is None:
            named = [each for each in (query.after_id, query.before_id, query.after,
                                       query.before, *(query.ids or ())) if each is not None]
            if named:
                raise ArchiveEntryNotFound(owner, named[0])
            return ArchivePage((), True, 0)
        filters = _Filters(query, lambda id: self._locate(cursor, owner, scope, id))
        after = None if query.after is None else self._locate(cursor, owner, scope, query.after)
        before = (None if query.before is None
                  else self._locate(cursor, owner, scope, query.before))
        if filters.ids is not None:
            matching = [e for e in (self._entry_at(cursor, scope, p) for p in sorted(filters.ids))
                        if e is not None and filters.matches(e)]
            total = len(matching)
            pages = iter(matching if not query.backwards else reversed(matching))
        else:
            total = self._total(cursor, scope, filters)
            pages = self._walk(cursor, scope, filters, query.backwards,
                               before if query.backwards else after)
        wanted = None if query.limit is None else query.limit + 1
        found = []
        for entry in pages:
            position = entry.position
            if query.backwards:
                if before is not None and position >= before:
                    continue  # the walk starts in the cursor's pack
                if after is not None and position <= after:
                    break
            elif after is not None and position <= after:
                continue
            found.append(entry)
            if wanted is not None and len(found) >= wanted:
                break
        complete = query.limit is None or len(found) <= query.limit
        found = found[:query.limit]
        if query.backwards:
            found.reverse()
        return ArchivePage(tuple(_archive_entry(e) for e in found), complete, total)

    def _total(self, cursor, scope: int, filters: _Filters) -> int:
        """The size of the result set: the sum of the counts of the packs wholly inside it,
        and the matching entries of those at its edges, decoded."""
        table, where, params = _table(scope, filters.with_jid)
        inside, inside_params = filters.inside()
        total = self._sum(cursor, table, f"{where}{inside}", [*params, *inside_params])
        if not inside:
            return total
        low, high = filters.loose()
        range_sql, range_params = "", []
        if low is not None:
            range_sql += " AND w.first_position >= ?"
            range_params.append(self._pack_start(cursor, scope, low, filters.with_jid))
        if high is not None:
            range_sql += " AND w.first_position <= ?"
            range_params.append(high)
        edges = inside.replace("first_position", "w.first_position").replace(
            "last_position", "w.last_position")
        cursor.execute(self._sql(
            f"SELECT {_packs_of(table)} WHERE {_prefixed(where)}{range_sql}"
            f" AND NOT (1 = 1{edges})"), [*params, *range_params, *inside_params])
        return total + sum(1 for (_, _, body) in cursor.fetchall() for e in decode(body)
                           if filters.matches(e))

    def _walk(self, cursor, scope: int, filters: _Filters, backwards: bool,
              cursor_position: str | None):
        """The result set's entries in archive order (or backwards), from the paging cursor
        on, reading READ_CHUNK packs at a time."""
        table, where, params = _table(scope, filters.with_jid)
        low, high = filters.loose()
        if backwards:
            if cursor_position is not None and (high is None or cursor_position < high):
                high = cursor_position
            bound, order, step = high, "DESC", "<"
        else:
            if cursor_position is not None and (low is None or cursor_position > low):
                low = cursor_position
            bound = None if low is None else self._pack_start(cursor, scope, low,
                                                              filters.with_jid)
            order, step = "ASC", ">"
        inclusive = ">=" if not backwards else "<="
        while True:
            condition = "" if bound is None else f" AND w.first_position {inclusive} ?"
            cursor.execute(self._sql(
                f"SELECT {_packs_of(table)} WHERE {_prefixed(where)}{condition}"
                f" ORDER BY w.first_position {order} LIMIT {READ_CHUNK}"),
                [*params, *([] if bound is None else [bound])])
            rows = cursor.fetchall()
            for first, last, body in rows:
                if not backwards and high is not None and first > high:
                    return
                if backwards and low is not None and last < low:
                    return
                entries = decode(body)
                for entry in (reversed(entries) if backwards else entries):
                    if filters.matches(entry):
                        yield entry
            if len(rows) < READ_CHUNK:
                return
            bound, inclusive = rows[-1][0], step

    # ------------------------------------------------------------------ removing

    def _remove(self, cursor, owner, ids) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        positions = {p for p in (self._position(cursor, scope, id) for id in set(ids))
                     if p is not None}
        removed = 0
        for position in sorted(positions):
            found = None if position not in positions else self._pack_at(cursor, scope, position)
            if found is None:
                continue
            first, entries = found
            gone = [e.position for e in entries if e.position in positions]
            self._rewrite(cursor, scope, first, [e for e in entries
                                                 if e.position not in positions])
            self._forget_aliases(cursor, scope, gone)
            positions.difference_update(gone)
            removed += len(gone)
        return removed

    def _update_payload(self, cursor, owner, id, payload) -> bool:
        scope = self._scope(cursor, owner)
        position = None if scope is None else self._position(cursor, scope, id)
        found = None if position is None else self._pack_at(cursor, scope, position)
        if found is None:
            return False
        first, entries = found
        self._rewrite(cursor, scope, first, [e._replace(payload=payload)
                                             if e.position == position else e
                                             for e in entries])
        return True

    def _trim(self, cursor, owner, keep) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        excess = self._sum(cursor, PACKS, "scope_id = ?", [scope]) - keep
        if excess <= 0:
            return 0
        return self._drop_oldest(cursor, scope, excess)

    def _delete_older(self, cursor, owner, stamp) -> int:
        scope = self._scope(cursor, owner)
        return 0 if scope is None else self._delete_before(cursor, scope, stamp)

    def _delete_before(self, cursor, scope: int, stamp: float) -> int:
        # Packs wholly older go at once; those that reach past the bound are decoded.
        certain = position_bound(stamp, -1)
        removed = self._sum(cursor, PACKS, "scope_id = ? AND last_position < ?",
                            [scope, certain])
        cursor.execute(self._sql(f"DELETE FROM {ALIASES} WHERE scope_id = ? AND position < ?"),
                       (scope, certain))
        self._drop_packs(cursor, scope, " AND last_position < ?", (certain,))
        cursor.execute(self._sql(f"SELECT first_position, body FROM {PACKS} WHERE scope_id = ?"
                                 " AND first_position < ?"), (scope, position_bound(stamp, 2)))
        for first, body in cursor.fetchall():
            entries = decode(body)
            kept = [e for e in entries if e.stamp >= stamp]
            if len(kept) < len(entries):
                self._rewrite(cursor, scope, first, kept)
                self._forget_aliases(cursor, scope, [e.position for e in entries
                                                     if e.stamp < stamp])
                removed += len(entries) - len(kept)
        return removed

    def _drop_oldest(self, cursor, scope: int, count: int) -> int:
        """Remove the scope's ``count`` oldest entries, pack by pack."""
        removed = 0
        while removed < count:
            cursor.execute(self._sql(f"SELECT first_position, body FROM {PACKS}"
                                     " WHERE scope_id = ? ORDER BY first_position LIMIT 1"),
                           (scope,))
            row = cursor.fetchone()
            if row is None:
                break
            entries = decode(row[1])
            gone = min(len(entries), count - removed)
            self._rewrite(cursor, scope, row[0], entries[gone:])
            self._forget_aliases(cursor, scope, [e.position for e in entries[:gone]])
            removed += gone
        return removed

    def _clear(self, cursor, owner) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        count = self._sum(cursor, PACKS, "scope_id = ?", [scope])
        self._drop_packs(cursor, scope, "", ())
        cursor.execute(self._sql(f"DELETE FROM {ALIASES} WHERE scope_id = ?"), (scope,))
        return count

    def _retire(self, cursor, stamp) -> int:
        cursor.execute(self._sql("SELECT id FROM store_scopes WHERE store = ?"), (self.name,))
        return sum(self._delete_before(cursor, scope, stamp) for (scope,) in cursor.fetchall())

    def _newest(self, cursor) -> str | None:
        # One probe of the key per owner (portable SQL; no scan of the packs): an owner's
        # newest pack holds its greatest position, as its packs never overlap.
        cursor.execute(self._sql(
            f"SELECT MAX((SELECT p.last_position FROM {PACKS} p WHERE p.scope_id = s.id"
            " ORDER BY p.first_position DESC LIMIT 1)) FROM store_scopes s WHERE s.store = ?"),
            (self.name,))
        row = cursor.fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ adopting

    def _adopt(self, cursor) -> int:
        scopes = "SELECT id FROM store_scopes WHERE store = ?"
        moved: dict[int, list[Packed]] = {}
        aliases = []
        cursor.execute(self._sql(
            f"SELECT scope_id, seq, entry_id, stamp, with_jid, payload FROM store_archive"
            f" WHERE scope_id IN ({scopes})"), (self.name,))
        for scope, seq, entry_id, stamp, with_jid, payload in cursor.fetchall():
            position = stamp_position(stamp, seq)
            moved.setdefault(scope, []).append(Packed(position, entry_id, stamp, with_jid,
                                                      payload))
            aliases.append((scope, entry_id, position))
        cursor.execute(self._sql(
            "SELECT scope_id, position, entry_id, stamp, with_jid, payload"
            f" FROM store_archive_log WHERE scope_id IN ({scopes})"), (self.name,))
        for scope, position, entry_id, stamp, with_jid, payload in cursor.fetchall():
            moved.setdefault(scope, []).append(Packed(position, entry_id or position, stamp,
                                                      with_jid, payload))
            if entry_id is not None:
                aliases.append((scope, entry_id, position))
        if not moved:
            return 0
        for scope, entries in moved.items():
            entries.sort()
            self._merge(cursor, scope, entries)
        cursor.executemany(self._sql(INSERT_ALIAS), aliases)
        for table in ("store_archive", "store_archive_log"):
            cursor.execute(self._sql(f"DELETE FROM {table} WHERE scope_id IN ({scopes})"),
                           (self.name,))
        return sum(len(entries) for entries in moved.values())


class _Filters:
    """A query's filters: which entries match (``matches``), which packs surely hold only
    matching entries (``inside``, SQL), and the positions the result set lies within
    (``loose``)."""

    def __init__(self, query: ArchiveQuery, locate: Callable[[str], str]) -> None:
        self.with_jid = query.with_jid
        self.start, self.end = query.start, query.end
        self.after = None if query.after_id is None else locate(query.after_id)
        self.before = None if query.before_id is None else locate(query.before_id)
        self.ids = None if query.ids is None else {locate(each) for each in query.ids}

    def matches(self, entry: Packed) -> bool:
        position = entry.position
        return ((self.with_jid is None or entry.with_jid == self.with_jid)
                and (self.after is None or position > self.after)
                and (self.before is None or position < self.before)
                and (self.start is None or entry.stamp >= self.start)
                and (self.end is None or entry.stamp <= self.end))

    def inside(self) -> tuple[str, list]:
        """Conditions on a pack's first and last position under which every entry it holds
        matches (but for 'with', which the table chosen answers): one microsecond of
        rounding either way is left to ``matches``."""
        conditions, params = "", []
        for value, condition in (
            (self.after, " AND first_position > ?"),
            (self.before, " AND last_position < ?"),
            (None if self.start is None else position_bound(self.start, 2),
             " AND first_position >= ?"),
            (None if self.end is None else position_bound(self.end, -1),
             " AND last_position < ?"),
        ):
            if value is not None:
                conditions += condition
                params.append(value)
        return conditions, params

    def loose(self) -> tuple[str | None, str | None]:
        """The lowest and highest position a matching entry may have (None: no bound)."""
        lows = [each for each in (self.after, None if self.start is None
                                  else position_bound(self.start, -1)) if each is not None]
        highs = [each for each in (self.before, None if self.end is None
                                   else position_bound(self.end, 2)) if each is not None]
        return (max(lows) if lows else None), (min(highs) if highs else None)


def _table(scope: int, with_jid: str | None) -> tuple[str, str, list]:
    """Where a scope's packs are listed: the packs themselves, or the rows of one contact."""
    if with_jid is None:
        return PACKS, "scope_id = ?", [scope]
    return WITHS, "scope_id = ? AND with_jid = ?", [scope, with_jid]


def _packs_of(table: str) -> str:
    """``first, last, body FROM …`` of the packs listed in ``table`` (as ``w``)."""
    if table == PACKS:
        return f"w.first_position, w.last_position, w.body FROM {PACKS} w"
    return (f"w.first_position, w.last_position, p.body FROM {table} w JOIN {PACKS} p"
            " ON p.scope_id = w.scope_id AND p.first_position = w.first_position")


def _prefixed(where: str) -> str:
    return where.replace("scope_id", "w.scope_id").replace("with_jid", "w.with_jid")


def _ascending(rows: list[tuple]) -> bool:
    """Whether the rows' ids (their second item) increase: the message path's always do,
    but for a message that waited (for a roster read, or for the disk) between its links."""
    ids = [row[1] for row in rows]
    return all(map(operator.lt, ids, ids[1:]))


def _archive_entry(entry: Packed) -> ArchiveEntry:
    return ArchiveEntry(entry.stamp, entry.with_jid, entry.payload, entry.id)


def _checked(entry) -> ArchiveEntry:
    if not isinstance(entry, ArchiveEntry):
        raise TypeError(f"an archive takes ArchiveEntry values, not {entry!r}")
    if entry.id is None or len(entry.id) != ID_LENGTH:
        raise ValueError(f"a message archive takes ids from xmppd.mam.ids, not {entry.id!r}")
    return entry
