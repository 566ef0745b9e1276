"""Copying a whole database between engines (xmppd.storage.copy, ``xmppdctl migrate-storage``):
SQLite to PostgreSQL and back again, every table row for row, ids kept and new ids past them;
a destination that holds data is refused; no table of a migration is ever left out."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial import unittest

from tests.storage_engines import postgresql
from xmppd.mam.ids import EntryIds
from xmppd.sasl.credentials import derive_all
from xmppd.storage.copy import KEYS, CopyError, _page, copy_storage, tables
from xmppd.storage.postgresql import PostgreSQLStorage
from xmppd.storage.records import ArchiveEntry, IncidentRecord, RosterItem, ServerPeer
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog

FAST = 64
ALICE = "alice@example.org"
BOB = "bob@example.org"


@defer.inlineCallbacks
def fill(storage) -> None:
    """A row in every table, through the stores (a few in the paged ones)."""
    for name in ("alice", "bob", "carol"):
        yield storage.users.create_user(name, "example.org", derive_all("pw", FAST))
    yield storage.users.delete_user("carol", "example.org")  # ids with a gap
    item = RosterItem("bob@example.org", "Bob \u00e9", ("Friends", "Work"), "both", False, True)
    yield storage.roster.put_item("alice", "example.org", item)
    yield storage.roster.add_request("alice", "example.org", "eve@example.net", "<presence/>")
    for n in range(5):
        yield storage.offline.store("bob", "example.org", f"<message>{n}</message>", 10.5 + n, 100)
    yield storage.server_roster.put_peer(ServerPeer("example.org", "example.net", "both"))
    yield storage.incidents.add_incident(IncidentRecord(
        "received", "example.org", "example.net", "i1", "spam", "<report/>", 5.0))
    yield storage.open_store("vcard", "keyval").set(ALICE, {"fn": "Alice"})
    yield storage.open_store("prefs", "map").set_many(ALICE, {"a": 1, "b": [2]})
    yield storage.open_store("pubsub", "archive").append(ALICE, ArchiveEntry(1.0, ALICE, "<i/>"))
    ids, messages = EntryIds(), []
    for n in range(7):
        entry_id = ids()
        messages.append((ALICE, ArchiveEntry(ids.stamp, "bob@example.org", f"<m>{n}</m>",
                                             entry_id)))
    archive = SQLArchiveLog(storage, "mam")
    yield archive.append_many(messages)
    # An entry from before 0005, adopted (its id an alias), and one left in 0005's table.
    yield storage.open_store("mam", "archive").append(ALICE, ArchiveEntry(0.5, BOB, "<old/>"))
    yield archive.adopt()
    yield storage.write(_legacy_row, storage.dialect.sql)


def _legacy_row(cursor, sql) -> None:
    cursor.execute(sql("SELECT id FROM store_scopes WHERE owner = ? AND store = 'mam'"), (ALICE,))
    cursor.execute(sql("INSERT INTO store_archive_log (scope_id, position, stamp, with_jid,"
                       " payload) VALUES (?, ?, ?, ?, ?)"),
                   (cursor.fetchone()[0], "0" * 21, 0.25, BOB, "<older/>"))


@defer.inlineCallbacks
def dump(storage) -> dict:
    """Every table's rows in key order (bytes as bytes, whichever the engine)."""
    everything = {}
    for name in tables():
        columns, rows = yield storage.read(_page, storage.dialect.sql, name, KEYS[name], None,
                                           10_000)
        everything[name] = [dict(zip(columns, (bytes(v) if isinstance(v, memoryview) else v
                                               for v in row), strict=True)) for row in rows]
    return everything


class CopyTests(unittest.TestCase):
    @defer.inlineCallbacks
    def open(self, storage):
        yield storage.open()
        self.addCleanup(storage.close)
        return storage

    def sqlite(self):
        return self.open(SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite")))

    def postgresql(self):
        return self.open(PostgreSQLStorage(postgresql().fresh_dsn()))

    def test_every_table_of_the_migrations_has_a_key(self):
        self.assertEqual(sorted(tables()), sorted(KEYS))

    @defer.inlineCallbacks
    def test_sqlite_to_postgresql_and_back_row_for_row(self):
        source = yield self.sqlite()
        yield fill(source)
        original = yield dump(source)
        self.assertTrue(all(original.values()), [t for t, rows in original.items() if not rows])
        lines = []
        on_postgresql = yield self.postgresql()
        copied = yield copy_storage(source, on_postgresql, say=lines.append, page=2)
        self.assertEqual(copied, {name: len(rows) for name, rows in original.items()})
        self.assertIn("offline_messages: 5 rows", lines)
        self.assertEqual((yield dump(on_postgresql)), original)
        back = yield self.sqlite()
        yield copy_storage(on_postgresql, back, page=3)
        self.assertEqual((yield dump(back)), original)
        # What the stores read back, and new rows: their ids come after the copied ones.
        for storage in (on_postgresql, back):
            snapshot = yield storage.roster.get_roster("alice", "example.org")
            self.assertEqual(snapshot.items[0].name, "Bob \u00e9")
            yield storage.users.create_user("dave", "example.org", derive_all("pw", FAST))
            self.assertEqual((yield storage.users.list_users()),
                             ["alice@example.org", "bob@example.org", "dave@example.org"])
            yield storage.offline.store("bob", "example.org", "<message>new</message>", 99.0, 100)
            kept = yield storage.offline.fetch("bob", "example.org")
            self.assertEqual(len(kept), 6)
            self.assertEqual(len({message[0] for message in kept}), 6)
            mam = yield SQLArchiveLog(storage, "mam").query(ALICE)
            self.assertEqual(mam.total, 8)  # the adopted one too (not 0005's, unadopted)

    @defer.inlineCallbacks
    def test_a_destination_with_data_is_refused_and_kept(self):
        source = yield self.sqlite()
        yield fill(source)
        destination = yield self.postgresql()
        yield destination.users.create_user("zed", "example.org", derive_all("pw", FAST))
        error = yield self.assertFailure(copy_storage(source, destination), CopyError)
        self.assertIn("already holds data (table users)", str(error))
        self.assertEqual((yield destination.users.list_users()), ["zed@example.org"])
