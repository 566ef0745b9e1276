# -*- test-case-name: tests.unit.test_storage_postgresql -*-
"""The PostgreSQL engine: the same stores and numbered migrations as SQLite, over psycopg 3.

Every call runs on a thread of twisted.enterprise.adbapi, never on the reactor: a query that
waits for a lock or for the network blocks one database thread, not the server.

- Writes run in the order they were asked for, one at a time, on one connection (as the
  SQLite engine's do): a store's read-then-write (a roster version, an offline message's
  place in the queue) needs no more than the row locks the stores ask for
  (``SELECT ... FOR UPDATE`` on the account), and xmppdctl writing at the same time from
  its own process takes turns on those locks. A deadlock or serialization failure with
  such a process is retried, the transaction run again from the start.
- Reads run on a small pool of read-only connections, each in one REPEATABLE READ
  transaction (one consistent state, as an SQLite read transaction sees), in parallel. A
  read never overtakes a write asked for before it: it waits for that write to end.

The dialect (``storage.POSTGRESQL``) does the rest: ``%s`` placeholders, identity columns,
BYTEA, text compared byte by byte as SQLite does (``COLLATE "C"``: archive positions are
compared as strings), and an advisory lock so that two processes never migrate at once.
"""

from __future__ import annotations

from twisted.enterprise import adbapi
from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IStorage
from xmppd.logs import get_logger
from xmppd.probes import STORAGE
from xmppd.storage import POSTGRESQL, SchemaError
from xmppd.storage.migrate import current_version, load_migrations, migrate
from xmppd.storage.stores import Stores

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # reported when the engine is opened: SQLite users do not need it
    psycopg = None

log = get_logger(__name__)

READERS = 4  # read connections (and threads): reads are short, the CPUs are few
WRITE_ATTEMPTS = 5  # a transaction chosen as a deadlock victim is run again this many times
CONNECT_TIMEOUT = 10  # seconds: a server that does not answer fails the open, not hangs it


