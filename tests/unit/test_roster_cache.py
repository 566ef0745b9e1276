"""The in-memory rosters of online accounts (xmppd.im.roster_cache) and how the roster plugin
keeps them equal to storage, including reads and writes that overtake each other."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.helpers import sync
from xmppd.im import subscription
from xmppd.im.contacts import Contacts
from xmppd.im.roster_cache import CachedRoster, RosterCache
from xmppd.jid import parse_jid
from xmppd.plugins.roster import RosterService
from xmppd.storage.records import RosterItem, RosterSnapshot

ALICE = parse_jid("alice@localhost")
BOB = parse_jid("bob@localhost")
CAROL = parse_jid("carol@localhost")
DAVE = parse_jid("dave@localhost")


def item(contact: str, subscription: str = "both", name: str | None = None) -> RosterItem:
    return RosterItem(contact, name=name, subscription=subscription)


def contacts_text(contacts: Contacts) -> tuple[list[str], list[str]]:
    return ([jid.full() for jid in contacts.subscribers],
            [jid.full() for jid in contacts.subscriptions])


class CachedRosterTests(TestCase):
    def test_items_are_sorted_and_found_by_contact(self):
        roster = CachedRoster.of(RosterSnapshot(3, (item("carol@localhost"),
                                                    item("bob@localhost"))))
        self.assertEqual([i.contact for i in roster.items], ["bob@localhost", "carol@localhost"])
        self.assertEqual(roster.item("carol@localhost"), item("carol@localhost"))
        self.assertIsNone(roster.item("dave@localhost"))
        self.assertEqual((roster.version, len(roster)), (3, 2))

    def test_contacts_are_split_by_direction_parsed_once_and_skip_bad_jids(self):
        roster = CachedRoster(1, (item("a@localhost", "from"), item("b@localhost", "to"),
                                  item("bad@@localhost", "both"), item("c@localhost", "both"),
                                  item("d@localhost", "none")))
        contacts = roster.contacts
        self.assertEqual(contacts_text(contacts), (["a@localhost", "c@localhost"],
                                                   ["b@localhost", "c@localhost"]))
        self.assertIs(roster.contacts, contacts)

    def test_a_change_makes_a_new_roster_and_leaves_the_old_one_alone(self):
        old = CachedRoster(1, (item("bob@localhost"), item("dave@localhost")))
        subscribers = old.contacts.subscribers
        added = old.with_item(2, item("carol@localhost", "from"))
        self.assertEqual([i.contact for i in added.items],
                         ["bob@localhost", "carol@localhost", "dave@localhost"])
        replaced = added.with_item(3, item("bob@localhost", "to", name="Bob"))
        self.assertEqual(replaced.item("bob@localhost"), item("bob@localhost", "to", "Bob"))
        self.assertEqual([j.full() for j in replaced.contacts.subscribers],
                         ["carol@localhost", "dave@localhost"])
        removed = replaced.without(4, "dave@localhost")
        self.assertEqual(([i.contact for i in removed.items], removed.version),
                         (["bob@localhost", "carol@localhost"], 4))
        self.assertEqual([i.contact for i in old.items], ["bob@localhost", "dave@localhost"])
        self.assertIs(old.contacts.subscribers, subscribers)


class Reads:
    """A store's roster reads, each answered when the test says."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred] = []

    def __call__(self) -> defer.Deferred:
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def answer(self, *items: RosterItem, version: int = 1) -> None:
        self.pending.pop(0).callback(RosterSnapshot(version, items))


