# -*- test-case-name: tests.unit.test_storage_generic -*-
"""An ArchiveQuery as SQL over one scope of ``store_archive``: the result set's filters, its
count, and one page of it taken from either end (XEP-0313 with XEP-0059 paging).

Positions are ``seq``, the archive order: an id a query names (a bound, a paging cursor) is
looked up once and compared as a position, so the page queries run on the (scope_id, seq)
index. A page is fetched with one row more than asked: that row's presence is what
``complete`` reports, without a second count.
"""

from __future__ import annotations

from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchivePage, ArchiveQuery
from xmppd.storage.stores.base import marks

COLUMNS = "entry_id, stamp, with_jid, payload"


def run_query(cursor, sql, owner: str, scope: int | None, query: ArchiveQuery) -> ArchivePage:
    """The page ``query`` asks for of ``owner``'s entries (in ``scope``, None when it has
    none); ArchiveEntryNotFound when an id it names is not there."""
    if scope is None:
        missing = _named_ids(query)
        if missing:
            raise ArchiveEntryNotFound(owner, missing[0])
        return ArchivePage((), True, 0)
    where, params = _result_set(cursor, sql, owner, scope, query)
    cursor.execute(sql(f"SELECT COUNT(*) FROM store_archive WHERE {where}"), params)
    total = cursor.fetchone()[0]
    for cursor_id, comparison in ((query.after, ">"), (query.before, "<")):
        if cursor_id is not None:
            where += f" AND seq {comparison} ?"
            params.append(_position(cursor, sql, owner, scope, cursor_id))
    order = "DESC" if query.backwards else "ASC"
    text = f"SELECT {COLUMNS} FROM store_archive WHERE {where} ORDER BY seq {order}"
    if query.limit is not None:
        text += " LIMIT ?"
        params.append(query.limit + 1)
    cursor.execute(sql(text), params)
    rows = cursor.fetchall()
    complete = query.limit is None or len(rows) <= query.limit
    rows = rows[: query.limit]
    if query.backwards:
        rows.reverse()
    return ArchivePage(tuple(row_entry(row) for row in rows), complete, total)


def row_entry(row) -> ArchiveEntry:
    """An ArchiveEntry from a row of COLUMNS."""
    entry_id, stamp, with_jid, payload = row
    return ArchiveEntry(float(stamp), with_jid, payload, entry_id)


def _result_set(cursor, sql, owner, scope, query: ArchiveQuery) -> tuple[str, list]:
    """The WHERE clause (and its parameters) of every entry the query's filters match."""
    where, params = ["scope_id = ?"], [scope]
    for value, condition in (
        (query.with_jid, "with_jid = ?"),
        (query.start, "stamp >= ?"),
        (query.end, "stamp <= ?"),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    for bound, comparison in ((query.after_id, ">"), (query.before_id, "<")):
        if bound is not None:
            where.append(f"seq {comparison} ?")
            params.append(_position(cursor, sql, owner, scope, bound))
    if query.ids is not None:
        _check_ids_exist(cursor, sql, owner, scope, query.ids)
        # "Only these ids", with none given, matches nothing; "IN ()" is not portable SQL.
        where.append(f"entry_id IN ({marks(query.ids)})" if query.ids else "1 = 0")
        params.extend(query.ids)
    return " AND ".join(where), params


def _position(cursor, sql, owner, scope, entry_id: str) -> int:
    cursor.execute(
        sql("SELECT seq FROM store_archive WHERE scope_id = ? AND entry_id = ?"), (scope, entry_id)
    )
    row = cursor.fetchone()
    if row is None:
        raise ArchiveEntryNotFound(owner, entry_id)
    return row[0]


def _check_ids_exist(cursor, sql, owner, scope, ids) -> None:
    if not ids:
        return
    in_ids = f"entry_id IN ({marks(ids)})"
    cursor.execute(
        sql(f"SELECT entry_id FROM store_archive WHERE scope_id = ? AND {in_ids}"), (scope, *ids)
    )
    found = {row[0] for row in cursor.fetchall()}
    for entry_id in ids:
        if entry_id not in found:
            raise ArchiveEntryNotFound(owner, entry_id)


def _named_ids(query: ArchiveQuery) -> list[str]:
    """Every id the query names: each must be in the archive."""
    named = [query.after_id, query.before_id, query.after, query.before, *(query.ids or ())]
    return [entry_id for entry_id in named if entry_id is not None]
