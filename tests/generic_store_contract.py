"""The generic store contracts (IKeyValStore, IMapStore, IArchiveStore), written once and run
against every storage engine.

Mix ``KeyValStoreContract``, ``MapStoreContract`` or ``ArchiveStoreContract`` into a
``twisted.trial.unittest.TestCase`` that defines ``make_storage()`` returning an unopened
IStorage; fixtures go through the interfaces only (``open_store`` and the user store).
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface.verify import verifyObject

from tests.storage_contract import OpenStorage
from xmppd.interfaces import IArchiveStore, IKeyValStore, IMapStore
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchiveEntry, ArchiveQuery

ALICE = "alice@example.org"
BOB = "bob@example.org"
ROOM = "room@conference.example.org"  # an owner that is no account
SERVICE = "pubsub.example.org"

VALUES = [
    {"name": "Jürgen 🦉", "groups": ["a", "b"], "nested": {"n": 1, "f": 1.5, "t": True}},
    ["x", 2, None, False],
    "<query xmlns='jabber:iq:private'><x/></query>",
    "",
    0,
    -3.25,
    True,
    {},
]


class GenericStoreContract(OpenStorage):
    """What the three kinds share: a store per name, per owner; owners need not be accounts,
    and an account's data goes with it."""

    kind = ""

    def open(self, name: str):
        return self.storage.open_store(name, self.kind)

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        yield self.create_users(ALICE, BOB)
        self.store = self.open("test")

    def write(self, store, owner: str, n: int):
        """Give ``owner`` something in ``store``, told apart by ``n``."""
        raise NotImplementedError

    def read(self, store, owner: str):
        """What ``owner`` has in ``store``, comparable; ``self.empty`` when nothing."""
        raise NotImplementedError

    empty = None

    def read_all(self, pairs):
        """What each (store, owner) of ``pairs`` has, in a list."""
        return defer.gatherResults([self.read(store, owner) for store, owner in pairs])

    @defer.inlineCallbacks
    def test_names_and_owners_are_apart(self):
        other = self.open("other")
        yield self.write(self.store, ALICE, 1)
        yield self.write(self.store, BOB, 2)
        yield self.write(other, ALICE, 3)
        yield self.write(self.store, ROOM, 4)
        reads = [(self.store, ALICE), (self.store, BOB), (other, ALICE), (self.store, ROOM)]
        seen = yield self.read_all(reads)
        self.assertEqual(len({repr(s) for s in seen}), 4)
        self.assertEqual((yield self.read(other, BOB)), self.empty)
        # Stores hold no state: another one of the same name and kind sees the same data.
        self.assertEqual((yield self.read(self.open("test"), ALICE)), seen[0])

    @defer.inlineCallbacks
    def test_deleting_an_account_deletes_its_data_in_every_store(self):
        other = self.open("other")
        for store in (self.store, other):
            for n, owner in enumerate((ALICE, BOB, ROOM, SERVICE)):
                yield self.write(store, owner, n)
        others = [(store, owner) for store in (self.store, other) for owner in (BOB, ROOM, SERVICE)]
        kept = yield self.read_all(others)
        yield self.users.delete_user("alice", "example.org")
        for store in (self.store, other):
            self.assertEqual((yield self.read(store, ALICE)), self.empty)
        self.assertEqual((yield self.read_all(others)), kept)
        # A new account of the same name starts clean.
        yield self.create_users(ALICE)
        self.assertEqual((yield self.read(self.store, ALICE)), self.empty)

    @defer.inlineCallbacks
    def test_data_written_after_an_account_went_is_not_the_next_ones(self):
        # A write racing the deletion (an archive batch) must not reach a later namesake.
        yield self.users.delete_user("alice", "example.org")
        yield self.write(self.store, ALICE, 1)
        yield self.create_users(ALICE)
        self.assertEqual((yield self.read(self.store, ALICE)), self.empty)

    @defer.inlineCallbacks
    def test_bad_owners_fail_the_deferred(self):
        for owner, exception in ((None, TypeError), (b"alice@example.org", TypeError),
                                 ("", ValueError)):
            yield self.assertFailure(self.read(self.store, owner), exception)

    def test_bad_store_names_are_refused(self):
        for name in ("", None, "x" * 1024):
            self.assertRaises(ValueError, self.storage.open_store, name, self.kind)