class RosterCacheTests(TestCase):
    def setUp(self):
        self.online = {ALICE}
        self.cache = RosterCache(lambda account: account in self.online)
        self.reads = Reads()

    def test_the_first_load_reads_and_keeps_the_roster_of_an_online_account(self):
        d = self.cache.load(ALICE, self.reads)
        self.reads.answer(item("bob@localhost"), version=7)
        roster = sync(d)
        self.assertEqual((roster.version, roster.items), (7, (item("bob@localhost"),)))
        self.assertIs(sync(self.cache.load(ALICE, self.reads)), roster)
        self.assertEqual(self.reads.pending, [])  # no second read
        self.assertIs(self.cache.get(ALICE), roster)

    def test_an_offline_account_is_read_every_time_and_never_kept(self):
        d = self.cache.load(BOB, self.reads)
        self.reads.answer(item("alice@localhost"))
        self.assertEqual(len(sync(d)), 1)
        self.assertNotIn(BOB, self.cache)
        self.cache.load(BOB, self.reads)
        self.assertEqual(len(self.reads.pending), 1)

    def test_an_account_going_offline_during_the_read_is_not_kept(self):
        d = self.cache.load(ALICE, self.reads)
        self.online.clear()
        self.reads.answer()
        self.assertEqual(len(sync(d)), 0)
        self.assertNotIn(ALICE, self.cache)

    def test_readers_arriving_during_a_read_share_it(self):
        first, second = self.cache.load(ALICE, self.reads), self.cache.load(ALICE, self.reads)
        self.assertEqual(len(self.reads.pending), 1)
        self.reads.answer(item("bob@localhost"))
        self.assertIs(sync(first), sync(second))

    def test_a_read_a_write_landed_during_is_not_kept_nor_joined(self):
        stale = self.cache.load(ALICE, self.reads)
        joined = self.cache.load(ALICE, self.reads)
        self.cache.stored(ALICE, 2, item("bob@localhost"))
        fresh = self.cache.load(ALICE, self.reads)  # does not join the read before the write
        self.assertEqual(len(self.reads.pending), 2)
        self.reads.answer(version=1)  # what storage held before the write
        for d in (stale, joined):  # they asked before the write landed
            self.assertEqual(sync(d).version, 1)
        self.assertNotIn(ALICE, self.cache)
        self.reads.answer(item("bob@localhost"), version=2)
        self.assertIs(self.cache.get(ALICE), sync(fresh))

    def test_a_removal_landing_during_a_read_keeps_the_read_out(self):
        d = self.cache.load(ALICE, self.reads)
        self.cache.removed(ALICE, 5, "bob@localhost")
        self.reads.answer(item("bob@localhost"), version=4)
        self.assertEqual(len(sync(d)), 1)
        self.assertNotIn(ALICE, self.cache)

    def test_writes_change_the_kept_roster(self):
        self.cache.load(ALICE, self.reads)
        self.reads.answer(item("carol@localhost", "to"), version=1)
        self.cache.stored(ALICE, 2, item("bob@localhost", "from"))
        roster = self.cache.get(ALICE)
        self.assertEqual(roster.version, 2)
        self.assertEqual(contacts_text(roster.contacts), (["bob@localhost"], ["carol@localhost"]))
        self.cache.stored(ALICE, 2, item("bob@localhost", "from"))  # read after it landed
        self.assertEqual(self.cache.get(ALICE).items, roster.items)
        self.cache.removed(ALICE, 3, "carol@localhost")
        self.assertEqual(contacts_text(self.cache.get(ALICE).contacts), (["bob@localhost"], []))
        self.cache.stored(BOB, 9, item("alice@localhost"))  # not kept: nothing to change
        self.assertNotIn(BOB, self.cache)

    def test_a_failed_read_reaches_every_reader_and_keeps_nothing(self):
        first, second = self.cache.load(ALICE, self.reads), self.cache.load(ALICE, self.reads)
        self.reads.pending.pop().errback(RuntimeError("disk on fire"))
        for d in (first, second):
            self.assertTrue(sync(d).check(RuntimeError))
        self.assertNotIn(ALICE, self.cache)
        self.cache.load(ALICE, self.reads)
        self.assertEqual(len(self.reads.pending), 1)  # the next reader tries again

    def test_forget_drops_the_roster_and_the_read_in_flight(self):
        self.cache.load(ALICE, self.reads)
        self.reads.answer()
        self.assertIn(ALICE, self.cache)
        self.cache.forget(ALICE)
        self.assertNotIn(ALICE, self.cache)
        self.cache.load(ALICE, self.reads)
        self.cache.forget(ALICE)
        self.reads.answer()
        self.assertEqual(len(self.cache), 0)


# ---------------------------------------------------------------- the roster plugin's service


class Sessions:
    def __init__(self) -> None:
        self.bound: dict = {}

    def resources(self, account):
        return list(self.bound.get(account, ()))


class FakeServer:
    def __init__(self) -> None:
        self.sessions = Sessions()
        self.routed: list = []
        self.router = self

    def route(self, stanza, origin):
        self.routed.append(stanza)


