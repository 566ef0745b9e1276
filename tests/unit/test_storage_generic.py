"""The generic stores (keyval, map, archive) on the SQLite engine, in memory and in a file,
and how plugins open them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from tests.generic_store_contract import (
    ALICE,
    BOB,
    ArchiveStoreContract,
    KeyValStoreContract,
    MapStoreContract,
    entry,
)
from tests.helpers import ServerFixture
from tests.unit.test_storage_sqlite import raw_query
from xmppd.registry import PluginContext
from xmppd.sasl.credentials import derive_all
from xmppd.storage.sqlite import SQLiteStorage

FAST = 64


class InMemory:
    def make_storage(self):
        return SQLiteStorage(":memory:")


class InAFile:
    def make_storage(self):
        return SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite3"))


class MemoryKeyValStoreTests(InMemory, KeyValStoreContract, unittest.TestCase):
    pass


class FileKeyValStoreTests(InAFile, KeyValStoreContract, unittest.TestCase):
    pass


class MemoryMapStoreTests(InMemory, MapStoreContract, unittest.TestCase):
    pass


class FileMapStoreTests(InAFile, MapStoreContract, unittest.TestCase):
    pass


class MemoryArchiveStoreTests(InMemory, ArchiveStoreContract, unittest.TestCase):
    pass


class FileArchiveStoreTests(InAFile, ArchiveStoreContract, unittest.TestCase):
    pass


class SQLiteGenericFileTests(unittest.TestCase):
    """What the contracts cannot see: the rows in the file, and reads that never wait."""

    @defer.inlineCallbacks
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "xmppd.sqlite3")
        self.storage = SQLiteStorage(self.path)
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        for account in (ALICE, BOB):
            yield self.storage.users.create_user(*account.split("@"), derive_all("x", FAST))

    @defer.inlineCallbacks
    def test_deleting_an_account_leaves_no_row_behind(self):
        for name, kind in (("vcard", "keyval"), ("push", "map"), ("mam", "archive")):
            store = self.storage.open_store(name, kind)
            for owner in (ALICE, BOB):
                if kind == "archive":
                    yield store.append(owner, entry(1))
                elif kind == "map":
                    yield store.set(owner, "key", 1)
                else:
                    yield store.set(owner, 1)
        yield self.storage.users.delete_user("alice", "example.org")
        yield self.storage.close()
        self.assertEqual(raw_query(self.path, "SELECT DISTINCT owner FROM store_scopes"), [(BOB,)])
        for table in ("store_keyval", "store_map", "store_archive"):
            owners = raw_query(self.path, f"SELECT DISTINCT s.owner FROM {table} t"
                                          " LEFT JOIN store_scopes s ON s.id = t.scope_id")
            self.assertEqual(owners, [(BOB,)], table)

    @defer.inlineCallbacks
    def test_reads_of_a_file_answer_at_once(self):
        archive = self.storage.open_store("mam", "archive")
        yield archive.append_many([(ALICE, entry(n)) for n in range(3)])
        page = archive.query(ALICE)
        self.assertTrue(page.called)  # inline on the reading connection, no thread hand-off
        self.assertEqual((yield page).total, 3)

    @defer.inlineCallbacks
    def test_a_read_asked_for_after_a_write_sees_it(self):
        keyval = self.storage.open_store("private", "keyval")
        written = keyval.set(ALICE, {"n": 1})
        self.assertEqual((yield keyval.get(ALICE)), {"n": 1})
        yield written

    @defer.inlineCallbacks
    def test_a_batch_is_one_transaction(self):
        archive = self.storage.open_store("mam", "archive")
        batch = [(ALICE, entry(1, id="same")), (ALICE, entry(2, id="same"))]
        yield archive.append_many(batch)
        self.assertEqual(raw_query(self.path, "SELECT entry_id, stamp FROM store_archive"),
                         [("same", 1002.0)])


    def test_rows_without_a_scope_are_refused(self):
        # The cascade that deletes an account's data needs every row tied to a scope.
        connection = sqlite3.connect(self.path)
        self.addCleanup(connection.close)
        connection.execute("PRAGMA foreign_keys = ON")
        for statement in ("INSERT INTO store_keyval VALUES (999, '1')",
                          "INSERT INTO store_map VALUES (999, 'k', '1')",
                          "INSERT INTO store_archive (scope_id, entry_id, stamp, with_jid,"
                          " payload) VALUES (999, 'i', 1.0, 'b@ex.org', '<m/>')"):
            with self.assertRaises(sqlite3.IntegrityError):
                with connection:
                    connection.execute(statement)


class OpenStoreTests(unittest.TestCase):
    def setUp(self):
        self.storage = SQLiteStorage(":memory:")

    def test_each_kind_opens_its_store(self):
        for kind in ("keyval", "map", "archive"):
            store = self.storage.open_store("test", kind)
            self.assertEqual((store.kind, store.name), (kind, "test"))
            self.assertIn(kind, repr(store))

    def test_an_unknown_kind_is_named(self):
        error = self.assertRaises(ValueError, self.storage.open_store, "test", "keyvalue")
        self.assertIn("'keyvalue'", str(error))
        self.assertIn("'archive'", str(error))

    @defer.inlineCallbacks
    def test_calls_fail_until_the_storage_is_open(self):
        store = self.storage.open_store("test", "keyval")
        error = yield self.assertFailure(store.get(ALICE), RuntimeError)
        self.assertIn("not open", str(error))

    async def test_plugins_open_stores_through_their_context(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        fixture = ServerFixture(directory)
        await fixture.storage.open()
        self.addCleanup(fixture.storage.close)
        ctx = PluginContext("vcard", {}, fixture.server)
        store = ctx.open_store("vcard", "keyval")
        await store.set("pubsub.localhost", "<vCard/>")
        again = PluginContext("other", {}, fixture.server).open_store("vcard", "keyval")
        self.assertEqual(await again.get("pubsub.localhost"), "<vCard/>")
        error = self.assertRaises(ValueError, ctx.open_store, "vcard", "table")
        self.assertIn("'table'", str(error))
        ctx.close()  # nothing to undo: the data stays
        self.assertEqual(await store.get("pubsub.localhost"), "<vCard/>")
