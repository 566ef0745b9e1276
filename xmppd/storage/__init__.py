# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""What every storage engine shares: its errors, the SQL dialect notion and the engine factory."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class UserExists(Exception):
    """The account to create is already there."""

    def __init__(self, localpart: str, domain: str) -> None:
        super().__init__(f"user {localpart}@{domain} already exists")
        self.localpart = localpart
        self.domain = domain


class UserNotFound(Exception):
    """The account to change or delete is not there."""

    def __init__(self, localpart: str, domain: str) -> None:
        super().__init__(f"no such user: {localpart}@{domain}")
        self.localpart = localpart
        self.domain = domain


class ArchiveEntryNotFound(LookupError):
    """An archive query names an entry id the owner's archive does not hold (MAM and RSM
    answer it with <item-not-found/>, XEP-0313 §4.1.2)."""

    def __init__(self, owner: str, id: str) -> None:
        super().__init__(f"no archive entry {id!r} of {owner}")
        self.owner = owner
        self.id = id


class SchemaError(RuntimeError):
    """The database schema cannot be brought in line with this code (too new, or bad migrations)."""


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine differs from the portable SQL our queries and migrations are written in.

    Queries are written with ``?`` placeholders (never a literal ``?`` inside them); migrations
    write engine-specific column types as ``{tokens}`` that ``ddl`` fills in (so a literal
    brace in a migration is written doubled). The tokens every engine must define:

    - ``serial``: an integer primary key the engine assigns;
    - ``monotonic_serial``: the same, but never handed out twice, even after the newest row
      is deleted (ids that callers remember, like "delete up to this one", need that);
    - ``bytes``: a binary string.
    """

    name: str
    placeholder: str  # what "?" becomes: "?" for sqlite3, "%s" for psycopg
    types: Mapping[str, str]  # migration tokens, e.g. {"bytes": "BLOB"}
    begin_write: str | None  # opens a write transaction, or None when the driver opens one itself
    # Ends a SELECT whose rows must stay locked until commit: " FOR UPDATE" where transactions
    # lock rows (PostgreSQL), "" where a write transaction already locks the whole database.
    for_update: str = ""

    def sql(self, query: str) -> str:
        """``query`` with this engine's placeholder style."""
        return query if self.placeholder == "?" else query.replace("?", self.placeholder)

    def ddl(self, text: str) -> str:
        """A migration's text with its type tokens filled in."""
        return text.format_map(self.types)

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """An insert that overwrites the row with the same ``key`` (SQLite ≥ 3.24, PG ≥ 9.5)."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        query = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )
        return self.sql(query)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    types={
        "serial": "INTEGER PRIMARY KEY",
        # Without AUTOINCREMENT SQLite hands out max(rowid) + 1, reusing a deleted newest id.
        "monotonic_serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "bytes": "BLOB",
    },
    # IMMEDIATE takes the write lock up front, so a read-then-write never hits SQLITE_BUSY midway.
    begin_write="BEGIN IMMEDIATE",
)

SQLITE_FILENAME = "xmppd.sqlite"  # as config.py defaults it


def open_storage(config, reactor=None):
    """The IStorage engine ``config.storage`` asks for (not opened yet: call ``open()``)."""
    backend = config.storage.backend
    if backend == "sqlite":
        from xmppd.storage.sqlite import SQLiteStorage

        path = config.storage.path or os.path.join(config.server.data_dir, SQLITE_FILENAME)
        return SQLiteStorage(os.fspath(path), reactor=reactor)
    if backend == "postgresql":
        raise RuntimeError("postgresql backend arrives in a later release")
    raise RuntimeError(f"unknown storage backend {backend!r} (expected 'sqlite' or 'postgresql')")
