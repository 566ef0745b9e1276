"""The SQLite engine: the store contracts, migrations, the file on disk, PLAIN checks."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.storage_contract import (
    FAST,
    IncidentStoreContract,
    OfflineStoreContract,
    RosterStoreContract,
    ServerRosterStoreContract,
    UserStoreContract,
)
from xmppd.interfaces import IAuthBackend
from xmppd.sasl.credentials import derive_all, derive_credentials
from xmppd.storage import SQLITE, Dialect, SchemaError, auth, open_storage
from xmppd.storage.auth import StorageAuthBackend
from xmppd.storage.migrate import Migration, load_migrations, migrate
from xmppd.storage.records import RosterItem, RosterSnapshot
from xmppd.storage.sqlite import SQLiteStorage

PASSWORD = "a very distinctive passphrase"


class MemoryUserStoreTests(UserStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(":memory:")


class FileUserStoreTests(UserStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "var", "xmppd.sqlite3"))


class MemoryRosterStoreTests(RosterStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(":memory:")


class FileRosterStoreTests(RosterStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite3"))


class MemoryOfflineStoreTests(OfflineStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(":memory:")


class FileOfflineStoreTests(OfflineStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite3"))


class MemoryServerRosterStoreTests(ServerRosterStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(":memory:")


class FileServerRosterStoreTests(ServerRosterStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite3"))


class MemoryIncidentStoreTests(IncidentStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(":memory:")


class FileIncidentStoreTests(IncidentStoreContract, unittest.TestCase):
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite3"))


def raw_query(path: str, query: str) -> list[tuple]:
    """Look at the file as an operator with the sqlite3 shell would, behind the engine's back."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