def describe_dsn(dsn: str) -> str:
    """``dsn`` for logs and errors: host, port, database and user, never the password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "postgresql (unparsable dsn)"
    host = parts.get("host") or "local socket"
    where = f"{host}:{parts['port']}" if parts.get("port") else host
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{where}/{parts.get('dbname', '')}"


def check_dsn(dsn: str) -> None:
    """ValueError when ``dsn`` is no libpq connection string or URI (or psycopg is missing)."""
    if psycopg is None:
        raise ValueError("needs psycopg 3: pip install 'xmppd[postgresql]'")
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:  # its message may quote the string, password and all
        raise ValueError("not a PostgreSQL connection string (\"host=... dbname=... user=...\""
                         " or a postgresql:// URI)") from None


def _configure(connection, read_only: bool) -> None:
    """Every new connection: transactions the engine commits itself, reads read-only and
    REPEATABLE READ, and UTC (nothing stores times as SQL types, but psql users see it)."""
    connection.autocommit = False
    if read_only:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    connection.commit()


def _configure_writer(connection) -> None:
    _configure(connection, read_only=False)


def _configure_reader(connection) -> None:
    _configure(connection, read_only=True)


@implementer(IStorage)
class PostgreSQLStorage(Stores):
    """One PostgreSQL database, named by a libpq ``dsn`` ("host=... dbname=..." or a URI)."""

    dialect = POSTGRESQL

    def __init__(self, dsn: str, reactor=None, readers: int = READERS) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.dsn = dsn
        self._reactor = reactor
        self._readers = readers
        self._writer: adbapi.ConnectionPool | None = None
        self._reader: adbapi.ConnectionPool | None = None
        self._writes_asked = 0  # writes handed to the writer, and of those the ones ended:
        self._writes_ended = 0  # they end in the order asked (one thread, one queue)
        self._waiting_reads: list[tuple[int, defer.Deferred]] = []
        super().__init__()

    @property
    def dbapi(self):
        """psycopg: the stores catch its DB-API errors (IntegrityError...)."""
        return psycopg

    def __repr__(self) -> str:
        return f"<PostgreSQLStorage {describe_dsn(self.dsn)}>"

    @defer.inlineCallbacks
    def open(self):
        """Connect and migrate; fires with the schema version. A failed open leaves it closed."""
        if psycopg is None:
            raise RuntimeError("the postgresql backend needs psycopg 3: "
                               "pip install 'xmppd[postgresql]'")
        if self._writer is not None:
            raise RuntimeError(f"{self!r}: storage is already open")
        where = describe_dsn(self.dsn)
        common = dict(connect_timeout=CONNECT_TIMEOUT, cp_reactor=self._reactor,
                      cp_reconnect=True, cp_good_sql="SELECT 1")
        self._writer = adbapi.ConnectionPool("psycopg", self.dsn, cp_min=1, cp_max=1,
                                             cp_openfun=_configure_writer, **common)
        self._reader = adbapi.ConnectionPool("psycopg", self.dsn, cp_min=1,
                                             cp_max=self._readers,
                                             cp_openfun=_configure_reader, **common)
        try:
            version = yield migrate(self, load_migrations(), now=self.now)
        except SchemaError as error:
            self._disconnect()
            raise SchemaError(f"{where}: {error}") from None
        except psycopg.OperationalError as error:
            self._disconnect()
            reason = " ".join(str(error).split())  # libpq's hints come on lines of their own
            raise RuntimeError(f"{where}: cannot connect: {reason}") from None
        except BaseException:
            self._disconnect()
            raise
        log.info("storage {where} open at schema version {version}", where=where,
                 version=version)
        return version

    def close(self):
        """Disconnect (reads and writes still queued run first: adbapi joins its threads)."""
        self._disconnect()
        return defer.succeed(None)

    def schema_version(self):
        return self.read(current_version, self.dialect)

    def now(self) -> float:
        return self._reactor.seconds()

    def after_copy(self):
        """After rows were copied in with their ids (xmppd.storage.copy): move every identity
        column's generator past the largest id, so that the next row gets a new one."""
        return self.write(_restart_identities)

    def read(self, function, *args):
        observe = STORAGE.observe  # timed when a probe is set (xmppd.probes)
        if observe is not None and next(STORAGE.ticks):
            return observe("read", self._read, function, *args)
        return self._read(function, *args)

    def _read(self, function, *args):
        """Deferred result of ``function(cursor, *args)`` in one read-only transaction, after
        every write asked for before it has ended."""
        if self._writes_ended == self._writes_asked:
            return self._read_now(function, *args)
        # Behind the writes asked so far, not behind those asked later: a steady stream of
        # writes never starves a read.
        waiting: defer.Deferred = defer.Deferred()
        self._waiting_reads.append((self._writes_asked, waiting))
        return waiting.addCallback(lambda _: self._read_now(function, *args))

    def _read_now(self, function, *args):
        if self._reader is None:
            return defer.fail(RuntimeError(f"{self!r}: storage is not open"))
        return self._reader.runWithConnection(_transaction, function, *args)

    def write(self, function, *args):
        observe = STORAGE.observe
        if observe is not None and next(STORAGE.ticks):
            return observe("write", self._write, function, *args)
        return self._write(function, *args)

    def _write(self, function, *args):
        """Deferred result of ``function(cursor, *args)`` in a write transaction on the
        writing connection: committed on return, rolled back on error."""
        if self._writer is None:
            return defer.fail(RuntimeError(f"{self!r}: storage is not open"))
        self._writes_asked += 1
        d = self._writer.runWithConnection(_transaction, function, *args)
        return d.addBoth(self._write_ended)

    def _write_ended(self, result):
        self._writes_ended += 1
        ready = [w for asked, w in self._waiting_reads if asked <= self._writes_ended]
        self._waiting_reads = [(asked, w) for asked, w in self._waiting_reads
                               if asked > self._writes_ended]
        for waiting in ready:
            waiting.callback(None)
        return result

    def _disconnect(self) -> None:
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        for pool in (writer, reader):
            if pool is not None:
                pool.close()
        waiting, self._waiting_reads = self._waiting_reads, []
        for _, read in waiting:
            read.errback(RuntimeError(f"{self!r}: storage closed"))


def _restart_identities(cursor) -> None:
    cursor.execute("SELECT table_name, column_name FROM information_schema.columns"
                   " WHERE table_schema = current_schema() AND is_identity = 'YES'")
    for table, column in cursor.fetchall():
        cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s),"
                       f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)",
                       (table, column))


def _transaction(connection, function, *args):
    """On a database thread: ``function(cursor, *args)`` in one transaction, committed.

    Run again from the start when PostgreSQL chose it as a deadlock victim (or failed it for
    serialization), and once on a new connection when the connection turned out to be
    broken before the commit (the server restarted, a proxy dropped an idle link): nothing
    of it was committed then, so nothing is done twice. A connection lost during the commit
    fails the call: whether the commit happened is unknown.
    """
    reconnected = False
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        committing = False
        try:
            cursor = connection.cursor()
            try:
                result = function(cursor, *args)
            finally:
                cursor.close()
            committing = True
            connection.commit()
            return result
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
            connection.rollback()
            if attempt == WRITE_ATTEMPTS:
                raise
            log.info("a storage transaction was a deadlock victim: trying again ({attempt})",
                     attempt=attempt)
        except psycopg.OperationalError:
            if committing or reconnected or not connection.broken:
                raise
            log.warn("the storage connection was lost: connecting again")
            connection.reconnect()
            reconnected = True
    raise AssertionError("unreachable")  # pragma: no cover