class OneAtATimeStore:
    """An IRosterStore in a dict whose calls are answered only when the test says, in any
    order: a read sees storage as it was when it was made (an engine with several connections
    may answer it after a later write), a write lands when it is answered."""

    def __init__(self) -> None:
        self.rosters: dict[tuple, dict[str, RosterItem]] = {}
        self.versions: dict[tuple, int] = {}
        self.pending: list[tuple[str, defer.Deferred, object]] = []
        self.fail_next_write = False

    def _call(self, name: str, result) -> defer.Deferred:
        d = defer.Deferred()
        self.pending.append((name, d, result))
        return d

    def answer(self, name: str) -> None:
        """Answer the oldest pending call named ``name``."""
        for index, (pending_name, d, result) in enumerate(self.pending):
            if pending_name == name:
                del self.pending[index]
                if callable(result):  # a write lands now
                    result = result()
                if isinstance(result, Exception):
                    d.errback(result)
                else:
                    d.callback(result)
                return
        raise AssertionError(f"no pending {name}: {[p[0] for p in self.pending]}")

    def answer_all(self) -> None:
        while self.pending:
            self.answer(self.pending[0][0])

    def get_roster(self, localpart, domain):
        key = (localpart, domain)
        items = tuple(sorted(self.rosters.get(key, {}).values(), key=lambda i: i.contact))
        return self._call("get_roster", RosterSnapshot(self.versions.get(key, 0), items))

    def get_item(self, localpart, domain, contact):
        return self._call("get_item", self.rosters.get((localpart, domain), {}).get(contact))

    def put_item(self, localpart, domain, item):
        if self.fail_next_write:
            self.fail_next_write = False
            return self._call("put_item", RuntimeError("write failed"))
        key = (localpart, domain)

        def land() -> int:
            self.rosters.setdefault(key, {})[item.contact] = item
            self.versions[key] = self.versions.get(key, 0) + 1
            return self.versions[key]

        return self._call("put_item", land)

    def remove_item(self, localpart, domain, contact):
        key = (localpart, domain)

        def land() -> int | None:
            if self.rosters.get(key, {}).pop(contact, None) is None:
                return None
            self.versions[key] += 1
            return self.versions[key]

        return self._call("remove_item", land)

    def get_requests(self, localpart, domain):
        return self._call("get_requests", [])

    def add_request(self, localpart, domain, contact, stanza):
        return self._call("add_request", None)

    def remove_request(self, localpart, domain, contact):
        return self._call("remove_request", False)