class KeyValStoreContract(GenericStoreContract):
    """What any engine must do with key-value stores."""

    kind = "keyval"

    def write(self, store, owner, n):
        return store.set(owner, {"n": n})

    def read(self, store, owner):
        return store.get(owner)

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IKeyValStore, self.store))

    @defer.inlineCallbacks
    def test_values_round_trip(self):
        for value in VALUES:
            yield self.store.set(ALICE, value)
            self.assertEqual((yield self.store.get(ALICE)), value)
        yield self.store.set(ALICE, ("a", ("b",)))
        self.assertEqual((yield self.store.get(ALICE)), ["a", ["b"]])  # JSON has no tuples

    @defer.inlineCallbacks
    def test_delete_forgets_the_value(self):
        self.assertIsNone((yield self.store.get(ALICE)))
        self.assertIs((yield self.store.delete(ALICE)), False)
        yield self.store.set(ALICE, "vcard")
        self.assertIs((yield self.store.delete(ALICE)), True)
        self.assertIsNone((yield self.store.get(ALICE)))
        self.assertIs((yield self.store.delete(ALICE)), False)

    @defer.inlineCallbacks
    def test_set_many_writes_every_owner_at_once(self):
        yield self.store.set(ALICE, "old")
        yield self.store.set_many({ALICE: {"at": 1}, BOB: ["b"]})
        self.assertEqual((yield self.store.get(ALICE)), {"at": 1})
        self.assertEqual((yield self.store.get(BOB)), ["b"])
        yield self.store.set_many({})
        yield self.assertFailure(self.store.set_many({ALICE: "kept", BOB: None}), ValueError)
        self.assertEqual((yield self.store.get(ALICE)), {"at": 1})  # nothing of a refused batch
        yield self.assertFailure(self.store.set_many([(ALICE, 1)]), TypeError)

    @defer.inlineCallbacks
    def test_what_json_cannot_hold_is_refused(self):
        yield self.store.set(ALICE, "kept")
        for value, exception in ((None, ValueError), ({1, 2}, TypeError),
                                 (float("nan"), ValueError), (b"bytes", TypeError)):
            yield self.assertFailure(self.store.set(ALICE, value), exception)
        self.assertEqual((yield self.store.get(ALICE)), "kept")


