# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The embedded SQLite engine on twisted.enterprise.adbapi: one connection, WAL, migrated at open.

One connection (cp_max=1) serialises our own writes and keeps ":memory:" a single database;
WAL and a busy timeout let xmppdctl write to the same file while the server runs.
"""

from __future__ import annotations

import os
import sqlite3

from twisted.enterprise import adbapi
from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IStorage, IUserStore
from xmppd.logs import get_logger
from xmppd.sasl.credentials import ScramCredentials
from xmppd.storage import SQLITE, SchemaError, UserExists, UserNotFound
from xmppd.storage.migrate import current_version, load_migrations, migrate

log = get_logger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another process's lock before failing
MEMORY = ":memory:"


def configure_connection(connection: sqlite3.Connection) -> None:
    """Run on every new connection: wait on locks, write-ahead log, enforce foreign keys."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")


@implementer(IStorage)
class SQLiteStorage:
    """One SQLite database file (or ":memory:" for tests)."""

    dialect = SQLITE
    dbapi = sqlite3

    def __init__(self, path: str, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        self._reactor = reactor
        self._pool: adbapi.ConnectionPool | None = None
        self.users = SQLUserStore(self)

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
            cp_openfun=configure_connection,
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
        log.info("storage {path} open at schema version {version}", path=self.path, version=version)
        return version

    def close(self):
        """Disconnect; the last connection to close checkpoints the WAL into the main file."""
        self._disconnect()
        return defer.succeed(None)

    def schema_version(self):
        return self.read(current_version, self.dialect)

    def now(self) -> float:
        return self._reactor.seconds()

    def read(self, function, *args):
        """Deferred result of ``function(cursor, *args)`` on the database thread."""
        if self._pool is None:
            return defer.fail(RuntimeError(f"{self.path}: storage is not open"))
        return self._pool.runInteraction(function, *args)

    def write(self, function, *args):
        """Like ``read`` but in a write transaction: committed on return, rolled back on error."""
        return self.read(_in_write_transaction, self.dialect, function, *args)

    def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _create_private(path: str) -> None:
    """Create the file owner-only: it holds SCRAM keys. SQLite gives its -wal and -shm the same
    mode. An existing file keeps the mode its operator chose."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _in_write_transaction(cursor, dialect, function, *args):
    if dialect.begin_write:
        cursor.execute(dialect.begin_write)
    return function(cursor, *args)


@implementer(IUserStore)
class SQLUserStore:
    """Accounts in portable SQL over any ``database`` offering read/write/dialect/dbapi/now."""

    def __init__(self, database) -> None:
        self._db = database
        self._sql = database.dialect.sql

    def create_user(self, localpart: str, domain: str, credentials):
        return self._db.write(self._create, localpart, domain, list(credentials), self._db.now())

    def set_credentials(self, localpart: str, domain: str, credentials):
        return self._db.write(self._replace_credentials, localpart, domain, list(credentials))

    def get_credentials(self, localpart: str, domain: str, hash_name: str):
        return self._db.read(self._credentials, localpart, domain, hash_name)

    def delete_user(self, localpart: str, domain: str):
        return self._db.write(self._delete, localpart, domain)

    def user_exists(self, localpart: str, domain: str):
        return self._db.read(self._exists, localpart, domain)

    def list_users(self, domain: str | None = None):
        return self._db.read(self._list, domain)

    # ------------------------------------------------------------------ on the database thread

    def _create(self, cursor, localpart, domain, credentials, created) -> None:
        try:
            cursor.execute(
                self._sql("INSERT INTO users (localpart, domain, created) VALUES (?, ?, ?)"),
                (localpart, domain, created),
            )
        except self._db.dbapi.IntegrityError:
            raise UserExists(localpart, domain) from None
        self._store_credentials(cursor, self._user_id(cursor, localpart, domain), credentials)

    def _replace_credentials(self, cursor, localpart, domain, credentials) -> None:
        user_id = self._user_id(cursor, localpart, domain)
        if user_id is None:
            raise UserNotFound(localpart, domain)
        kept = [c.hash_name for c in credentials]
        query = "DELETE FROM scram_credentials WHERE user_id = ?"
        if kept:
            query += f" AND hash_name NOT IN ({', '.join('?' for _ in kept)})"
        cursor.execute(self._sql(query), (user_id, *kept))
        self._store_credentials(cursor, user_id, credentials)

    def _store_credentials(self, cursor, user_id, credentials) -> None:
        upsert = self._db.dialect.upsert(
            "scram_credentials",
            ("user_id", "hash_name", "salt", "iterations", "stored_key", "server_key"),
            key=("user_id", "hash_name"),
        )
        for c in credentials:
            cursor.execute(
                upsert, (user_id, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
            )

    def _credentials(self, cursor, localpart, domain, hash_name) -> ScramCredentials | None:
        cursor.execute(
            self._sql(
                "SELECT c.salt, c.iterations, c.stored_key, c.server_key"
                " FROM scram_credentials c JOIN users u ON u.id = c.user_id"
                " WHERE u.localpart = ? AND u.domain = ? AND c.hash_name = ?"
            ),
            (localpart, domain, hash_name),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        salt, iterations, stored_key, server_key = row
        return ScramCredentials(
            hash_name, bytes(salt), int(iterations), bytes(stored_key), bytes(server_key)
        )

    def _delete(self, cursor, localpart, domain) -> None:
        # scram_credentials (and whatever later tables reference users) go by ON DELETE CASCADE.
        cursor.execute(
            self._sql("DELETE FROM users WHERE localpart = ? AND domain = ?"), (localpart, domain)
        )
        if cursor.rowcount == 0:
            raise UserNotFound(localpart, domain)

    def _exists(self, cursor, localpart, domain) -> bool:
        return self._user_id(cursor, localpart, domain) is not None

    def _list(self, cursor, domain) -> list[str]:
        query, params = "SELECT localpart, domain FROM users", ()
        if domain is not None:
            query, params = query + " WHERE domain = ?", (domain,)
        cursor.execute(self._sql(query), params)
        return sorted(f"{localpart}@{host}" for localpart, host in cursor.fetchall())

    def _user_id(self, cursor, localpart, domain) -> int | None:
        query = "SELECT id FROM users WHERE localpart = ? AND domain = ?"
        cursor.execute(self._sql(query), (localpart, domain))
        row = cursor.fetchone()
        return None if row is None else row[0]
