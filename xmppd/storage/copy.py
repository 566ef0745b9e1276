# -*- test-case-name: tests.unit.test_storage_copy -*-
"""Copy every table of one opened storage engine into another (SQLite to PostgreSQL and
back), for ``xmppdctl migrate-storage``.

Both engines are opened first, so both stand at the same, newest schema (``open`` migrates).
The destination must hold nothing yet: the copy keeps every row's ids, which would collide
with rows already there. Tables go parents first, in the order the migrations create them,
each read in pages in the order of its key (a page resumes after the last key read, so a
page costs the same at the end of a large archive as at its start) and written one page per
transaction. Then the destination's id generators are moved past the copied ids, and every
table is counted on both sides: a difference fails the copy.

The source must not change meanwhile: the caller makes sure no server uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twisted.internet import defer

from xmppd.storage.migrate import load_migrations

# Every table the migrations create, with the columns of its primary key (or of a unique key
# that orders it). tests.unit.test_storage_copy fails when a migration adds a table that is
# not here, so none is ever left behind.
KEYS: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "scram_credentials": ("user_id", "hash_name"),
    "roster_items": ("user_id", "contact"),
    "roster_versions": ("user_id",),
    "subscription_requests": ("user_id", "contact"),
    "offline_messages": ("id",),
    "server_roster": ("local_domain", "peer"),
    "incident_reports": ("id",),
    "store_scopes": ("id",),
    "store_keyval": ("scope_id",),
    "store_map": ("scope_id", "item_key"),
    "store_archive": ("seq",),
    "store_archive_log": ("scope_id", "position"),
    "store_archive_pack": ("scope_id", "first_position"),
    "store_archive_pack_with": ("scope_id", "with_jid", "first_position"),
    "store_archive_pack_alias": ("scope_id", "entry_id"),
}
PAGE = 2000  # rows per read and per write transaction

_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


class CopyError(RuntimeError):
    """The copy cannot be made or did not come out whole; the message says which table."""


def tables() -> list[str]:
    """The migrations' tables, in the order they are created (parents before children)."""
    found = []
    for migration in load_migrations():
        text = "\n".join(line.split("--", 1)[0] for line in migration.text.splitlines())
        found.extend(name for name in _CREATE_TABLE.findall(text) if name not in found)
    return found


@defer.inlineCallbacks
def copy_storage(source, destination, say: Callable[[str], None] = lambda line: None,
                 page: int = PAGE):
    """Copy every row of the opened ``source`` into the opened, empty ``destination``;
    fires with {table: rows}. CopyError when the destination holds data, a table has no
    known key, or the counts differ after the copy."""
    names = tables()
    unknown = [name for name in names if name not in KEYS]
    if unknown:
        raise CopyError(f"no key known for table {unknown[0]} (xmppd.storage.copy.KEYS)")
    versions = yield defer.gatherResults([source.schema_version(), destination.schema_version()])
    if versions[0] != versions[1]:
        raise CopyError(f"schema versions differ: {versions[0]} and {versions[1]}")
    for name in names:
        if (yield destination.read(_count, destination.dialect.sql, name)):
            raise CopyError(f"the destination already holds data (table {name}): "
                            "copy into an empty database")
    copied = {}
    for name in names:
        copied[name] = yield _copy_table(source, destination, name, page)
        say(f"{name}: {copied[name]} rows")
    after_copy = getattr(destination, "after_copy", None)
    if after_copy is not None:
        yield after_copy()
    for name in names:
        counts = yield defer.gatherResults([
            source.read(_count, source.dialect.sql, name),
            destination.read(_count, destination.dialect.sql, name)])
        if counts[0] != counts[1] or counts[0] != copied[name]:
            raise CopyError(f"table {name}: {counts[0]} rows in the source, {counts[1]} in "
                            f"the destination after copying {copied[name]}")
    return copied


@defer.inlineCallbacks
def _copy_table(source, destination, name: str, page: int):
    key = KEYS[name]
    after = None
    total = 0
    while True:
        columns, rows = yield source.read(_page, source.dialect.sql, name, key, after, page)
        if not rows:
            return total
        yield destination.write(_insert, destination.dialect.sql, name, columns, rows)
        total += len(rows)
        positions = [columns.index(column) for column in key]
        after = tuple(rows[-1][i] for i in positions)


def _count(cursor, sql, name: str) -> int:
    cursor.execute(sql(f"SELECT COUNT(*) FROM {name}"))
    return cursor.fetchone()[0]


def _page(cursor, sql, name: str, key: tuple[str, ...], after, limit: int):
    """Up to ``limit`` rows of ``name`` after the key ``after`` (from the start when None),
    in key order; (column names, rows)."""
    order = ", ".join(key)
    query, params = f"SELECT * FROM {name}", []
    if after is not None:  # a row value comparison: SQLite >= 3.15, PostgreSQL
        query += f" WHERE ({order}) > ({', '.join('?' for _ in key)})"
        params.extend(after)
    query += f" ORDER BY {order} LIMIT ?"
    params.append(limit)
    cursor.execute(sql(query), params)
    rows = [tuple(row) for row in cursor.fetchall()]
    return [d[0] for d in cursor.description], rows


def _insert(cursor, sql, name: str, columns: list[str], rows: list[tuple]) -> None:
    marks = ", ".join("?" for _ in columns)
    cursor.executemany(sql(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"),
                       rows)
