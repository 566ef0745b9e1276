"""The message archive's table (xmppd.storage.stores.archive_log) on real SQLite files: ids
from xmppd.mam.ids are positions, so order, paging both ways, 'with', time ranges (found by
position), id bounds, ids, unknown ids, removal, retention and account deletion; entries
of the generic archive from before migration 0005 are adopted with their ids; a query by
time uses the position key, not a scan."""

from __future__ import annotations

import os
import random
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from xmppd.interfaces import IArchiveStore
from xmppd.mam.ids import EntryIds
from xmppd.sasl.credentials import derive_all
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchivePage, ArchiveQuery
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.net"
DAVE = "dave@example.net"
START = 1_700_000_000.0
# (what, table, condition) a query asks of the packs: each must use an index.
PLANS = (
    ("packs from a position", "store_archive_pack",
     "scope_id = 1 AND first_position >= 'a' AND first_position <= 'b'"),
    ("the pack of a position", "store_archive_pack", "scope_id = 1 AND first_position <= 'a'"),
    ("with", "store_archive_pack_with",
     "scope_id = 1 AND with_jid = 'b' AND first_position >= 'a'"),
    ("an adopted id", "store_archive_pack_alias", "scope_id = 1 AND entry_id = 'x'"),
)


def expected_page(model: list[ArchiveEntry], query: ArchiveQuery) -> ArchivePage:
    """What a query answers, from a plain list of the entries (in archive order)."""
    order = {entry.id: n for n, entry in enumerate(model)}
    result = [entry for entry in model if (
        (query.with_jid is None or entry.with_jid == query.with_jid)
        and (query.start is None or entry.stamp >= query.start)
        and (query.end is None or entry.stamp <= query.end)
        and (query.after_id is None or order[entry.id] > order[query.after_id])
        and (query.before_id is None or order[entry.id] < order[query.before_id])
        and (query.ids is None or entry.id in query.ids))]
    beyond = [entry for entry in result if (
        (query.after is None or order[entry.id] > order[query.after])
        and (query.before is None or order[entry.id] < order[query.before]))]
    limit = len(beyond) if query.limit is None else query.limit
    page = beyond[len(beyond) - limit:] if query.backwards and limit else beyond[:limit]
    return ArchivePage(tuple(page), len(beyond) <= limit, len(result))


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
    def test_entries_of_the_0005_table_are_adopted_with_their_ids(self):
        mine, theirs = self.entry(0), self.entry(1, CAROL)
        yield self.storage.write(self.legacy_rows, [
            (mine.id, None, mine), ("000000000-00000000001", "old-id", theirs)])
        self.assertEqual((yield self.store.adopt()), 2)
        self.assertEqual((yield self.store.adopt()), 0)
        newer = yield self.fill(1)
        page = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in page.entries], ["old-id", mine.id, newer[0].id])
        self.assertEqual((yield self.store.get(ALICE, "old-id")).payload, theirs.payload)
        self.assertEqual((yield self.query(with_jid=CAROL)).total, 1)
        self.assertEqual((yield self.query(after="old-id", limit=1)).entries, (mine,))

    def legacy_rows(self, cursor, rows) -> None:
        """Rows as 0005's table held them (one with an adopted id of its own)."""
        sql = self.storage.dialect.sql
        cursor.execute(sql("INSERT INTO store_scopes (owner, store) VALUES (?, 'mam')"), (ALICE,))
        cursor.execute(sql("SELECT id FROM store_scopes WHERE owner = ?"), (ALICE,))
        scope = cursor.fetchone()[0]
        cursor.executemany(sql(
            "INSERT INTO store_archive_log (scope_id, position, entry_id, stamp, with_jid,"
            " payload) VALUES (?, ?, ?, ?, ?, ?)"),
            [(scope, position, entry_id, e.stamp, e.with_jid, e.payload)
             for position, entry_id, e in rows])

    @defer.inlineCallbacks
    def test_queries_use_the_key_not_a_scan(self):
        yield self.fill(3)
        connection = sqlite3.connect(self.path)
        try:
            plans = {}
            for name, table, where in PLANS:
                rows = connection.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE {where}").fetchall()
                plans[name] = " ".join(row[-1] for row in rows)
        finally:
            connection.close()
        for name, plan in plans.items():
            self.assertNotRegex(plan, r"SCAN store_archive_pack\w*(?! USING)", (name, plan))
            self.assertIn("USING", plan, (name, plan))

    @defer.inlineCallbacks
    def test_the_message_paths_rows_are_packed_one_row_per_owner_and_batch(self):
        rows = []
        for n in range(6):
            entry = self.entry(n, (BOB, CAROL)[n % 2])
            rows.append((ALICE, entry.id, entry.stamp, entry.with_jid, entry.payload))
            rows.append((BOB, *self.row_of(self.entry(n, ALICE))))
        yield self.store.append_rows(rows)
        yield self.store.append_rows(rows[:0])
        packs = yield self.one_row("SELECT COUNT(*), SUM(entries) FROM store_archive_pack")
        withs = yield self.one_row("SELECT COUNT(*) FROM store_archive_pack_with")
        self.assertEqual((packs, withs), ((2, 12), (3,)))
        page = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in page.entries], [row[1] for row in rows[0::2]])
        self.assertEqual(page.entries[0].stamp, rows[0][2])
        self.assertEqual((yield self.query(with_jid=CAROL)).total, 3)

    def one_row(self, sql: str):
        def read(cursor):
            cursor.execute(sql)
            return tuple(cursor.fetchone())
        return self.storage.read(read)

    def row_of(self, entry: ArchiveEntry) -> tuple:
        return (entry.id, entry.stamp, entry.with_jid, entry.payload)

    @defer.inlineCallbacks
    def test_queries_agree_with_a_plain_list_over_many_packs(self):
        """Batches of every size (one entry, several packs' worth), some written out of
        order (merged), stamps a microsecond apart at times: every query gives what a
        filtered list gives."""
        chooser = random.Random(13)
        model: list[ArchiveEntry] = []
        late: list[ArchiveEntry] = []
        for batch in range(40):
            size = chooser.choice((1, 2, 5, 17, 300 if batch == 7 else 40))
            entries = [self.entry(len(model) + n, chooser.choice((BOB, CAROL, DAVE)),
                                  advance=chooser.choice((1.0, 0.5, 1e-6, 2e-6)))
                       for n in range(size)]
            if batch in (35, 36):  # held back: written after newer ones, merged into place
                late += entries
            else:
                yield self.store.append_rows([(ALICE, *self.row_of(e)) for e in entries])
            model += entries
        yield self.store.append_many([(ALICE, e) for e in late])
        ids = [e.id for e in model]
        for _ in range(250):
            fields = {}
            if chooser.random() < 0.4:
                fields["with_jid"] = chooser.choice((BOB, CAROL, DAVE))
            if chooser.random() < 0.3:
                fields["start"] = chooser.choice(model).stamp + chooser.choice((0, 1e-6, -1e-6))
            if chooser.random() < 0.3:
                fields["end"] = chooser.choice(model).stamp + chooser.choice((0, 1e-6, -1e-6))
            if chooser.random() < 0.3:
                fields["after_id"] = chooser.choice(ids)
            if chooser.random() < 0.3:
                fields["before_id"] = chooser.choice(ids)
            if chooser.random() < 0.1:
                fields["ids"] = tuple(chooser.sample(ids, 5))
            fields["limit"] = chooser.choice((None, 0, 1, 10, 50))
            paging = chooser.random()
            if paging < 0.2:
                fields["after"] = chooser.choice(ids)
            elif paging < 0.4:
                fields["before"] = chooser.choice(ids)
            elif paging < 0.5:
                fields["last_page"] = True
            query = ArchiveQuery(**fields)
            page = yield self.store.query(ALICE, query)
            self.assertEqual(page, expected_page(model, query), fields)

    @defer.inlineCallbacks
    def test_removal_and_retention_inside_packs(self):
        entries = [self.entry(n, advance=1e-6 if n % 3 else 1.0) for n in range(700)]
        yield self.store.append_rows([(ALICE, *self.row_of(e)) for e in entries])
        ids = [e.id for e in entries]
        gone = {ids[0], ids[300], ids[301], ids[699]}
        self.assertEqual((yield self.store.remove(ALICE, sorted(gone))), 4)
        kept = [e for e in entries if e.id not in gone]
        self.assertEqual((yield self.store.query(ALICE)).entries, tuple(kept))
        self.assertTrue((yield self.store.update_payload(ALICE, ids[500], "<message/>")))
        self.assertEqual((yield self.store.get(ALICE, ids[500])).payload, "<message/>")
        self.assertEqual((yield self.store.delete_before(entries[400].stamp)),
                         sum(1 for e in kept if e.stamp < entries[400].stamp))
        left = (yield self.store.query(ALICE)).entries
        self.assertTrue(all(e.stamp >= entries[400].stamp for e in left))
        self.assertEqual((yield self.store.trim(ALICE, 10)), len(left) - 10)
        self.assertEqual([e.id for e in (yield self.store.query(ALICE)).entries],
                         [e.id for e in left[-10:]])
