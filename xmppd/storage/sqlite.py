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

The stores (users, rosters, offline messages, the server roster, incident reports) are written
in portable SQL over the Dialect, so a later engine reuses them: it only has to offer
read/write/dialect/dbapi/now.
"""

from __future__ import annotations

import json
import os
import sqlite3

from twisted.enterprise import adbapi
from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import (
    IIncidentStore,
    IOfflineStore,
    IRosterStore,
    IServerRosterStore,
    IStorage,
    IUserStore,
)
from xmppd.logs import get_logger
from xmppd.sasl.credentials import ScramCredentials
from xmppd.storage import SQLITE, SchemaError, UserExists, UserNotFound
from xmppd.storage.migrate import current_version, load_migrations, migrate
from xmppd.storage.records import IncidentRecord, RosterItem, RosterSnapshot, ServerPeer

log = get_logger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another process's lock before failing
MEMORY = ":memory:"


def configure_connection(connection: sqlite3.Connection) -> None:
    """Run on every new connection: wait on locks, write-ahead log, enforce foreign keys (the
    cascade that deletes what an account owns), and sync every commit to disk (an accepted
    offline message must survive a power cut, and some builds default WAL to NORMAL)."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA synchronous = FULL")


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
        self._reader: sqlite3.Connection | None = None  # reads on the reactor thread
        self._writes_pending = 0
        self.users = SQLUserStore(self)
        self.roster = SQLRosterStore(self)
        self.offline = SQLOfflineStore(self)
        self.server_roster = SQLServerRosterStore(self)
        self.incidents = SQLIncidentStore(self)

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

    def now(self) -> float:
        return self._reactor.seconds()

    def read(self, function, *args):
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


def _in_write_transaction(cursor, dialect, function, *args):
    if dialect.begin_write:
        cursor.execute(dialect.begin_write)
    return function(cursor, *args)


class _SQLStore:
    """What the stores share: the database, and finding the account a call is about."""

    def __init__(self, database) -> None:
        self._db = database
        self._sql = database.dialect.sql

    def _user_id(self, cursor, localpart, domain, lock=False) -> int | None:
        query = "SELECT id FROM users WHERE localpart = ? AND domain = ?"
        if lock:
            query += self._db.dialect.for_update
        cursor.execute(self._sql(query), (localpart, domain))
        row = cursor.fetchone()
        return None if row is None else row[0]

    def _owner(self, cursor, localpart, domain) -> int:
        """The id of the account a write changes, locked until commit so that concurrent
        writes for one account take turns; UserNotFound when there is no such account."""
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            raise UserNotFound(localpart, domain)
        return user_id


@implementer(IUserStore)
class SQLUserStore(_SQLStore):
    """Accounts in portable SQL over any ``database`` offering read/write/dialect/dbapi/now."""

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
        user_id = self._owner(cursor, localpart, domain)
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


ROSTER_COLUMNS = ("contact", "name", "group_names", "subscription", "pending_out", "approved")
SELECT_ROSTER_ITEMS = (
    f"SELECT {', '.join('r.' + c for c in ROSTER_COLUMNS)}"
    " FROM roster_items r JOIN users u ON u.id = r.user_id"
    " WHERE u.localpart = ? AND u.domain = ?"
)