class MapStoreContract(GenericStoreContract):
    """What any engine must do with map stores."""

    kind = "map"
    empty = {}

    def write(self, store, owner, n):
        return store.set_many(owner, {"a": n, "b": [n]})

    def read(self, store, owner):
        return store.items(owner)

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IMapStore, self.store))

    @defer.inlineCallbacks
    def test_values_round_trip_by_key(self):
        for n, value in enumerate(VALUES):
            yield self.store.set(ALICE, f"key {n} ☃", value)
        for n, value in enumerate(VALUES):
            self.assertEqual((yield self.store.get(ALICE, f"key {n} ☃")), value)
        self.assertIsNone((yield self.store.get(ALICE, "absent")))
        self.assertIsNone((yield self.store.get(BOB, "key 0 ☃")))

    @defer.inlineCallbacks
    def test_set_replaces_one_key_only(self):
        yield self.store.set_many(ALICE, {"node": {"max_items": 1}, "other": 2})
        yield self.store.set(ALICE, "node", {"max_items": 10})
        self.assertEqual((yield self.store.items(ALICE)), {"node": {"max_items": 10}, "other": 2})

    @defer.inlineCallbacks
    def test_keys_come_sorted(self):
        yield self.store.set_many(ALICE, {"zed": 1, "Zed": 2, "amy": 3, "émile": 4})
        self.assertEqual((yield self.store.keys(ALICE)), ["Zed", "amy", "zed", "émile"])
        self.assertEqual((yield self.store.keys(BOB)), [])

    @defer.inlineCallbacks
    def test_delete_and_clear(self):
        yield self.store.set_many(ALICE, {"a": 1, "b": 2, "c": 3})
        yield self.store.set(BOB, "a", 1)
        self.assertIs((yield self.store.delete(ALICE, "a")), True)
        self.assertIs((yield self.store.delete(ALICE, "a")), False)
        self.assertEqual((yield self.store.clear(ALICE)), 2)
        self.assertEqual((yield self.store.clear(ALICE)), 0)
        self.assertEqual((yield self.store.items(ALICE)), {})
        self.assertEqual((yield self.store.items(BOB)), {"a": 1})
        self.assertIs((yield self.store.delete(SERVICE, "a")), False)

    @defer.inlineCallbacks
    def test_a_bad_value_in_set_many_writes_nothing(self):
        yield self.assertFailure(self.store.set_many(ALICE, {"a": 1, "b": object()}), TypeError)
        yield self.assertFailure(self.store.set_many(ALICE, {"a": 1, 2: "b"}), TypeError)
        yield self.assertFailure(self.store.set_many(ALICE, [("a", 1)]), TypeError)
        yield self.assertFailure(self.store.set(ALICE, None, 1), TypeError)
        yield self.assertFailure(self.store.set(ALICE, "a", None), ValueError)
        yield self.store.set_many(ALICE, {})
        self.assertEqual((yield self.store.items(ALICE)), {})


def entry(n: int, with_jid: str = BOB, id: str | None = None) -> ArchiveEntry:
    """Entry ``n``: stamped 1000 + n, its body n."""
    payload = f"<message xmlns='jabber:client'><body>{n}</body></message>"
    return ArchiveEntry(1000.0 + n, with_jid, payload, id)