class ServiceCacheTests(TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.store = OneAtATimeStore()
        self.service = RosterService(self.server.sessions, self.server.route, self.store)
        self.session = type("Session", (), {"account": ALICE})()
        self.server.sessions.bound[ALICE] = [self.session]

    def stored_contacts(self, account=ALICE) -> tuple[list[str], list[str]]:
        """What storage says, read around the cache."""
        d = self.store.get_roster(account.user, account.host)
        self.store.answer("get_roster")
        return contacts_text(CachedRoster.of(sync(d)).contacts)

    def contacts(self, account=ALICE) -> tuple[list[str], list[str]]:
        d = self.service.contacts(account)
        self.store.answer_all()
        return contacts_text(sync(d))

    def set_state(self, contact, state) -> None:
        d = self.service.set_state(ALICE, contact, state)
        self.store.answer_all()
        self.assertIsNone(sync(d))

    def test_an_online_account_is_read_once_then_served_from_memory(self):
        self.assertEqual(self.contacts(), ([], []))
        self.service.contacts(ALICE)
        self.service.items(ALICE)
        self.assertEqual(self.store.pending, [])

    def seed(self, contact, subscription: str) -> None:
        """An item already in storage, written around the service."""
        self.store.rosters.setdefault(("alice", "localhost"), {})[contact.full()] = item(
            contact.full(), subscription)
        self.store.versions[("alice", "localhost")] = 1

    def test_a_read_answered_after_a_write_landed_is_not_kept(self):
        self.seed(BOB, "to")
        early = self.service.contacts(ALICE)  # read made before the write...
        change = self.service.set_state(ALICE, BOB, subscription.BOTH)
        self.store.answer("get_item")
        self.store.answer("get_requests")
        self.store.answer("put_item")
        self.assertIsNone(sync(change))
        self.store.answer("get_roster")  # ...answered after it landed
        self.assertEqual(contacts_text(sync(early)), ([], ["bob@localhost"]))
        self.assertNotIn(ALICE, self.service.cache)
        self.assertEqual(self.contacts(), (["bob@localhost"], ["bob@localhost"]))
        self.assertIn(ALICE, self.service.cache)
        self.assertEqual(self.contacts(), self.stored_contacts())

    def test_a_read_made_during_a_write_and_answered_after_it_is_not_kept(self):
        self.seed(BOB, "to")
        change = self.service.set_state(ALICE, BOB, subscription.BOTH)
        self.store.answer("get_item")
        self.store.answer("get_requests")
        during = self.service.contacts(ALICE)  # put_item is in flight
        self.store.answer("put_item")
        self.store.answer("get_roster")
        sync(change)
        self.assertEqual(contacts_text(sync(during)), ([], ["bob@localhost"]))
        self.assertNotIn(ALICE, self.service.cache)
        self.assertEqual(self.contacts(), self.stored_contacts())
        self.assertEqual(self.contacts(), (["bob@localhost"], ["bob@localhost"]))

    def test_a_read_kept_during_a_write_gets_the_write_when_it_lands(self):
        self.seed(BOB, "to")
        change = self.service.set_state(ALICE, BOB, subscription.BOTH)
        self.store.answer("get_item")
        self.store.answer("get_requests")
        during = self.service.contacts(ALICE)  # put_item is in flight
        self.store.answer("get_roster")  # as a read on its own connection: before the write
        self.assertEqual(contacts_text(sync(during)), ([], ["bob@localhost"]))
        self.assertIn(ALICE, self.service.cache)
        self.store.answer("put_item")
        sync(change)
        self.assertEqual(self.contacts(), (["bob@localhost"], ["bob@localhost"]))
        self.assertEqual(self.contacts(), self.stored_contacts())

    def test_a_new_item_is_checked_against_the_kept_roster(self):
        early = self.service.contacts(ALICE)
        change = self.service.set_state(ALICE, BOB, subscription.BOTH)
        self.store.answer("get_item")
        self.store.answer("get_requests")
        self.store.answer("get_roster")  # the room check shares the early read, then writes
        self.assertEqual(contacts_text(sync(early)), ([], []))
        self.store.answer("put_item")
        sync(change)
        self.assertEqual(self.store.pending, [])
        self.assertEqual(self.contacts(), (["bob@localhost"], ["bob@localhost"]))
        self.assertEqual(self.store.pending, [])

    def test_every_write_changes_the_kept_roster(self):
        self.contacts()
        self.set_state(BOB, subscription.BOTH)
        self.set_state(CAROL, subscription.TO)
        self.set_state(DAVE, subscription.NONE_PENDING_OUT)
        self.assertEqual(self.contacts(), (["bob@localhost"], ["bob@localhost",
                                                               "carol@localhost"]))
        self.set_state(BOB, subscription.TO)
        self.assertEqual(self.contacts(), ([], ["bob@localhost", "carol@localhost"]))
        d = defer.ensureDeferred(self.service._remove(ALICE, CAROL))
        self.store.answer_all()
        sync(d)
        self.assertEqual(self.contacts(), ([], ["bob@localhost"]))
        self.assertEqual(self.store.pending, [])  # all served from memory
        self.assertEqual(self.contacts(), self.stored_contacts())
        d = self.service.items(ALICE)
        self.assertEqual([i.contact for i in sync(d)], ["bob@localhost", "dave@localhost"])
        self.assertEqual(self.service.cache.get(ALICE).version, self.store.versions[("alice",
                                                                                   "localhost")])

    def test_a_failed_write_drops_the_kept_roster(self):
        self.contacts()
        self.store.fail_next_write = True
        d = self.service.set_state(ALICE, BOB, subscription.BOTH)
        self.store.answer_all()
        self.assertTrue(sync(d).check(RuntimeError))
        self.assertNotIn(ALICE, self.service.cache)

    def test_the_roster_goes_with_the_last_session_and_the_account(self):
        self.contacts()
        other = type("Session", (), {"account": ALICE})()
        self.server.sessions.bound[ALICE] = [other]
        self.service.on_session_closed(self.session)
        self.assertIn(ALICE, self.service.cache)  # another session is still bound
        self.server.sessions.bound[ALICE] = []
        self.service.on_session_closed(other)
        self.assertNotIn(ALICE, self.service.cache)

        self.server.sessions.bound[ALICE] = [other]
        self.contacts()
        self.service.on_user_deleted(ALICE)
        self.assertNotIn(ALICE, self.service.cache)


class ClusterLocks:
    """IClusterLocks run at once, noting when each name is taken and given back."""

    def __init__(self, log: list) -> None:
        self.log = log

    def run(self, name, work):
        self.log.append(("lock", name))
        d = work()
        d.addBoth(lambda result: self.log.append(("unlock", name)) or result)
        return d


class ClusterServiceTests(TestCase):
    def test_in_a_cluster_a_change_reads_storage_and_is_told_under_the_accounts_lock(self):
        """The roster kept here may miss another node's last change: under the cluster's
        lock it is read again, and the push and the news go out before the lock does."""
        server, store, log = FakeServer(), OneAtATimeStore(), []
        service = RosterService(server.sessions, server.route, store,
                                changed=lambda account, version, item: log.append(
                                    ("changed", version)),
                                cluster_locks=lambda: ClusterLocks(log))
        server.sessions.bound[ALICE] = [type("Session", (), {"account": ALICE})()]
        store.rosters[("alice", "localhost")] = {"bob@localhost": item("bob@localhost", "to")}
        store.versions[("alice", "localhost")] = 1
        kept = service.contacts(ALICE)
        store.answer_all()
        sync(kept)
        self.assertIn(ALICE, service.cache)
        change = service.set_state(ALICE, BOB, subscription.BOTH)
        self.assertNotIn(ALICE, service.cache)  # dropped under the lock
        self.assertEqual([name for name, _, _ in store.pending], ["get_item"])  # from storage
        store.answer_all()
        store.answer_all()
        self.assertIsNone(sync(change))
        self.assertEqual(log, [("lock", "roster:alice@localhost"), ("changed", 2),
                               ("unlock", "roster:alice@localhost")])
