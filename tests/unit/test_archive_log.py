"""The message archive's table (xmppd.storage.stores.archive_log) on real SQLite files: ids
from xmppd.mam.ids are positions, so order, paging both ways, 'with', time ranges (found by
position), id bounds, ids, unknown ids, removal, retention and account deletion; entries
of the generic archive from before migration 0005 are adopted with their ids; a query by
time uses the position key, not a scan."""

from __future__ import annotations

import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from xmppd.interfaces import IArchiveStore
from xmppd.mam.ids import EntryIds
from xmppd.sasl.credentials import derive_all
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchiveQuery
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.net"
START = 1_700_000_000.0


class ArchiveLogTests(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "xmppd.sqlite3")
        self.storage = SQLiteStorage(self.path)
        self.now = START
        self.ids = EntryIds(clock=lambda: int(self.now * 1e9))
        self.store = SQLArchiveLog(self.storage, "mam")
        return self.storage.open()

    def tearDown(self):
        return self.storage.close()

    def entry(self, n: int, with_jid: str = BOB, advance: float = 1.0) -> ArchiveEntry:
        """Entry ``n`` one second after the one before, its id and stamp from EntryIds."""
        self.now += advance
        entry_id = self.ids()
        return ArchiveEntry(self.ids.stamp, with_jid,
                            f"<message xmlns='jabber:client'><body>{n}</body></message>",
                            entry_id)

    @defer.inlineCallbacks
    def fill(self, count: int, owner: str = ALICE, with_jids=(BOB,)) -> list[ArchiveEntry]:
        entries = [self.entry(n, with_jids[n % len(with_jids)]) for n in range(count)]
        yield self.store.append_many([(owner, each) for each in entries])
        return entries

    def query(self, owner: str = ALICE, **fields):
        return self.store.query(owner, ArchiveQuery(**fields))

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IArchiveStore, self.store))

    @defer.inlineCallbacks
    def test_entries_round_trip_in_order(self):
        entries = yield self.fill(5)
        page = yield self.store.query(ALICE)
        self.assertEqual((page.entries, page.total, page.complete), (tuple(entries), 5, True))
        self.assertEqual((yield self.store.get(ALICE, entries[2].id)), entries[2])
        self.assertIsNone((yield self.store.get(BOB, entries[2].id)))
        self.assertEqual((yield self.store.count(ALICE)), 5)

    @defer.inlineCallbacks
    def test_an_id_not_from_entry_ids_is_refused(self):
        bad = ArchiveEntry(START, BOB, "<message/>", "my-own-id")
        yield self.assertFailure(self.store.append(ALICE, bad), ValueError)
        yield self.assertFailure(self.store.append(ALICE, ArchiveEntry(START, BOB, "<m/>")),
                                 ValueError)
        self.assertEqual((yield self.store.count(ALICE)), 0)

    @defer.inlineCallbacks
    def test_paging_both_ways_walks_the_whole_archive(self):
        ids = [each.id for each in (yield self.fill(230))]
        seen, after = [], None
        while True:
            page = yield self.query(limit=50, after=after)
            seen += [e.id for e in page.entries]
            after = page.last
            self.assertEqual(page.total, 230)
            if page.complete:
                break
        self.assertEqual(seen, ids)
        page = yield self.query(limit=50, last_page=True)
        backwards = [e.id for e in page.entries]
        while not page.complete:
            page = yield self.query(limit=50, before=page.first)
            backwards = [e.id for e in page.entries] + backwards
        self.assertEqual(backwards, ids)

    @defer.inlineCallbacks
    def test_filters(self):
        entries = yield self.fill(30, with_jids=(BOB, CAROL, BOB))
        ids = [each.id for each in entries]
        by_with = yield self.query(with_jid=CAROL, limit=4)
        self.assertEqual([e.id for e in by_with.entries], ids[1::3][:4])
        self.assertEqual((by_with.total, by_with.complete), (10, False))
        # Inclusive at both ends, to the microsecond.
        between = yield self.query(start=entries[10].stamp, end=entries[19].stamp)
        self.assertEqual([e.id for e in between.entries], ids[10:20])
        self.assertEqual((yield self.query(start=entries[10].stamp + 1e-6)).total, 19)
        self.assertEqual((yield self.query(end=entries[4].stamp - 1e-6)).total, 4)
        self.assertEqual((yield self.query(start=entries[-1].stamp + 1)).total, 0)
        bounded = yield self.query(after_id=ids[4], before_id=ids[15], limit=3, last_page=True)
        self.assertEqual(([e.id for e in bounded.entries], bounded.total), (ids[12:15], 10))
        chosen = yield self.query(ids=(ids[20], ids[3]))
        self.assertEqual([e.id for e in chosen.entries], [ids[3], ids[20]])
        self.assertEqual((yield self.query(ids=())).total, 0)

    @defer.inlineCallbacks
    def test_every_id_a_query_names_must_be_there(self):
        entries = yield self.fill(3)
        (bobs,) = yield self.fill(1, owner=BOB)
        almost = entries[0].id[:-1] + ("A" if entries[0].id[-1] != "A" else "B")
        for fields in ({"after": almost}, {"before": "absent"}, {"after_id": bobs.id},
                       {"before_id": ""}, {"ids": (entries[0].id, almost)}):
            yield self.assertFailure(self.query(**fields), ArchiveEntryNotFound)
        error = yield self.assertFailure(self.query(CAROL, after="x"), ArchiveEntryNotFound)
        self.assertEqual((error.owner, error.id), (CAROL, "x"))

    @defer.inlineCallbacks
    def test_remove_trim_clear_and_retention(self):
        entries = yield self.fill(10)
        ids = [each.id for each in entries]
        yield self.fill(4, owner=BOB)
        self.assertEqual((yield self.store.remove(ALICE, [ids[0], ids[0], "absent"])), 1)
        self.assertEqual((yield self.store.trim(ALICE, 8)), 1)
        self.assertEqual([e.id for e in (yield self.store.query(ALICE)).entries], ids[2:])
        self.assertEqual((yield self.store.delete_before(entries[4].stamp, ALICE)), 2)
        self.assertEqual((yield self.store.delete_before(entries[5].stamp)), 1)
        self.assertEqual((yield self.store.count(BOB)), 4)  # written after alice's ten
        self.assertEqual((yield self.store.count(ALICE)), 5)
        self.assertTrue((yield self.store.update_payload(ALICE, ids[9], "<message/>")))
        self.assertEqual((yield self.store.get(ALICE, ids[9])).payload, "<message/>")
        self.assertEqual((yield self.store.clear(ALICE)), 5)
        bobs = (yield self.store.query(BOB)).entries
        self.assertEqual((yield self.store.delete_before(bobs[2].stamp)), 2)
        self.assertEqual([e.id for e in (yield self.store.query(BOB)).entries],
                         [e.id for e in bobs[2:]])

    @defer.inlineCallbacks
    def test_the_newest_position_is_the_greatest_of_any_owner(self):
        self.assertIsNone((yield self.store.newest_position()))
        yield self.fill(3, owner=BOB)
        (last,) = yield self.fill(1)
        self.assertEqual((yield self.store.newest_position()), last.id)

    @defer.inlineCallbacks
    def test_a_deleted_account_takes_its_archive_along(self):
        yield self.storage.users.create_user("alice", "example.org", derive_all("pencil", 64))
        yield self.fill(3)
        yield self.storage.users.delete_user("alice", "example.org")
        self.assertEqual((yield self.store.count(ALICE)), 0)

    @defer.inlineCallbacks
    def test_entries_from_before_the_log_are_adopted_with_their_ids(self):
        generic = self.storage.open_store("mam", "archive")
        pubsub = self.storage.open_store("pubsub:items", "archive")
        old = [ArchiveEntry(START - 100 + n, BOB, f"<message><body>{n}</body></message>")
               for n in range(3)]
        old_ids = yield generic.append_many([(ALICE, each) for each in old])
        yield pubsub.append(ALICE, old[0])
        self.assertEqual((yield self.store.adopt()), 3)
        self.assertEqual((yield self.store.adopt()), 0)
        self.assertEqual((yield generic.count(ALICE)), 0)
        self.assertEqual((yield pubsub.count(ALICE)), 1)  # another store's entries stay
        new = yield self.fill(2)
        page = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in page.entries], old_ids + [e.id for e in new])
        self.assertEqual(page.entries[0].stamp, START - 100)
        after_old = yield self.query(after=old_ids[1], limit=2)
        self.assertEqual([e.id for e in after_old.entries], [old_ids[2], new[0].id])
        self.assertEqual((yield self.query(start=START - 99)).total, 4)
        self.assertEqual((yield self.store.get(ALICE, old_ids[1])).payload, old[1].payload)
        self.assertEqual((yield self.store.remove(ALICE, [old_ids[0]])), 1)

    @defer.inlineCallbacks
    def test_queries_use_the_key_not_a_scan(self):
        yield self.fill(3)
        connection = sqlite3.connect(self.path)
        try:
            plans = {}
            for name, where in (
                ("time", "scope_id = 1 AND stamp >= 5 AND position >= 'a' AND position < 'b'"),
                ("id", "scope_id = 1 AND ((position = 'x' AND entry_id IS NULL)"
                       " OR entry_id = 'x')"),
                ("with", "scope_id = 1 AND with_jid = 'b'"),
            ):
                rows = connection.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM store_archive_log WHERE {where}"
                ).fetchall()
                plans[name] = " ".join(row[-1] for row in rows)
        finally:
            connection.close()
        for name, plan in plans.items():
            self.assertNotRegex(plan, r"SCAN store_archive_log(?! USING)", (name, plan))
            self.assertIn("USING", plan, (name, plan))