class ArchiveStoreContract(GenericStoreContract):
    """What any engine must do with archive stores (MAM, pubsub items)."""

    kind = "archive"
    empty = ()

    def write(self, store, owner, n):
        return store.append(owner, entry(n))

    def read(self, store, owner):
        return store.query(owner).addCallback(lambda page: page.entries)

    @defer.inlineCallbacks
    def fill(self, count: int, owner: str = ALICE, with_jids=(BOB,)) -> list[str]:
        """``count`` entries in one batch, 'with' cycling through ``with_jids``; their ids."""
        entries = [(owner, entry(n, with_jids[n % len(with_jids)])) for n in range(count)]
        return (yield self.store.append_many(entries))

    def query(self, owner: str = ALICE, **fields):
        return self.store.query(owner, ArchiveQuery(**fields))

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IArchiveStore, self.store))

    @defer.inlineCallbacks
    def test_entries_come_back_in_the_order_appended(self):
        first = yield self.store.append(ALICE, entry(5))
        second = yield self.store.append(ALICE, entry(2, "carol@example.net", "given-id"))
        self.assertEqual(second, "given-id")
        self.assertIsInstance(first, str)
        page = yield self.store.query(ALICE)
        self.assertEqual(page.entries, (entry(5, id=first),
                                        entry(2, "carol@example.net", "given-id")))
        self.assertEqual((page.complete, page.total, page.first, page.last),
                         (True, 2, first, "given-id"))
        self.assertEqual((yield self.store.get(ALICE, first)), entry(5, id=first))
        self.assertIsNone((yield self.store.get(BOB, first)))
        self.assertIsNone((yield self.store.get(ALICE, "absent")))

    @defer.inlineCallbacks
    def test_made_ids_are_distinct(self):
        ids = yield self.fill(200)
        ids += [(yield self.store.append(ALICE, entry(1)))]
        self.assertEqual(len(set(ids)), 201)
        self.assertTrue(all(isinstance(id, str) and id for id in ids))

    @defer.inlineCallbacks
    def test_payloads_and_stamps_round_trip(self):
        payload = "<message from='jürgen@bücher.example/📱'><body>&lt;3 ;'--" + "x" * 100_000
        given = ArchiveEntry(1700000000.123456, "jürgen@bücher.example", payload, "id ☃")
        yield self.store.append(ALICE, given)
        self.assertEqual((yield self.store.get(ALICE, "id ☃")), given)

    @defer.inlineCallbacks
    def test_appending_an_id_again_replaces_its_entry_as_the_newest(self):
        yield self.store.append_many([(ALICE, entry(n, id=f"item{n}")) for n in range(3)])
        yield self.store.append(ALICE, entry(9, id="item0"))  # pubsub: publish item0 again
        page = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in page.entries], ["item1", "item2", "item0"])
        self.assertEqual(page.entries[-1], entry(9, id="item0"))
        self.assertEqual(page.total, 3)

    @defer.inlineCallbacks
    def test_an_id_again_in_a_batch_of_new_ones_replaces_its_entry(self):
        # The batch's fast path (new ids only) must not lose the replacing: an id already
        # there, and one given twice in the batch, each end as the newest of its owner.
        yield self.store.append_many([(ALICE, entry(n, id=f"item{n}")) for n in range(3)])
        yield self.store.append_many([(ALICE, entry(3)), (ALICE, entry(4, id="item0")),
                                      (ROOM, entry(5, id="item0")), (ALICE, entry(6, id="new")),
                                      (ALICE, entry(7, id="new")), (ALICE, entry(8))])
        page = yield self.store.query(ALICE)
        self.assertEqual([e.stamp for e in page.entries], [1001.0, 1002.0, 1003.0, 1004.0,
                                                           1007.0, 1008.0])
        self.assertEqual([e.id for e in page.entries][3:5], ["item0", "new"])
        self.assertEqual((yield self.store.get(ROOM, "item0")), entry(5, id="item0"))

    @defer.inlineCallbacks
    def test_append_many_writes_owners_in_order(self):
        ids = yield self.store.append_many([(ALICE, entry(1)), (ROOM, entry(2)),
                                            (ALICE, entry(3)), (BOB, entry(4, ALICE))])
        self.assertEqual(len(ids), 4)
        alice = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in alice.entries], [ids[0], ids[2]])
        self.assertEqual([e.id for e in (yield self.store.query(ROOM)).entries], [ids[1]])
        self.assertEqual((yield self.store.count(BOB)), 1)
        self.assertEqual((yield self.store.append_many([])), [])

    @defer.inlineCallbacks
    def test_a_bad_entry_fails_the_whole_batch(self):
        yield self.assertFailure(
            self.store.append_many([(ALICE, entry(1)), (ALICE, "<message/>")]), TypeError)
        yield self.assertFailure(self.store.append_many([(ALICE, entry(1)), (None, entry(2))]),
                                 TypeError)
        self.assertEqual((yield self.store.count(ALICE)), 0)

    @defer.inlineCallbacks
    def test_paging_forwards_walks_the_whole_archive(self):
        ids = yield self.fill(310)
        seen, after, pages = [], None, []
        while True:
            page = yield self.query(limit=50, after=after)
            pages.append(page)
            seen += [e.id for e in page.entries]
            after = page.last
            if page.complete:
                break
        self.assertEqual(seen, ids)
        self.assertEqual([len(p.entries) for p in pages], [50] * 6 + [10])
        self.assertEqual({p.total for p in pages}, {310})
        self.assertEqual([p.complete for p in pages], [False] * 6 + [True])

    @defer.inlineCallbacks
    def test_paging_backwards_from_the_last_page(self):
        ids = yield self.fill(300)
        page = yield self.query(limit=50, last_page=True)
        self.assertEqual([e.id for e in page.entries], ids[-50:])  # oldest first in a page
        self.assertFalse(page.complete)
        seen = [e.id for e in page.entries]
        while not page.complete:
            page = yield self.query(limit=50, before=page.first)
            seen = [e.id for e in page.entries] + seen
            self.assertEqual(page.total, 300)
        self.assertEqual(seen, ids)
        self.assertEqual(page.entries[0].id, ids[0])

    @defer.inlineCallbacks
    def test_a_page_that_exactly_ends_the_archive_is_complete(self):
        ids = yield self.fill(100)
        forwards = yield self.query(limit=50, after=ids[49])
        backwards = yield self.query(limit=50, before=ids[50])
        self.assertEqual(([e.id for e in forwards.entries], forwards.complete), (ids[50:], True))
        self.assertEqual(([e.id for e in backwards.entries], backwards.complete),
                         (ids[:50], True))
        everything = yield self.query(limit=100)
        self.assertTrue(everything.complete)

    @defer.inlineCallbacks
    def test_a_zero_limit_only_counts(self):
        yield self.fill(7)
        page = yield self.query(limit=0)
        self.assertEqual((page.entries, page.total, page.complete), ((), 7, False))
        self.assertEqual((yield self.query(BOB, limit=0)), type(page)((), True, 0))

    @defer.inlineCallbacks
    def test_filter_by_with(self):
        ids = yield self.fill(90, with_jids=(BOB, ROOM, "carol@example.net"))
        page = yield self.query(with_jid=ROOM, limit=10)
        self.assertEqual([e.id for e in page.entries], ids[1::3][:10])
        self.assertEqual((page.total, page.complete), (30, False))
        rest = yield self.query(with_jid=ROOM, after=page.last)
        self.assertEqual([e.id for e in rest.entries], ids[1::3][10:])
        self.assertTrue(all(e.with_jid == ROOM for e in rest.entries))
        self.assertEqual((yield self.query(with_jid="nobody@example.org")).total, 0)

    @defer.inlineCallbacks
    def test_filter_by_time_is_inclusive(self):
        ids = yield self.fill(100)  # stamped 1000..1099
        page = yield self.query(start=1010.0, end=1019.0)
        self.assertEqual([e.id for e in page.entries], ids[10:20])
        self.assertEqual((page.total, page.complete), (10, True))
        self.assertEqual((yield self.query(start=1095)).total, 5)
        self.assertEqual((yield self.query(end=1004.5)).total, 5)
        last = yield self.query(start=1010.0, end=1019.0, limit=3, last_page=True)
        self.assertEqual([e.id for e in last.entries], ids[17:20])

    @defer.inlineCallbacks
    def test_after_id_and_before_id_bound_the_result_set(self):
        ids = yield self.fill(20)
        page = yield self.query(after_id=ids[4], before_id=ids[15])
        self.assertEqual([e.id for e in page.entries], ids[5:15])
        self.assertEqual(page.total, 10)
        paged = yield self.query(after_id=ids[4], before_id=ids[15], limit=4, last_page=True)
        self.assertEqual(([e.id for e in paged.entries], paged.total), (ids[11:15], 10))

    @defer.inlineCallbacks
    def test_filter_by_ids(self):
        ids = yield self.fill(30)
        wanted = (ids[20], ids[3], ids[11])
        page = yield self.query(ids=wanted)
        self.assertEqual([e.id for e in page.entries], [ids[3], ids[11], ids[20]])
        self.assertEqual(page.total, 3)
        self.assertEqual((yield self.query(ids=())).total, 0)

    @defer.inlineCallbacks
    def test_every_id_a_query_names_must_be_there(self):
        ids = yield self.fill(5)
        bob = yield self.store.append(BOB, entry(1))
        for fields in ({"after": "absent"}, {"before": "absent"}, {"after_id": "absent"},
                       {"before_id": "absent"}, {"ids": (ids[0], "absent")},
                       {"after": bob}):  # another owner's id is not in this archive
            error = yield self.assertFailure(self.query(**fields), ArchiveEntryNotFound)
            self.assertIn(error.id, ("absent", bob))
            self.assertEqual(error.owner, ALICE)
        # An owner with no archive at all has none of them either.
        error = yield self.assertFailure(self.query(SERVICE, after="x"), ArchiveEntryNotFound)
        self.assertEqual((error.id, error.owner), ("x", SERVICE))
        self.assertIn("'x'", str(error))

    @defer.inlineCallbacks
    def test_remove_trim_and_clear(self):
        ids = yield self.fill(10)
        yield self.fill(3, owner=BOB)
        self.assertEqual((yield self.store.remove(ALICE, [ids[0], ids[5], "absent"])), 2)
        self.assertEqual((yield self.store.remove(ALICE, [])), 0)
        self.assertEqual((yield self.store.trim(ALICE, 4)), 4)  # pubsub max_items
        page = yield self.store.query(ALICE)
        self.assertEqual([e.id for e in page.entries], ids[6:])
        self.assertEqual((yield self.store.trim(ALICE, 4)), 0)
        self.assertEqual((yield self.store.trim(ALICE, 100)), 0)
        self.assertEqual((yield self.store.clear(ALICE)), 4)
        self.assertEqual((yield self.store.count(ALICE)), 0)
        self.assertEqual((yield self.store.count(BOB)), 3)
        self.assertEqual((yield self.store.trim(SERVICE, 0)), 0)
        self.assertEqual((yield self.store.trim(BOB, 0)), 3)

    @defer.inlineCallbacks
    def test_retention_deletes_older_entries(self):
        other = self.open("other")
        yield self.fill(10)  # 1000..1009
        yield self.fill(10, owner=ROOM)
        yield other.append(ALICE, entry(0))
        self.assertEqual((yield self.store.delete_before(1003.0, ROOM)), 3)
        self.assertEqual((yield self.store.delete_before(1005)), 5 + 2)
        self.assertEqual((yield self.store.count(ALICE)), 5)
        self.assertEqual((yield self.store.count(ROOM)), 5)
        self.assertEqual((yield other.count(ALICE)), 1)  # another store keeps its own
        self.assertEqual((yield self.query(limit=1)).entries[0].stamp, 1005.0)

    @defer.inlineCallbacks
    def test_bad_arguments_fail_clearly(self):
        yield self.fill(2)
        failures = [
            (self.store.query(ALICE, {"limit": 5}), TypeError),
            (self.store.trim(ALICE, -1), ValueError),
            (self.store.trim(ALICE, 1.5), ValueError),
            (self.store.remove(ALICE, "abc"), TypeError),
            (self.store.delete_before("yesterday"), TypeError),
            (self.store.get(ALICE, None), TypeError),
        ]
        for d, exception in failures:
            yield self.assertFailure(d, exception)
        self.assertEqual((yield self.store.count(ALICE)), 2)

    def test_bad_queries_and_entries_are_refused_where_made(self):
        for fields in ({"limit": -1}, {"limit": 2.0}, {"limit": True}):
            self.assertRaises(ValueError, ArchiveQuery, **fields)
        for fields in ({"ids": "abc"}, {"ids": ["a"]}, {"start": "now"}, {"after": 5},
                       {"last_page": 1}, {"with_jid": b"bob"}):
            self.assertRaises(TypeError, ArchiveQuery, **fields)
        self.assertRaises(TypeError, ArchiveEntry, 1.0, BOB, b"<message/>")
        self.assertRaises(TypeError, ArchiveEntry, "now", BOB, "<message/>")
        self.assertRaises(ValueError, ArchiveEntry, 1.0, BOB, "<message/>", "")
