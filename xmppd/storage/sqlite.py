# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The embedded SQLite engine: writes on a database thread, reads inline; WAL, migrated at open.

One writing connection on twisted.enterprise.adbapi's thread (cp_max=1) serialises our own
writes, whose commits wait for fsync. Reads of a database file run at once on the reactor
thread, on a second, query-only connection: in WAL mode they never wait for a writer, a
small database lives in the page cache, and a read costs tens of microseconds where handing
it to a thread and back costs more than the query (``make bench``: about a quarter more
logins per CPU second). A read never overtakes a write asked for before it: while any write
is queued or running, reads queue behind it on the thread, as they always did. ":memory:"
has no second connection: there reads use the thread too.
WAL and a busy timeout let xmppdctl write to the same file while the server runs.

This module is the engine only: connections, migrations, and ``read``/``write``/``dialect``/
``dbapi``/``now``, the small API the stores (``xmppd.storage.stores``, portable SQL over the
Dialect) are written against; it gets them by inheriting ``Stores``.
"""

from __future__ import annotations

import os
import sqlite3

from twisted.enterprise import adbapi
from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IStorage
from xmppd.logs import get_logger
from xmppd.probes import STORAGE
from xmppd.storage import SQLITE, SchemaError
from xmppd.storage.migrate import current_version, load_migrations, migrate
from xmppd.storage.stores import Stores

log = get_logger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another process's lock before failing
MEMORY = ":memory:"
# The writing connection's page cache, in KiB (SQLite's default is 2 MiB). An archive's index
# on entry ids takes random ids, so a batch of appends lands on pages all over it: once the
# indexes outgrow the cache every batch reads its pages back from the OS again
# (bench/archive_writes.py: with 32 MiB, 1,000 appends at 300,000 entries take about a
# quarter less CPU). Memory is taken only as pages are read, up to this.
WRITER_CACHE_KIB = 32 * 1024
# WAL pages after which a commit copies the log back into the file (SQLite's default: 1,000).
# An archive batch dirties hundreds of pages, most of them the same ones as the batch before
# (the newest page of each owner in each index): at 1,000 nearly every commit checkpointed
# and copied them again; at 4,000 (16 MiB of log) each is copied once per four or five
# batches. About a tenth less CPU and a fifth less time per batch (bench/archive_writes.py).
WAL_AUTOCHECKPOINT_PAGES = 4000


def configure_connection(connection: sqlite3.Connection) -> None:
    """Run on every new connection: wait on locks, write-ahead log, enforce foreign keys (the
    cascade that deletes what an account owns), and sync every commit to disk (an accepted
    offline message must survive a power cut, and some builds default WAL to NORMAL)."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA synchronous = FULL")


def configure_writer(connection: sqlite3.Connection) -> None:
    """The writing connection: as every connection, with a larger page cache and fewer
    checkpoints (the connection that commits is the one that checkpoints)."""
    configure_connection(connection)
    connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")


@implementer(IStorage)
class SQLiteStorage(Stores):
    """One SQLite database file (or ":memory:" for tests)."""

    dialect = SQLITE
    dbapi = sqlite3

    def __init__(self, path: str, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        self._reactor = reactor
        self._pool: adbapi.ConnectionPool | None = None
        self._reader: sqlite3.Connection | None = None  # reads on the reactor thread
        self._writes_pending = 0
        super().__init__()

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    @defer.inlineCallbacks
    def open(self):
        """Connect and migrate; fires with the schema version. A failed open leaves it closed."""
        if self._pool is not None:
            raise RuntimeError(f"{self.path}: storage is already open")
        if self.path != MEMORY:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            _create_private(self.path)
        self._pool = adbapi.ConnectionPool(
            "sqlite3",
            self.path,
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_openfun=configure_writer,
            cp_reactor=self._reactor,
        )
        try:
            version = yield migrate(self, load_migrations(), now=self.now)
        except SchemaError as error:
            self._disconnect()
            raise SchemaError(f"{self.path}: {error}") from None
        except BaseException:
            self._disconnect()
            raise
        if self.path != MEMORY:
            self._reader = _open_reader(self.path)
        log.info("storage {path} open at schema version {version}", path=self.path, version=version)
        return version

    def close(self):
        """Disconnect; the last connection to close checkpoints the WAL into the main file."""
        self._disconnect()
        return defer.succeed(None)

    def schema_version(self):
        return self.read(current_version, self.dialect)

    def backup(self, destination: str):
        """Copy the database into the new file ``destination`` with SQLite's online backup
        API, on the database thread: the copy is one consistent state (every write committed
        before it, none after), taken while the server keeps running. Fires with the number
        of pages copied. The caller chooses a file that does not exist yet."""
        if self._pool is None:
            return defer.fail(RuntimeError(f"{self.path}: storage is not open"))
        return self._pool.runWithConnection(_backup_into, destination)

    def now(self) -> float:
        return self._reactor.seconds()

    def read(self, function, *args):
        observe = STORAGE.observe  # timed when a probe is set (xmppd.probes)
        if observe is not None and next(STORAGE.ticks):
            return observe("read", self._read, function, *args)
        return self._read(function, *args)

    def _read(self, function, *args):
        """Deferred result of ``function(cursor, *args)``, which must not write.

        On a database file, with no write pending, it runs at once on this thread in one read
        transaction of a connection of its own; otherwise behind the writes, on their thread.
        """
        reader = self._reader
        if reader is None or self._writes_pending:
            return self._on_database_thread(function, *args)
        try:
            reader.execute("BEGIN")
            try:
                return defer.succeed(function(reader.cursor(), *args))
            finally:
                reader.execute("COMMIT")
        except BaseException:
            return defer.fail()

    def write(self, function, *args):
        observe = STORAGE.observe
        if observe is not None and next(STORAGE.ticks):
            return observe("write", self._write, function, *args)
        return self._write(function, *args)

    def _write(self, function, *args):
        """Deferred result of ``function(cursor, *args)`` in a write transaction on the database
        thread: committed on return, rolled back on error."""
        d = self._on_database_thread(_in_write_transaction, self.dialect, function, *args)
        self._writes_pending += 1
        return d.addBoth(self._write_done)

    def _write_done(self, result):
        self._writes_pending -= 1
        return result

    def _on_database_thread(self, function, *args):
        if self._pool is None:
            return defer.fail(RuntimeError(f"{self.path}: storage is not open"))
        return self._pool.runInteraction(function, *args)

    def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if pool is not None:
            pool.close()


def _create_private(path: str) -> None:
    """Create the file owner-only: it holds SCRAM keys. SQLite gives its -wal and -shm the same
    mode. An existing file keeps the mode its operator chose."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _open_reader(path: str) -> sqlite3.Connection:
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure_connection(reader)
    reader.execute("PRAGMA query_only = ON")
    return reader


def _backup_into(connection, destination: str) -> int:
    """On the database thread: copy ``connection``'s database into ``destination`` as one
    self-contained file (rollback journal, so no -wal file has to travel with it)."""
    target = sqlite3.connect(destination, isolation_level=None)
    try:
        connection.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")
        return target.execute("PRAGMA page_count").fetchone()[0]
    finally:
        target.close()


def _in_write_transaction(cursor, dialect, function, *args):
    if dialect.begin_write:
        cursor.execute(dialect.begin_write)
    return function(cursor, *args)
