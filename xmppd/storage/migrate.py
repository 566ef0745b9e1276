# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order and recorded.

Each migration runs in its own write transaction that first re-reads the recorded version, so
two processes opening the same database (the server and xmppdctl) never apply one twice. Where
a write transaction alone does not keep the other process out (PostgreSQL, whose DDL is
transactional too), the dialect's ``lock_schema`` is taken first in each.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from twisted.internet import defer

from xmppd.storage import Dialect, SchemaError

MIGRATION_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One schema step; ``text`` is portable SQL with ``{type}`` tokens (see storage.Dialect)."""

    version: int
    name: str
    text: str

    def statements(self, dialect: Dialect) -> list[str]:
        """The statements to execute, comments dropped (no ``;`` inside literals, by rule)."""
        lines = (line.split("--", 1)[0] for line in dialect.ddl(self.text).splitlines())
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Every migration shipped with xmppd (or found in ``directory``), in version order.

    The numbering must run 1, 2, 3... without gaps: a gap means a file went missing.
    """
    if directory is None:
        directory = resources.files("xmppd.storage").joinpath("migrations")
    migrations = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_FILENAME.match(entry.name)
        if match is None:
            raise SchemaError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        migrations.append(
            Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    migrations.sort(key=lambda m: m.version)
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise SchemaError(
                f"migrations must be numbered 1, 2, 3...: expected {expected:04d}, "
                f"found {migration.version:04d}_{migration.name}.sql"
            )
    return migrations


def current_version(cursor, dialect: Dialect) -> int:
    """The newest recorded migration (0 for an empty database); needs the version table."""
    cursor.execute(dialect.sql("SELECT MAX(version) FROM schema_version"))
    (version,) = cursor.fetchone()
    return version or 0


@defer.inlineCallbacks
def migrate(database, migrations: list[Migration], now: Callable[[], float] = time.time):
    """Bring ``database`` up to the last of ``migrations``; fires with the resulting version.

    ``database`` offers ``dialect`` and ``write(function, *args)``, which runs
    ``function(cursor, *args)`` in one write transaction. Fails with SchemaError when the
    database is newer than the code, which would otherwise corrupt it.
    """
    latest = migrations[-1].version if migrations else 0
    dialect = database.dialect
    yield database.write(_create_version_table, dialect)
    version = yield database.write(_refuse_newer, dialect, latest)
    for migration in migrations:
        if migration.version > version:
            version = yield database.write(_apply, dialect, migration, latest, now())
    return version


def _lock_schema(cursor, dialect: Dialect) -> None:
    if dialect.lock_schema:
        cursor.execute(dialect.lock_schema)


def _create_version_table(cursor, dialect: Dialect) -> None:
    _lock_schema(cursor, dialect)
    cursor.execute(dialect.sql(CREATE_VERSION_TABLE))


def _refuse_newer(cursor, dialect: Dialect, latest: int) -> int:
    version = current_version(cursor, dialect)
    if version > latest:
        raise SchemaError(
            f"the database schema is at version {version} but this xmppd only knows up to "
            f"{latest}: run a newer xmppd (or restore a backup made for this version)"
        )
    return version


def _apply(cursor, dialect: Dialect, migration: Migration, latest: int, applied: float) -> int:
    _lock_schema(cursor, dialect)
    version = _refuse_newer(cursor, dialect, latest)
    if version >= migration.version:  # another process got there first
        return version
    for statement in migration.statements(dialect):
        cursor.execute(statement)
    cursor.execute(
        dialect.sql("INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)"),
        (migration.version, migration.name, applied),
    )
    return migration.version