class SQLiteFileTests(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "nested", "dir", "xmppd.sqlite3")

    @defer.inlineCallbacks
    def opened(self, path=None):
        storage = SQLiteStorage(path or self.path)
        yield storage.open()
        self.addCleanup(storage.close)
        return storage

    @defer.inlineCallbacks
    def test_open_creates_the_directory_and_records_migrations(self):
        storage = yield self.opened()
        yield storage.close()
        self.assertTrue(os.path.isfile(self.path))
        recorded = raw_query(self.path, "SELECT version, name FROM schema_version ORDER BY version")
        self.assertEqual(recorded, [(m.version, m.name) for m in load_migrations()])
        self.assertEqual(recorded[0], (1, "init"))

    @defer.inlineCallbacks
    def test_reads_of_a_file_answer_at_once_and_see_every_committed_write(self):
        storage = yield self.opened()
        yield storage.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        exists = storage.users.user_exists("alice", "example.org")
        self.assertTrue(exists.called)  # no trip through the database thread
        self.assertTrue((yield exists))
        # A write made by another process (xmppdctl) while the server runs is seen too.
        connection = sqlite3.connect(self.path)
        connection.execute("DELETE FROM users")
        connection.commit()
        connection.close()
        self.assertFalse((yield storage.users.user_exists("alice", "example.org")))

    @defer.inlineCallbacks
    def test_a_read_asked_for_after_a_write_sees_it_even_before_it_is_committed(self):
        storage = yield self.opened()
        created = storage.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        exists = storage.users.user_exists("alice", "example.org")  # the write is still queued
        self.assertTrue((yield exists))
        yield created
        self.assertTrue(storage.users.user_exists("alice", "example.org").called)

    @defer.inlineCallbacks
    def test_a_failing_read_fails_its_deferred_and_reads_go_on(self):
        storage = yield self.opened()

        def broken(cursor):
            cursor.execute("SELECT no_such_column FROM users")

        yield self.assertFailure(storage.read(broken), sqlite3.OperationalError)

        def sneaky_write(cursor):
            cursor.execute("DELETE FROM users")

        yield self.assertFailure(storage.read(sneaky_write), sqlite3.OperationalError)
        self.assertFalse((yield storage.users.user_exists("alice", "example.org")))

    @defer.inlineCallbacks
    def test_only_the_owner_can_read_the_keys(self):
        storage = yield self.opened()
        yield storage.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        files = list(Path(self.path).parent.iterdir())
        self.assertIn(Path(self.path + "-wal"), files)
        for file in files:
            self.assertEqual(stat.S_IMODE(file.stat().st_mode), 0o600, file)

    @defer.inlineCallbacks
    def test_database_is_in_wal_mode_with_foreign_keys_enforced(self):
        storage = yield self.opened()
        self.assertEqual(raw_query(self.path, "PRAGMA journal_mode"), [("wal",)])
        pragmas = yield storage.read(
            lambda cursor: [
                cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("foreign_keys", "busy_timeout", "synchronous")
            ]
        )
        self.assertEqual(pragmas[0], 1)
        self.assertGreater(pragmas[1], 0)
        self.assertEqual(pragmas[2], 2)  # FULL: every commit is on disk when it returns

    @defer.inlineCallbacks
    def test_reopening_keeps_the_data(self):
        storage = yield self.opened()
        credentials = derive_all(PASSWORD, FAST)
        yield storage.users.create_user("alice", "example.org", credentials)
        yield storage.close()

        again = yield self.opened()
        self.assertEqual((yield again.users.list_users()), ["alice@example.org"])
        self.assertEqual(
            (yield again.users.get_credentials("alice", "example.org", "sha-256")),
            next(c for c in credentials if c.hash_name == "sha-256"),
        )
        self.assertEqual(
            len(raw_query(self.path, "SELECT * FROM schema_version")), len(load_migrations())
        )

    @defer.inlineCallbacks
    def test_a_newer_schema_refuses_to_open(self):
        storage = yield self.opened()
        yield storage.close()
        connection = sqlite3.connect(self.path)
        with connection:
            connection.execute("INSERT INTO schema_version VALUES (999, 'from_the_future', 0)")
        connection.close()

        newer = SQLiteStorage(self.path)
        error = yield self.assertFailure(newer.open(), SchemaError)
        self.assertIn("999", str(error))
        self.assertIn(self.path, str(error))
        # It stays closed rather than half-open.
        yield self.assertFailure(newer.users.list_users(), RuntimeError)

    @defer.inlineCallbacks
    def test_the_password_is_nowhere_in_the_files(self):
        storage = yield self.opened()
        yield storage.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        yield storage.close()
        folder = Path(self.path).parent
        files = list(folder.iterdir())
        self.assertIn(Path(self.path), files)
        for file in files:
            self.assertNotIn(PASSWORD.encode("utf-8"), file.read_bytes(), file)

    @defer.inlineCallbacks
    def test_deleting_a_user_leaves_no_credentials_behind(self):
        storage = yield self.opened()
        yield storage.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        yield storage.users.create_user("bob", "example.org", derive_all(PASSWORD, FAST))
        yield storage.users.delete_user("alice", "example.org")
        yield storage.close()
        self.assertEqual(
            raw_query(self.path, "SELECT u.localpart FROM scram_credentials c"
                                 " LEFT JOIN users u ON u.id = c.user_id"),
            [("bob",), ("bob",)],
        )

    @defer.inlineCallbacks
    def test_two_processes_share_the_file(self):
        # The server and xmppdctl each open the file; both migrate, only one applies anything.
        server = yield self.opened()
        ctl = yield self.opened(self.path)
        yield ctl.users.create_user("alice", "example.org", derive_all(PASSWORD, FAST))
        yield ctl.close()
        self.assertTrue((yield server.users.user_exists("alice", "example.org")))
        self.assertEqual(
            len(raw_query(self.path, "SELECT * FROM schema_version")), len(load_migrations())
        )

    @defer.inlineCallbacks
    def test_using_a_closed_storage_fails_clearly(self):
        storage = SQLiteStorage(self.path)
        error = yield self.assertFailure(storage.users.user_exists("a", "b"), RuntimeError)
        self.assertIn("not open", str(error))

    @defer.inlineCallbacks
    def test_opening_twice_fails(self):
        storage = yield self.opened()
        yield self.assertFailure(storage.open(), RuntimeError)

    @defer.inlineCallbacks
    def test_close_is_idempotent(self):
        storage = yield self.opened()
        yield storage.close()
        yield storage.close()


