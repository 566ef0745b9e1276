# -*- test-case-name: tests.unit.test_storage_generic -*-
"""An ArchiveQuery as SQL over one scope of an archive table (``store_archive``, or the
message archives' ``store_archive_log``): the result set's filters, its count, and one page
of it taken from either end (XEP-0313 with XEP-0059 paging).

Positions are the archive order (``seq``, or the log's ``position``): an id a query names
(a bound, a paging cursor, one of ``ids``) is looked up once and compared as a position, so
the page queries run on the (scope_id, position) index. A page is fetched with one row more
than asked: that row's presence is what ``complete`` reports, without a second count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchivePage, ArchiveQuery
from xmppd.storage.stores.base import marks

COLUMNS = "entry_id, stamp, with_jid, payload"


@dataclass(frozen=True)
class Layout:
    """One archive table as the queries see it: its name, the column that orders it, the
    columns of an entry (as COLUMNS), the look-up of an id's position (``locate``, with
    ``(scope, id)`` as ``locate_params`` makes them), and optional extra conditions that
    let a time filter use the position index (``time_hints(start, end)``: (condition,
    value) pairs implied by the stamp conditions, never narrowing the result)."""

    table: str
    position: str
    columns: str
    locate: str
    locate_params: Callable[[int, str], tuple] = lambda scope, id: (scope, id)
    time_hints: Callable | None = None


GENERIC = Layout(
    table="store_archive",
    position="seq",
    columns=COLUMNS,
    locate="SELECT seq FROM store_archive WHERE scope_id = ? AND entry_id = ?",
)


def run_query(cursor, sql, owner: str, scope: int | None, query: ArchiveQuery,
              layout: Layout = GENERIC) -> ArchivePage:
    """The page ``query`` asks for of ``owner``'s entries (in ``scope``, None when it has
    none) in the table ``layout`` describes; ArchiveEntryNotFound when an id it names is
    not there."""
    if scope is None:
        missing = _named_ids(query)
        if missing:
            raise ArchiveEntryNotFound(owner, missing[0])
        return ArchivePage((), True, 0)
    where, params = _result_set(cursor, sql, owner, scope, query, layout)
    cursor.execute(sql(f"SELECT COUNT(*) FROM {layout.table} WHERE {where}"), params)
    total = cursor.fetchone()[0]
    for cursor_id, comparison in ((query.after, ">"), (query.before, "<")):
        if cursor_id is not None:
            where += f" AND {layout.position} {comparison} ?"
            params.append(_position(cursor, sql, owner, scope, cursor_id, layout))
    order = "DESC" if query.backwards else "ASC"
    text = (f"SELECT {layout.columns} FROM {layout.table} WHERE {where}"
            f" ORDER BY {layout.position} {order}")
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


def _result_set(cursor, sql, owner, scope, query: ArchiveQuery,
                layout: Layout) -> tuple[str, list]:
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
    if layout.time_hints is not None and (query.start is not None or query.end is not None):
        for condition, value in layout.time_hints(query.start, query.end):
            where.append(condition)
            params.append(value)
    for bound, comparison in ((query.after_id, ">"), (query.before_id, "<")):
        if bound is not None:
            where.append(f"{layout.position} {comparison} ?")
            params.append(_position(cursor, sql, owner, scope, bound, layout))
    if query.ids is not None:
        positions = [_position(cursor, sql, owner, scope, each, layout) for each in query.ids]
        # "Only these ids", with none given, matches nothing; "IN ()" is not portable SQL.
        where.append(f"{layout.position} IN ({marks(positions)})" if positions else "1 = 0")
        params.extend(positions)
    return " AND ".join(where), params


def _position(cursor, sql, owner, scope, entry_id: str, layout: Layout):
    cursor.execute(sql(layout.locate), layout.locate_params(scope, entry_id))
    row = cursor.fetchone()
    if row is None:
        raise ArchiveEntryNotFound(owner, entry_id)
    return row[0]


def _named_ids(query: ArchiveQuery) -> list[str]:
    """Every id the query names: each must be in the archive."""
    named = [query.after_id, query.before_id, query.after, query.before, *(query.ids or ())]
    return [entry_id for entry_id in named if entry_id is not None]