@implementer(IRosterStore)
class SQLRosterStore(_SQLStore):
    """Rosters and pending subscription requests in portable SQL.

    Each change to an item bumps the account's version in the same transaction, so a version
    names exactly one roster state (what XEP-0237 versioning relies on).
    """

    def get_roster(self, localpart: str, domain: str):
        return self._db.read(self._snapshot, localpart, domain)

    def get_item(self, localpart: str, domain: str, contact: str):
        return self._db.read(self._item, localpart, domain, contact)

    def put_item(self, localpart: str, domain: str, item: RosterItem):
        if not isinstance(item, RosterItem):
            return defer.fail(TypeError(f"put_item takes a RosterItem, not {item!r}"))
        return self._db.write(self._put, localpart, domain, item)

    def remove_item(self, localpart: str, domain: str, contact: str):
        return self._db.write(self._remove, localpart, domain, contact)

    def add_request(self, localpart: str, domain: str, contact: str, stanza: str):
        if not isinstance(stanza, str):
            return defer.fail(TypeError(f"a request is kept as serialized XML, not {stanza!r}"))
        return self._db.write(self._add_request, localpart, domain, contact, stanza, self._db.now())

    def remove_request(self, localpart: str, domain: str, contact: str):
        return self._db.write(self._remove_request, localpart, domain, contact)

    def get_requests(self, localpart: str, domain: str):
        return self._db.read(self._requests, localpart, domain)

    # ------------------------------------------------------------------ on the database thread

    def _snapshot(self, cursor, localpart, domain) -> RosterSnapshot:
        # The version is read before the items: a change landing in between then pairs newer
        # items with an older version, which only makes a client fetch again, never miss one.
        cursor.execute(
            self._sql(
                "SELECT v.version FROM roster_versions v JOIN users u ON u.id = v.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        row = cursor.fetchone()
        version = 0 if row is None else row[0]
        cursor.execute(self._sql(SELECT_ROSTER_ITEMS), (localpart, domain))
        # Sorted here, not by ORDER BY: engines collate text differently.
        items = sorted((_roster_item(row) for row in cursor.fetchall()), key=_by_contact)
        return RosterSnapshot(version, tuple(items))

    def _item(self, cursor, localpart, domain, contact) -> RosterItem | None:
        cursor.execute(
            self._sql(SELECT_ROSTER_ITEMS + " AND r.contact = ?"), (localpart, domain, contact)
        )
        row = cursor.fetchone()
        return None if row is None else _roster_item(row)

    def _put(self, cursor, localpart, domain, item) -> int:
        user_id = self._owner(cursor, localpart, domain)
        upsert = self._db.dialect.upsert(
            "roster_items", ("user_id", *ROSTER_COLUMNS), key=("user_id", "contact")
        )
        cursor.execute(upsert, (user_id, *_roster_row(item)))
        return self._bump_version(cursor, user_id)

    def _remove(self, cursor, localpart, domain, contact) -> int | None:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            return None
        cursor.execute(
            self._sql("DELETE FROM roster_items WHERE user_id = ? AND contact = ?"),
            (user_id, contact),
        )
        if cursor.rowcount == 0:
            return None
        return self._bump_version(cursor, user_id)

    def _bump_version(self, cursor, user_id) -> int:
        # Safe as read-then-write: the caller holds the account's lock (see _owner).
        cursor.execute(
            self._sql("UPDATE roster_versions SET version = version + 1 WHERE user_id = ?"),
            (user_id,),
        )
        if cursor.rowcount == 0:
            cursor.execute(
                self._sql("INSERT INTO roster_versions (user_id, version) VALUES (?, 1)"),
                (user_id,),
            )
            return 1
        cursor.execute(
            self._sql("SELECT version FROM roster_versions WHERE user_id = ?"), (user_id,)
        )
        return cursor.fetchone()[0]

    def _add_request(self, cursor, localpart, domain, contact, stanza, received) -> None:
        user_id = self._owner(cursor, localpart, domain)
        upsert = self._db.dialect.upsert(
            "subscription_requests",
            ("user_id", "contact", "stanza", "received"),
            key=("user_id", "contact"),
        )
        cursor.execute(upsert, (user_id, contact, stanza, received))

    def _remove_request(self, cursor, localpart, domain, contact) -> bool:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            return False
        cursor.execute(
            self._sql("DELETE FROM subscription_requests WHERE user_id = ? AND contact = ?"),
            (user_id, contact),
        )
        return cursor.rowcount > 0

    def _requests(self, cursor, localpart, domain) -> list[tuple[str, str]]:
        cursor.execute(
            self._sql(
                "SELECT r.received, r.contact, r.stanza"
                " FROM subscription_requests r JOIN users u ON u.id = r.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        # Oldest first; requests received at the same instant come in contact order.
        return [(contact, stanza) for _, contact, stanza in sorted(cursor.fetchall())]


def _roster_row(item: RosterItem) -> tuple:
    """The item as ROSTER_COLUMNS values; the flags as 0/1, the portable spelling of a bool."""
    groups = json.dumps(list(item.groups), ensure_ascii=False)
    flags = (int(item.pending_out), int(item.approved))
    return (item.contact, item.name, groups, item.subscription, *flags)


def _roster_item(row) -> RosterItem:
    contact, name, groups, subscription, pending_out, approved = row
    return RosterItem(
        contact, name, tuple(json.loads(groups)), subscription, bool(pending_out), bool(approved)
    )


def _by_contact(item: RosterItem) -> str:
    return item.contact


@implementer(IOfflineStore)
class SQLOfflineStore(_SQLStore):
    """Messages kept for offline accounts (XEP-0160) in portable SQL, in the order stored."""

    def store(self, localpart: str, domain: str, stanza: str, stamp: float, limit: int):
        if not isinstance(stanza, str):
            return defer.fail(TypeError(f"a message is kept as serialized XML, not {stanza!r}"))
        if not _is_number(stamp):
            return defer.fail(TypeError(f"stamp must be POSIX seconds, not {stamp!r}"))
        if not _is_number(limit, int) or limit < 0:
            return defer.fail(ValueError(f"limit must be a count of messages, not {limit!r}"))
        return self._db.write(self._store, localpart, domain, stanza, float(stamp), limit)

    def fetch(self, localpart: str, domain: str):
        return self._db.read(self._fetch, localpart, domain)

    def delete(self, localpart: str, domain: str, up_to_id: int):
        if not _is_number(up_to_id, int):
            return defer.fail(TypeError(f"up_to_id must be a message id, not {up_to_id!r}"))
        return self._db.write(self._delete, localpart, domain, up_to_id)

    def count(self, localpart: str, domain: str):
        return self._db.read(self._count, localpart, domain)

    # ------------------------------------------------------------------ on the database thread

    def _store(self, cursor, localpart, domain, stanza, stamp, limit) -> bool:
        # Counting and inserting under the account's lock: two messages racing for the last
        # place cannot both take it.
        user_id = self._owner(cursor, localpart, domain)
        cursor.execute(
            self._sql("SELECT COUNT(*) FROM offline_messages WHERE user_id = ?"), (user_id,)
        )
        if cursor.fetchone()[0] >= limit:
            return False
        cursor.execute(
            self._sql("INSERT INTO offline_messages (user_id, stanza, stamp) VALUES (?, ?, ?)"),
            (user_id, stanza, stamp),
        )
        return True

    def _fetch(self, cursor, localpart, domain) -> list[tuple[int, str, float]]:
        cursor.execute(
            self._sql(
                "SELECT m.id, m.stanza, m.stamp"
                " FROM offline_messages m JOIN users u ON u.id = m.user_id"
                " WHERE u.localpart = ? AND u.domain = ? ORDER BY m.id"
            ),
            (localpart, domain),
        )
        return [tuple(row) for row in cursor.fetchall()]

    def _delete(self, cursor, localpart, domain, up_to_id) -> None:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is not None:
            cursor.execute(
                self._sql("DELETE FROM offline_messages WHERE user_id = ? AND id <= ?"),
                (user_id, up_to_id),
            )

    def _count(self, cursor, localpart, domain) -> int:
        cursor.execute(
            self._sql(
                "SELECT COUNT(*) FROM offline_messages m JOIN users u ON u.id = m.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        return cursor.fetchone()[0]


def _is_number(value, kind=(int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


SERVER_ROSTER_COLUMNS = (
    "local_domain", "peer", "subscription", "pending_out", "pending_in", "since",
)


@implementer(IServerRosterStore)
class SQLServerRosterStore(_SQLStore):
    """The server roster (XEP-0267) in portable SQL: a small table, read whole at start-up."""

    def get_peers(self):
        return self._db.read(self._peers)

    def put_peer(self, peer: ServerPeer):
        if not isinstance(peer, ServerPeer):
            return defer.fail(TypeError(f"put_peer takes a ServerPeer, not {peer!r}"))
        return self._db.write(self._put, peer)

    def remove_peer(self, local: str, peer: str):
        return self._db.write(self._remove, local, peer)

    # ------------------------------------------------------------------ on the database thread

    def _peers(self, cursor) -> list[ServerPeer]:
        cursor.execute(self._sql(f"SELECT {', '.join(SERVER_ROSTER_COLUMNS)} FROM server_roster"))
        peers = (
            ServerPeer(local, peer, subscription, bool(out), bool(in_), float(since))
            for local, peer, subscription, out, in_, since in cursor.fetchall()
        )
        # Sorted here, not by ORDER BY: engines collate text differently.
        return sorted(peers, key=lambda p: (p.local, p.peer))

    def _put(self, cursor, peer: ServerPeer) -> None:
        upsert = self._db.dialect.upsert(
            "server_roster", SERVER_ROSTER_COLUMNS, key=("local_domain", "peer")
        )
        cursor.execute(
            upsert,
            (peer.local, peer.peer, peer.subscription, int(peer.pending_out),
             int(peer.pending_in), float(peer.since)),
        )

    def _remove(self, cursor, local, peer) -> bool:
        cursor.execute(
            self._sql("DELETE FROM server_roster WHERE local_domain = ? AND peer = ?"),
            (local, peer),
        )
        return cursor.rowcount > 0


INCIDENT_COLUMNS = (
    "direction", "local_domain", "peer", "incident_id", "description", "report", "stamp",
)


@implementer(IIncidentStore)
class SQLIncidentStore(_SQLStore):
    """Incident reports (XEP-0268) in portable SQL, in the order they were kept."""

    def add_incident(self, record: IncidentRecord):
        if not isinstance(record, IncidentRecord):
            return defer.fail(TypeError(f"add_incident takes an IncidentRecord, not {record!r}"))
        return self._db.write(self._add, record)

    def list_incidents(self):
        return self._db.read(self._list)

    # ------------------------------------------------------------------ on the database thread

    def _add(self, cursor, record: IncidentRecord) -> int:
        cursor.execute(
            self._sql(
                f"INSERT INTO incident_reports ({', '.join(INCIDENT_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in INCIDENT_COLUMNS)})"
            ),
            (record.direction, record.local, record.peer, record.incident_id,
             record.description, record.report, float(record.stamp)),
        )
        # Ours is the newest id: the write transaction locks out other writers on SQLite, and
        # only the running server files reports (an engine with concurrent writers would use
        # INSERT ... RETURNING, which SQLite has only since 3.35).
        cursor.execute(self._sql("SELECT MAX(id) FROM incident_reports"))
        return cursor.fetchone()[0]

    def _list(self, cursor) -> list[IncidentRecord]:
        cursor.execute(
            self._sql(f"SELECT id, {', '.join(INCIDENT_COLUMNS)} FROM incident_reports ORDER BY id")
        )
        return [
            IncidentRecord(direction, local, peer, incident_id, description, report,
                           float(stamp), id)
            for id, direction, local, peer, incident_id, description, report, stamp
            in cursor.fetchall()
        ]