class MigrationFilesTests(unittest.TestCase):
    def folder(self, files: dict[str, str]) -> Path:
        folder = Path(self.mktemp())
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        return folder

    def test_migrations_load_in_order_and_skip_other_files(self):
        folder = self.folder(
            {"0002_more.sql": "B;", "0001_init.sql": "A;", "README": "not sql"}
        )
        self.assertEqual(
            load_migrations(folder), [Migration(1, "init", "A;"), Migration(2, "more", "B;")]
        )

    def test_a_gap_in_the_numbering_is_refused(self):
        folder = self.folder({"0001_init.sql": "", "0003_later.sql": ""})
        error = self.assertRaises(SchemaError, load_migrations, folder)
        self.assertIn("0003_later.sql", str(error))

    def test_a_badly_named_file_is_refused(self):
        folder = self.folder({"1_init.sql": ""})
        self.assertRaises(SchemaError, load_migrations, folder)

    def test_statements_drop_comments_and_fill_type_tokens(self):
        migration = Migration(
            1, "t", "-- a comment; with a semicolon\nCREATE TABLE t (id {serial}, b {bytes});\n\n"
        )
        self.assertEqual(
            migration.statements(SQLITE), ["CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)"]
        )

    @defer.inlineCallbacks
    def test_a_failing_migration_leaves_no_trace(self):
        storage = SQLiteStorage(":memory:")
        yield storage.open()
        self.addCleanup(storage.close)
        shipped = load_migrations()
        broken = Migration(len(shipped) + 1, "broken", "CREATE TABLE extra (a INTEGER);\nBOGUS;")
        yield self.assertFailure(migrate(storage, [*shipped, broken]), sqlite3.OperationalError)
        self.assertEqual((yield storage.schema_version()), len(shipped))
        tables = yield storage.read(
            lambda cursor: cursor.execute("SELECT name FROM sqlite_master").fetchall()
        )
        self.assertNotIn(("extra",), tables)

        fixed = Migration(broken.version, "fixed", "CREATE TABLE extra (a INTEGER)")
        self.assertEqual((yield migrate(storage, [*shipped, fixed])), fixed.version)

    def test_shipped_migrations_never_mention_a_password_column(self):
        for migration in load_migrations():
            self.assertNotIn("password", migration.text.split("--")[0].lower())
            for statement in migration.statements(SQLITE):
                self.assertNotIn("password", statement.lower())


class DialectTests(unittest.TestCase):
    percent = Dialect("test", "%s", {}, None)

    def test_sqlite_keeps_question_marks(self):
        self.assertEqual(SQLITE.sql("SELECT ? , ?"), "SELECT ? , ?")

    def test_other_placeholder_styles_are_converted(self):
        self.assertEqual(self.percent.sql("WHERE a = ? AND b = ?"), "WHERE a = %s AND b = %s")

    def test_upsert_updates_the_non_key_columns(self):
        self.assertEqual(
            self.percent.upsert("t", ("k", "a", "b"), key=("k",)),
            "INSERT INTO t (k, a, b) VALUES (%s, %s, %s)"
            " ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b",
        )


def storage_config(backend="sqlite", path=None, data_dir="var", dsn=None):
    return SimpleNamespace(
        storage=SimpleNamespace(backend=backend, path=path, dsn=dsn),
        server=SimpleNamespace(data_dir=Path(data_dir), domains=["example.org"]),
    )


class OpenStorageTests(unittest.TestCase):
    def test_sqlite_defaults_to_a_file_in_the_data_dir(self):
        storage = open_storage(storage_config(data_dir="/srv/xmppd"))
        self.assertIsInstance(storage, SQLiteStorage)
        self.assertEqual(storage.path, "/srv/xmppd/xmppd.sqlite")

    def test_sqlite_path_from_the_config_wins(self):
        storage = open_storage(storage_config(path=Path("/tmp/x/users.db")))
        self.assertEqual(storage.path, "/tmp/x/users.db")

    def test_postgresql_connects_to_the_dsn(self):
        from xmppd.storage.postgresql import PostgreSQLStorage

        storage = open_storage(storage_config("postgresql", dsn="host=db dbname=xmppd"))
        self.assertIsInstance(storage, PostgreSQLStorage)
        self.assertEqual(storage.dsn, "host=db dbname=xmppd")

    def test_unknown_backend_is_named(self):
        error = self.assertRaises(RuntimeError, open_storage, storage_config("mongo"))
        self.assertIn("'mongo'", str(error))


class StorageAuthBackendTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.storage = SQLiteStorage(":memory:")
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.credentials = derive_all(PASSWORD, FAST)
        yield self.storage.users.create_user("alice", "example.org", self.credentials)
        self.auth = StorageAuthBackend(self.storage.users)

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IAuthBackend, self.auth))

    @defer.inlineCallbacks
    def test_scram_credentials_come_from_the_store(self):
        for stored in self.credentials:
            fetched = yield self.auth.scram_credentials("alice", "example.org", stored.hash_name)
            self.assertEqual(fetched, stored)
        self.assertIsNone((yield self.auth.scram_credentials("bob", "example.org", "sha-256")))

    @defer.inlineCallbacks
    def test_right_password_passes(self):
        self.assertIs((yield self.auth.check_password("alice", "example.org", PASSWORD)), True)

    @defer.inlineCallbacks
    def test_the_key_derivation_runs_off_the_reactor_thread(self):
        threads_used = []
        derive = auth.derive_credentials

        def recording(*args, **kwargs):
            threads_used.append(threading.current_thread())
            return derive(*args, **kwargs)

        self.patch(auth, "derive_credentials", recording)
        self.assertIs((yield self.auth.check_password("alice", "example.org", PASSWORD)), True)
        self.assertEqual(len(threads_used), 1)
        self.assertIsNot(threads_used[0], threading.main_thread())

    @defer.inlineCallbacks
    def test_wrong_password_fails(self):
        for wrong in ("", PASSWORD.upper(), PASSWORD + " "):
            self.assertIs((yield self.auth.check_password("alice", "example.org", wrong)), False)

    @defer.inlineCallbacks
    def test_unknown_account_fails(self):
        self.assertIs((yield self.auth.check_password("bob", "example.org", PASSWORD)), False)
        self.assertIs((yield self.auth.check_password("alice", "example.net", PASSWORD)), False)

    @defer.inlineCallbacks
    def test_an_empty_password_does_not_open_an_unknown_account(self):
        # The stand-in keys for unknown users derive from "": they must still never match.
        self.assertIs((yield self.auth.check_password("nobody", "example.org", "")), False)

    @defer.inlineCallbacks
    def test_uses_the_stored_salt_and_iterations(self):
        odd = derive_credentials(PASSWORD, "sha-256", salt=b"salt", iterations=FAST + 7)
        yield self.storage.users.set_credentials("alice", "example.org", [odd])
        self.assertIs((yield self.auth.check_password("alice", "example.org", PASSWORD)), True)


ALICE = ("alice", "example.org")
TABLES_OF_AN_ACCOUNT = (
    "scram_credentials",
    "roster_items",
    "roster_versions",
    "subscription_requests",
    "offline_messages",
)


class SQLiteIMFileTests(unittest.TestCase):
    """Rosters and offline messages in a real file, as the server and xmppdctl share it."""

    def setUp(self):
        self.path = os.path.join(self.mktemp(), "xmppd.sqlite3")

    @defer.inlineCallbacks
    def opened(self):
        storage = SQLiteStorage(self.path)
        yield storage.open()
        self.addCleanup(storage.close)
        return storage

    @defer.inlineCallbacks
    def with_alice(self):
        storage = yield self.opened()
        yield storage.users.create_user(*ALICE, derive_all(PASSWORD, FAST))
        return storage

    @defer.inlineCallbacks
    def test_a_stored_message_is_committed_when_store_fires(self):
        storage = yield self.with_alice()
        self.assertIs((yield storage.offline.store(*ALICE, "<message/>", 7.0, 10)), True)
        # Another connection sees it at once: nothing waits in a transaction or a buffer.
        self.assertEqual(
            raw_query(self.path, "SELECT stanza, stamp FROM offline_messages"),
            [("<message/>", 7.0)],
        )

    @defer.inlineCallbacks
    def test_messages_and_rosters_survive_closing_and_reopening(self):
        storage = yield self.with_alice()
        yield storage.offline.store(*ALICE, "<message>1</message>", 1.0, 10)
        yield storage.offline.store(*ALICE, "<message>2</message>", 2.0, 10)
        item = RosterItem("bob@example.org", "Bob", ("Friends",), "both")
        yield storage.roster.put_item(*ALICE, item)
        yield storage.roster.add_request(*ALICE, "eve@example.org", "<presence/>")
        before = yield storage.offline.fetch(*ALICE)
        yield storage.close()

        again = yield self.opened()
        self.assertEqual((yield again.offline.fetch(*ALICE)), before)
        self.assertEqual((yield again.roster.get_roster(*ALICE)), RosterSnapshot(1, (item,)))
        self.assertEqual(
            (yield again.roster.get_requests(*ALICE)), [("eve@example.org", "<presence/>")]
        )

    @defer.inlineCallbacks
    def test_deleting_an_account_leaves_no_row_behind(self):
        storage = yield self.with_alice()
        yield storage.users.create_user("bob", "example.org", derive_all(PASSWORD, FAST))
        for localpart in ("alice", "bob"):
            account = (localpart, "example.org")
            yield storage.roster.put_item(*account, RosterItem("carol@example.org"))
            yield storage.roster.add_request(*account, "carol@example.org", "<presence/>")
            yield storage.offline.store(*account, "<message/>", 1.0, 10)
        yield storage.users.delete_user(*ALICE)
        yield storage.close()
        (bob,) = raw_query(self.path, "SELECT id FROM users")
        for table in TABLES_OF_AN_ACCOUNT:
            owners = {row[0] for row in raw_query(self.path, f"SELECT user_id FROM {table}")}
            self.assertEqual(owners, set(bob), table)

    @defer.inlineCallbacks
    def test_two_storages_writing_at_once_lose_nothing(self):
        # The server and xmppdctl each have their own connection (and thread) on one file.
        server = yield self.with_alice()
        ctl = yield self.opened()
        rounds = 25
        writes = []
        for n in range(rounds):
            for name, storage in (("server", server), ("ctl", ctl)):
                writes.append(storage.offline.store(*ALICE, f"<m>{name} {n}</m>", n, 1000))
                item = RosterItem(f"{name}{n}@example.org")
                writes.append(storage.roster.put_item(*ALICE, item))
        results = yield defer.gatherResults(writes)

        self.assertEqual(results[0::2], [True] * 2 * rounds)
        # Each roster change got a version of its own: none was lost or counted twice.
        self.assertEqual(sorted(results[1::2]), list(range(1, 2 * rounds + 1)))
        for storage in (server, ctl):
            messages = yield storage.offline.fetch(*ALICE)
            self.assertEqual(len({id for id, _, _ in messages}), 2 * rounds)
            self.assertEqual(
                sorted(stanza for _, stanza, _ in messages),
                sorted(f"<m>{name} {n}</m>" for name in ("server", "ctl") for n in range(rounds)),
            )
            snapshot = yield storage.roster.get_roster(*ALICE)
            self.assertEqual((snapshot.version, len(snapshot.items)), (2 * rounds, 2 * rounds))

    @defer.inlineCallbacks
    def test_two_storages_racing_for_the_last_places_respect_the_limit(self):
        server = yield self.with_alice()
        ctl = yield self.opened()
        stores = [
            storage.offline.store(*ALICE, "<message/>", 1.0, 5)
            for _ in range(6)
            for storage in (server, ctl)
        ]
        results = yield defer.gatherResults(stores)
        self.assertEqual(sorted(results), [False] * 7 + [True] * 5)
        self.assertEqual((yield server.offline.count(*ALICE)), 5)

    @defer.inlineCallbacks
    def test_the_schema_refuses_what_the_code_never_writes(self):
        # The checks in the tables guard the file against other writers (an operator's shell).
        yield self.with_alice()
        connection = sqlite3.connect(self.path)
        self.addCleanup(connection.close)
        connection.execute("PRAGMA foreign_keys = ON")
        (alice_id,) = connection.execute("SELECT id FROM users").fetchone()
        bad_rows = [
            ("roster_items", (alice_id, "b@ex.org", None, "[]", "both ways", 0, 0)),
            ("roster_items", (alice_id, "b@ex.org", None, "[]", "none", 2, 0)),
            ("roster_items", (alice_id + 1, "b@ex.org", None, "[]", "none", 0, 0)),
            ("roster_versions", (alice_id + 1, 1)),
        ]
        for table, row in bad_rows:
            marks = ", ".join("?" for _ in row)
            try:
                with connection:
                    connection.execute(f"INSERT INTO {table} VALUES ({marks})", row)
            except sqlite3.IntegrityError:
                continue
            self.fail(f"{table} accepted {row}")


class RosterItemTests(unittest.TestCase):
    def test_defaults_are_an_item_with_no_subscription(self):
        item = RosterItem("bob@example.org")
        self.assertEqual(
            (item.name, item.groups, item.subscription, item.pending_out, item.approved),
            (None, (), "none", False, False),
        )

    def test_items_are_values(self):
        same = [RosterItem("a@ex.org", groups=("x",)) for _ in range(2)]
        self.assertEqual(same[0], same[1])
        self.assertEqual(len({RosterItem("a@ex.org"), RosterItem("a@ex.org")}), 1)

    def test_bad_fields_are_refused_by_name(self):
        bad = [
            (dict(contact=""), ValueError, "contact"),
            (dict(contact=None), ValueError, "contact"),
            (dict(name=5), TypeError, "name"),
            (dict(groups="Friends"), TypeError, "groups"),
            (dict(groups=["Friends"]), TypeError, "groups"),
            (dict(groups=("Friends", None)), TypeError, "groups"),
            (dict(subscription="remove"), ValueError, "subscription"),
            (dict(pending_out=1), TypeError, "pending_out"),
            (dict(approved="yes"), TypeError, "approved"),
        ]
        for fields, exception, field in bad:
            fields = {"contact": "bob@example.org", **fields}
            error = self.assertRaises(exception, RosterItem, **fields)
            self.assertIn(f"RosterItem.{field}", str(error))
