"""The storage contracts (IUserStore, IRosterStore, IOfflineStore, IServerRosterStore,
IIncidentStore), written once and run against every storage engine.

Mix ``UserStoreContract``, ``RosterStoreContract``, ``OfflineStoreContract``,
``ServerRosterStoreContract`` or ``IncidentStoreContract`` into a
``twisted.trial.unittest.TestCase`` that defines ``make_storage()`` returning an unopened
IStorage; fixtures go through the interfaces only. The one seam beyond them: an engine takes
the time it records from ``storage.now()``, which the tests replace to control it.
The generic stores (keyval, map, archive) have theirs in ``tests.generic_store_contract``.
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from zope.interface.verify import verifyObject

from xmppd.interfaces import (
    IIncidentStore,
    IOfflineStore,
    IRosterStore,
    IServerRosterStore,
    IStorage,
    IUserStore,
)
from xmppd.sasl.credentials import HASHES, derive_all, derive_credentials
from xmppd.storage import UserExists, UserNotFound
from xmppd.storage.migrate import load_migrations
from xmppd.storage.records import IncidentRecord, RosterItem, RosterSnapshot, ServerPeer

FAST = 64  # iterations: the store keeps whatever it is given, tests need not be slow


class OpenStorage:
    """Opens a fresh storage for each test and closes it after."""

    def make_storage(self):
        raise NotImplementedError("a storage test case defines make_storage()")

    @defer.inlineCallbacks
    def setUp(self):
        self.storage = self.make_storage()
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.users = self.storage.users

    @defer.inlineCallbacks
    def create_users(self, *accounts: str):
        """Create 'localpart@domain' accounts one after the other (ids follow that order)."""
        for account in accounts:
            yield self.users.create_user(*account.split("@"), derive_all("x", FAST))

    def set_clock(self, seconds: float) -> None:
        """Make the storage record ``seconds`` as the time of whatever it is told next."""
        self.storage.now = lambda: seconds


class UserStoreContract(OpenStorage):
    """What any engine must do with accounts and their SCRAM credentials."""

    def test_provides_the_interfaces(self):
        self.assertTrue(verifyObject(IStorage, self.storage))
        self.assertTrue(verifyObject(IUserStore, self.users))

    @defer.inlineCallbacks
    def test_schema_is_at_the_latest_migration(self):
        version = yield self.storage.schema_version()
        self.assertEqual(version, load_migrations()[-1].version)

    @defer.inlineCallbacks
    def test_created_user_exists(self):
        self.assertFalse((yield self.users.user_exists("alice", "example.org")))
        yield self.users.create_user("alice", "example.org", derive_all("secret", FAST))
        self.assertTrue((yield self.users.user_exists("alice", "example.org")))

    @defer.inlineCallbacks
    def test_creating_a_taken_account_fails(self):
        yield self.users.create_user("alice", "example.org", derive_all("one", FAST))
        error = yield self.assertFailure(
            self.users.create_user("alice", "example.org", derive_all("two", FAST)), UserExists
        )
        self.assertIn("alice@example.org", str(error))
        kept = yield self.users.get_credentials("alice", "example.org", "sha-256")
        original = derive_credentials("one", "sha-256", kept.salt, FAST)
        self.assertEqual(kept.stored_key, original.stored_key)

    @defer.inlineCallbacks
    def test_same_localpart_on_another_domain_is_another_account(self):
        yield self.users.create_user("alice", "example.org", derive_all("one", FAST))
        yield self.users.create_user("alice", "example.net", derive_all("two", FAST))
        self.assertEqual(
            (yield self.users.list_users()), ["alice@example.net", "alice@example.org"]
        )

    @defer.inlineCallbacks
    def test_credentials_come_back_as_stored(self):
        stored = derive_all("secret", FAST)
        yield self.users.create_user("alice", "example.org", stored)
        for expected in stored:
            fetched = yield self.users.get_credentials("alice", "example.org", expected.hash_name)
            self.assertEqual(fetched, expected)
        self.assertEqual(sorted(c.hash_name for c in stored), sorted(HASHES))

    @defer.inlineCallbacks
    def test_no_credentials_for_unknown_user_or_hash(self):
        yield self.users.create_user(
            "alice", "example.org", [derive_credentials("secret", "sha-256", iterations=FAST)]
        )
        self.assertIsNone((yield self.users.get_credentials("alice", "example.org", "sha-1")))
        self.assertIsNone((yield self.users.get_credentials("bob", "example.org", "sha-256")))
        self.assertIsNone((yield self.users.get_credentials("alice", "example.net", "sha-256")))

    @defer.inlineCallbacks
    def test_set_credentials_replaces_all_of_them(self):
        yield self.users.create_user("alice", "example.org", derive_all("old", FAST))
        new = derive_credentials("new", "sha-256", iterations=FAST + 1)
        yield self.users.set_credentials("alice", "example.org", [new])
        self.assertEqual((yield self.users.get_credentials("alice", "example.org", "sha-256")), new)
        # A hash left out of the new set must not keep accepting the old password.
        self.assertIsNone((yield self.users.get_credentials("alice", "example.org", "sha-1")))

    @defer.inlineCallbacks
    def test_set_credentials_of_unknown_user_fails(self):
        yield self.assertFailure(
            self.users.set_credentials("nobody", "example.org", derive_all("x", FAST)), UserNotFound
        )
        self.assertFalse((yield self.users.user_exists("nobody", "example.org")))

    @defer.inlineCallbacks
    def test_delete_user_removes_account_and_credentials(self):
        # alice is the newest row, so an engine that reuses ids hands hers to the next account.
        yield self.users.create_user("bob", "example.org", derive_all("bob's", FAST))
        yield self.users.create_user("alice", "example.org", derive_all("old", FAST))
        yield self.users.delete_user("alice", "example.org")
        self.assertFalse((yield self.users.user_exists("alice", "example.org")))
        self.assertIsNone((yield self.users.get_credentials("alice", "example.org", "sha-256")))
        self.assertEqual((yield self.users.list_users()), ["bob@example.org"])
        # A new account of the same name starts clean: only the credentials it was created with.
        yield self.users.create_user(
            "alice", "example.org", [derive_credentials("new", "sha-1", iterations=FAST)]
        )
        self.assertIsNone((yield self.users.get_credentials("alice", "example.org", "sha-256")))

    @defer.inlineCallbacks
    def test_delete_unknown_user_fails(self):
        yield self.users.create_user("alice", "example.org", derive_all("x", FAST))
        error = yield self.assertFailure(
            self.users.delete_user("alice", "example.net"), UserNotFound
        )
        self.assertIn("alice@example.net", str(error))
        self.assertTrue((yield self.users.user_exists("alice", "example.org")))

    @defer.inlineCallbacks
    def test_list_users_is_sorted_and_filters_by_domain(self):
        self.assertEqual((yield self.users.list_users()), [])
        for localpart, domain in [("zoe", "b.ex"), ("adam", "b.ex"), ("mia", "a.ex")]:
            yield self.users.create_user(localpart, domain, derive_all("x", FAST))
        self.assertEqual((yield self.users.list_users()), ["adam@b.ex", "mia@a.ex", "zoe@b.ex"])
        self.assertEqual((yield self.users.list_users("b.ex")), ["adam@b.ex", "zoe@b.ex"])
        self.assertEqual((yield self.users.list_users("c.ex")), [])

    @defer.inlineCallbacks
    def test_non_ascii_localparts_round_trip(self):
        yield self.users.create_user("jürgen", "example.org", derive_all("x", FAST))
        self.assertTrue((yield self.users.user_exists("jürgen", "example.org")))
        self.assertFalse((yield self.users.user_exists("jurgen", "example.org")))
        self.assertEqual((yield self.users.list_users()), ["jürgen@example.org"])


ALICE = ("alice", "example.org")  # (localpart, domain), as every store method takes them
BOB = ("bob", "example.org")
NOBODY = ("nobody", "example.org")

STANZA = "<presence xmlns='jabber:client' from='{0}' to='alice@example.org' type='subscribe'/>"


class RosterStoreContract(OpenStorage):
    """What any engine must do with rosters, their versions and pending requests."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.roster = self.storage.roster
        yield self.create_users("alice@example.org", "bob@example.org")

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IRosterStore, self.roster))

    @defer.inlineCallbacks
    def test_a_new_account_has_an_empty_roster_at_version_zero(self):
        self.assertEqual((yield self.roster.get_roster(*ALICE)), RosterSnapshot(0, ()))
        self.assertIsNone((yield self.roster.get_item(*ALICE, "bob@example.org")))

    @defer.inlineCallbacks
    def test_every_change_bumps_the_version_by_one(self):
        versions = [
            (yield self.roster.put_item(*ALICE, RosterItem("bob@example.org"))),
            (yield self.roster.put_item(*ALICE, RosterItem("eve@example.net"))),
            (yield self.roster.put_item(*ALICE, RosterItem("bob@example.org", subscription="to"))),
            (yield self.roster.remove_item(*ALICE, "eve@example.net")),
        ]
        self.assertEqual(versions, [1, 2, 3, 4])
        snapshot = yield self.roster.get_roster(*ALICE)
        self.assertEqual(snapshot.version, 4)
        self.assertEqual(snapshot.items, (RosterItem("bob@example.org", subscription="to"),))

    @defer.inlineCallbacks
    def test_items_round_trip_field_for_field(self):
        items = [
            RosterItem(
                "jürgen@bücher.example",
                "Jürgen 🦉",
                ("Bücher", "家族", "with space"),
                "both",
                False,
                False,
            ),
            RosterItem("nameless@example.org", None, (), "from", True, False),
            RosterItem("empty-name@example.org", "", ("",), "none", False, True),
            RosterItem("quotes@example.org", 'O\'Brien "Bob"', ('["json"]', "a,b"), "to"),
        ]
        for item in items:
            yield self.roster.put_item(*ALICE, item)
        for item in items:
            self.assertEqual((yield self.roster.get_item(*ALICE, item.contact)), item)
        snapshot = yield self.roster.get_roster(*ALICE)
        self.assertEqual(snapshot.items, tuple(sorted(items, key=lambda i: i.contact)))

    @defer.inlineCallbacks
    def test_the_roster_comes_sorted_by_contact(self):
        for contact in ("zed@example.org", "Zed@example.org", "amy@example.org", "émile@ex.org"):
            yield self.roster.put_item(*ALICE, RosterItem(contact))
        snapshot = yield self.roster.get_roster(*ALICE)
        self.assertEqual(
            [i.contact for i in snapshot.items],
            ["Zed@example.org", "amy@example.org", "zed@example.org", "émile@ex.org"],
        )

    @defer.inlineCallbacks
    def test_put_replaces_the_whole_item(self):
        yield self.roster.put_item(
            *ALICE,
            RosterItem("bob@example.org", "Bob", ("Friends", "Work"), "none", True, False),
        )
        replacement = RosterItem("bob@example.org", None, (), "both")
        yield self.roster.put_item(*ALICE, replacement)
        snapshot = yield self.roster.get_roster(*ALICE)
        self.assertEqual(snapshot.items, (replacement,))

    @defer.inlineCallbacks
    def test_removing_an_absent_item_returns_none_and_keeps_the_version(self):
        yield self.roster.put_item(*ALICE, RosterItem("bob@example.org"))
        self.assertIsNone((yield self.roster.remove_item(*ALICE, "eve@ex.net")))
        self.assertIsNone((yield self.roster.remove_item(*BOB, "bob@example.org")))
        self.assertEqual((yield self.roster.get_roster(*ALICE)).version, 1)
        self.assertEqual((yield self.roster.remove_item(*ALICE, "bob@example.org")), 2)
        self.assertIsNone((yield self.roster.remove_item(*ALICE, "bob@example.org")))
        self.assertEqual((yield self.roster.get_roster(*ALICE)), RosterSnapshot(2, ()))

    @defer.inlineCallbacks
    def test_each_account_has_its_own_roster_and_version(self):
        yield self.create_users("alice@example.net")
        yield self.roster.put_item(*ALICE, RosterItem("bob@example.org"))
        yield self.roster.put_item(*ALICE, RosterItem("eve@example.org"))
        self.assertEqual((yield self.roster.put_item(*BOB, RosterItem("alice@example.org"))), 1)
        self.assertEqual(
            (yield self.roster.get_roster(*BOB)),
            RosterSnapshot(1, (RosterItem("alice@example.org"),)),
        )
        self.assertEqual(
            (yield self.roster.get_roster("alice", "example.net")), RosterSnapshot(0, ())
        )
        self.assertIsNone((yield self.roster.get_item(*BOB, "eve@example.org")))

    @defer.inlineCallbacks
    def test_unknown_accounts(self):
        self.assertEqual((yield self.roster.get_roster(*NOBODY)), RosterSnapshot(0, ()))
        self.assertIsNone((yield self.roster.get_item(*NOBODY, "bob@ex.org")))
        self.assertIsNone((yield self.roster.remove_item(*NOBODY, "bob@ex.org")))
        error = yield self.assertFailure(
            self.roster.put_item(*NOBODY, RosterItem("bob@ex.org")), UserNotFound
        )
        self.assertIn("nobody@example.org", str(error))
        yield self.assertFailure(
            self.roster.add_request(*NOBODY, "bob@ex.org", STANZA), UserNotFound
        )
        self.assertIs((yield self.roster.remove_request(*NOBODY, "bob@ex.org")), False)
        self.assertEqual((yield self.roster.get_requests(*NOBODY)), [])
        self.assertFalse((yield self.users.user_exists(*NOBODY)))

    @defer.inlineCallbacks
    def test_put_item_refuses_anything_but_a_roster_item(self):
        yield self.assertFailure(self.roster.put_item(*ALICE, {"contact": "bob@ex.org"}), TypeError)
        self.assertEqual((yield self.roster.get_roster(*ALICE)), RosterSnapshot(0, ()))

    @defer.inlineCallbacks
    def test_requests_come_back_oldest_first_one_per_contact(self):
        for seconds, contact in [(30, "eve@ex.net"), (10, "bob@ex.org"), (20, "carol@ex.org")]:
            self.set_clock(seconds)
            yield self.roster.add_request(*ALICE, contact, STANZA.format(contact))
        # A second subscribe from bob replaces his first and is now the newest.
        self.set_clock(40)
        yield self.roster.add_request(*ALICE, "bob@ex.org", "<presence again/>")
        self.assertEqual(
            (yield self.roster.get_requests(*ALICE)),
            [
                ("carol@ex.org", STANZA.format("carol@ex.org")),
                ("eve@ex.net", STANZA.format("eve@ex.net")),
                ("bob@ex.org", "<presence again/>"),
            ],
        )

    @defer.inlineCallbacks
    def test_requests_received_together_come_in_contact_order(self):
        self.set_clock(5)
        for contact in ("zed@ex.org", "amy@ex.org"):
            yield self.roster.add_request(*ALICE, contact, STANZA.format(contact))
        requests = yield self.roster.get_requests(*ALICE)
        self.assertEqual([contact for contact, _ in requests], ["amy@ex.org", "zed@ex.org"])

    @defer.inlineCallbacks
    def test_a_request_stanza_round_trips_unchanged(self):
        stanza = (
            "<presence from='jürgen@bücher.example' type='subscribe'>"
            "<status>Hallo 👋 &amp; ;</status></presence>"
        )
        yield self.roster.add_request(*ALICE, "jürgen@bücher.example", stanza)
        self.assertEqual(
            (yield self.roster.get_requests(*ALICE)),
            [("jürgen@bücher.example", stanza)],
        )

    @defer.inlineCallbacks
    def test_removing_a_request_forgets_only_that_one(self):
        yield self.roster.add_request(*ALICE, "bob@ex.org", "<bob/>")
        yield self.roster.add_request(*ALICE, "eve@ex.org", "<eve/>")
        yield self.roster.add_request(*BOB, "bob@ex.org", "<to bob/>")
        self.assertIs((yield self.roster.remove_request(*ALICE, "bob@ex.org")), True)
        self.assertIs((yield self.roster.remove_request(*ALICE, "bob@ex.org")), False)
        self.assertEqual((yield self.roster.get_requests(*ALICE)), [("eve@ex.org", "<eve/>")])
        self.assertEqual((yield self.roster.get_requests(*BOB)), [("bob@ex.org", "<to bob/>")])

    @defer.inlineCallbacks
    def test_accounts_with_requests(self):
        self.assertEqual(list((yield self.roster.accounts_with_requests())), [])
        yield self.roster.add_request(*ALICE, "bob@ex.org", "<bob/>")
        yield self.roster.add_request(*ALICE, "eve@ex.org", "<eve/>")
        yield self.roster.add_request(*BOB, "alice@ex.org", "<alice/>")
        holders = yield self.roster.accounts_with_requests()
        self.assertEqual(sorted(tuple(pair) for pair in holders), sorted([ALICE, BOB]))
        yield self.roster.remove_request(*BOB, "alice@ex.org")
        holders = yield self.roster.accounts_with_requests()
        self.assertEqual([tuple(pair) for pair in holders], [ALICE])

    @defer.inlineCallbacks
    def test_requests_do_not_touch_the_roster(self):
        yield self.roster.add_request(*ALICE, "bob@ex.org", STANZA)
        yield self.roster.remove_request(*ALICE, "bob@ex.org")
        self.assertEqual((yield self.roster.get_roster(*ALICE)), RosterSnapshot(0, ()))

    @defer.inlineCallbacks
    def test_a_request_must_be_serialized_xml(self):
        yield self.assertFailure(
            self.roster.add_request(*ALICE, "bob@ex.org", b"<presence/>"),
            TypeError,
        )
        self.assertEqual((yield self.roster.get_requests(*ALICE)), [])

    @defer.inlineCallbacks
    def test_deleting_the_account_deletes_its_roster_and_requests(self):
        # alice is the newest account, so an engine that reuses ids gives hers to carol: any
        # row left behind would then show up in carol's roster.
        yield self.users.delete_user(*BOB)
        yield self.roster.put_item(*ALICE, RosterItem("bob@example.org"))
        yield self.roster.add_request(*ALICE, "eve@ex.org", STANZA)
        yield self.users.delete_user(*ALICE)
        yield self.create_users("carol@example.org")
        for localpart in ("alice", "carol"):
            self.assertEqual(
                (yield self.roster.get_roster(localpart, "example.org")), RosterSnapshot(0, ())
            )
            self.assertEqual((yield self.roster.get_requests(localpart, "example.org")), [])
        yield self.create_users("alice@example.org")
        self.assertEqual((yield self.roster.get_roster(*ALICE)), RosterSnapshot(0, ()))


class OfflineStoreContract(OpenStorage):
    """What any engine must do with the messages kept for offline accounts."""

    LIMIT = 100

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.offline = self.storage.offline
        yield self.create_users("alice@example.org", "bob@example.org")

    def message(self, n: int) -> str:
        return f"<message xmlns='jabber:client' to='alice@example.org'><body>{n}</body></message>"

    @defer.inlineCallbacks
    def store_all(self, localpart: str, bodies, limit: int = LIMIT):
        """Store one message per body, stamped 1000 + body; the list of results."""
        results = []
        for n in bodies:
            stored = yield self.offline.store(
                localpart, "example.org", self.message(n), 1000.0 + n, limit
            )
            results.append(stored)
        return results

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IOfflineStore, self.offline))

    @defer.inlineCallbacks
    def test_nothing_is_kept_at_first(self):
        self.assertEqual((yield self.offline.fetch(*ALICE)), [])
        self.assertEqual((yield self.offline.count(*ALICE)), 0)

    @defer.inlineCallbacks
    def test_messages_come_back_in_the_order_stored(self):
        self.assertEqual((yield self.store_all("alice", [1, 2, 3])), [True, True, True])
        fetched = yield self.offline.fetch(*ALICE)
        self.assertEqual(
            [(stanza, stamp) for _, stanza, stamp in fetched],
            [(self.message(n), 1000.0 + n) for n in (1, 2, 3)],
        )
        ids = [id for id, _, _ in fetched]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertTrue(all(isinstance(id, int) for id in ids))
        self.assertEqual((yield self.offline.count(*ALICE)), 3)

    @defer.inlineCallbacks
    def test_the_order_stored_wins_over_the_stamps(self):
        # Messages are delivered in the order accepted (RFC 6120 §10.1), even when the clock
        # stepped back between two of them.
        yield self.store_all("alice", [5, 2, 9])
        fetched = yield self.offline.fetch(*ALICE)
        self.assertEqual([stamp for _, _, stamp in fetched], [1005.0, 1002.0, 1009.0])

    @defer.inlineCallbacks
    def test_stanzas_round_trip_unchanged(self):
        stanza = (
            "<message from='jürgen@bücher.example/📱'><body>Grüße &lt;3 ; '--\n\ttab"
            + "x" * 100_000
            + "</body></message>"
        )
        yield self.offline.store(*ALICE, stanza, 1.5, self.LIMIT)
        self.assertEqual(
            [(s, t) for _, s, t in (yield self.offline.fetch(*ALICE))],
            [(stanza, 1.5)],
        )

    @defer.inlineCallbacks
    def test_the_limit_refuses_further_messages(self):
        stored = yield self.store_all("alice", [1, 2, 3, 4], limit=3)
        self.assertEqual(stored, [True, True, True, False])
        self.assertEqual((yield self.offline.count(*ALICE)), 3)
        # The limit is per account, and a higher limit takes more.
        self.assertEqual((yield self.store_all("bob", [1], limit=3)), [True])
        self.assertEqual((yield self.store_all("alice", [5], limit=4)), [True])
        fetched = yield self.offline.fetch(*ALICE)
        self.assertEqual([t for _, _, t in fetched], [1001.0, 1002.0, 1003.0, 1005.0])

    @defer.inlineCallbacks
    def test_delivered_messages_free_their_places(self):
        yield self.store_all("alice", [1, 2], limit=2)
        first, _ = yield self.offline.fetch(*ALICE)
        yield self.offline.delete(*ALICE, first[0])
        self.assertEqual((yield self.store_all("alice", [3, 4], limit=2)), [True, False])

    @defer.inlineCallbacks
    def test_a_zero_limit_keeps_nothing(self):
        self.assertEqual((yield self.store_all("alice", [1], limit=0)), [False])
        self.assertEqual((yield self.offline.count(*ALICE)), 0)

    @defer.inlineCallbacks
    def test_delete_up_to_touches_only_that_account_and_older_ids(self):
        yield self.store_all("alice", [1])
        yield self.store_all("bob", [2])
        yield self.store_all("alice", [3])
        yield self.store_all("bob", [4])
        yield self.store_all("alice", [5])
        alice = yield self.offline.fetch(*ALICE)
        # alice's second id is above bob's first: only the account keeps bob's safe.
        yield self.offline.delete(*ALICE, alice[1][0])
        self.assertEqual((yield self.offline.fetch(*ALICE)), alice[2:])
        self.assertEqual([t for _, _, t in (yield self.offline.fetch(*BOB))], [1002.0, 1004.0])
        self.assertEqual((yield self.offline.count(*BOB)), 2)

    @defer.inlineCallbacks
    def test_ids_are_never_reused(self):
        # A late "delete up to N" (from a second resource that fetched the same messages)
        # must not reach messages stored after the first delete emptied the table.
        yield self.store_all("alice", [1, 2])
        fetched = yield self.offline.fetch(*ALICE)
        newest = fetched[-1][0]
        yield self.offline.delete(*ALICE, newest)
        yield self.store_all("alice", [3])
        yield self.offline.delete(*ALICE, newest)
        (kept,) = yield self.offline.fetch(*ALICE)
        self.assertGreater(kept[0], newest)
        self.assertEqual(kept[2], 1003.0)

    @defer.inlineCallbacks
    def test_accounts_with_messages(self):
        self.assertEqual(list((yield self.offline.accounts_with_messages())), [])
        yield self.store_all("alice", [1, 2])
        yield self.store_all("bob", [3])
        holders = yield self.offline.accounts_with_messages()
        self.assertEqual(sorted(tuple(pair) for pair in holders),
                         [("alice", "example.org"), ("bob", "example.org")])
        fetched = yield self.offline.fetch(*ALICE)
        yield self.offline.delete(*ALICE, fetched[-1][0])
        holders = yield self.offline.accounts_with_messages()
        self.assertEqual([tuple(pair) for pair in holders], [("bob", "example.org")])

    @defer.inlineCallbacks
    def test_unknown_accounts(self):
        error = yield self.assertFailure(
            self.offline.store(*NOBODY, self.message(1), 1.0, self.LIMIT),
            UserNotFound,
        )
        self.assertIn("nobody@example.org", str(error))
        self.assertEqual((yield self.offline.fetch(*NOBODY)), [])
        self.assertEqual((yield self.offline.count(*NOBODY)), 0)
        yield self.offline.delete(*NOBODY, 10**9)
        self.assertFalse((yield self.users.user_exists(*NOBODY)))

    @defer.inlineCallbacks
    def test_bad_arguments_fail_clearly(self):
        bad = [
            (b"<message/>", 1.0, self.LIMIT, TypeError),
            ("<message/>", "yesterday", self.LIMIT, TypeError),
            ("<message/>", 1.0, -1, ValueError),
            ("<message/>", 1.0, 2.5, ValueError),
            ("<message/>", 1.0, None, ValueError),
        ]
        for stanza, stamp, limit, exception in bad:
            yield self.assertFailure(self.offline.store(*ALICE, stanza, stamp, limit), exception)
        yield self.assertFailure(self.offline.delete(*ALICE, "all"), TypeError)
        self.assertEqual((yield self.offline.count(*ALICE)), 0)

    @defer.inlineCallbacks
    def test_deleting_the_account_deletes_its_messages(self):
        # As for the roster: carol may be handed alice's id, and must not inherit her mail.
        yield self.users.delete_user(*BOB)
        yield self.store_all("alice", [1, 2])
        yield self.users.delete_user(*ALICE)
        yield self.create_users("carol@example.org", "alice@example.org")
        for localpart in ("alice", "carol"):
            self.assertEqual((yield self.offline.fetch(localpart, "example.org")), [])
            self.assertEqual((yield self.offline.count(localpart, "example.org")), 0)


class ServerRosterStoreContract(OpenStorage):
    """What any engine must do with the server roster (XEP-0267)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.server_roster = self.storage.server_roster

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IServerRosterStore, self.server_roster))

    @defer.inlineCallbacks
    def test_empty_at_first(self):
        self.assertEqual((yield self.server_roster.get_peers()), [])

    @defer.inlineCallbacks
    def test_peers_round_trip_field_for_field_sorted(self):
        peers = [
            ServerPeer("example.org", "zed.example", "both", False, False, 1700000000.25),
            ServerPeer("example.org", "bücher.example", "none", True, True, 5.0),
            ServerPeer("example.net", "zed.example", "to", False, True, 0.0),
            ServerPeer("example.org", "amy.example", "from", True, False, 12.5),
        ]
        for peer in peers:
            yield self.server_roster.put_peer(peer)
        self.assertEqual(
            (yield self.server_roster.get_peers()),
            sorted(peers, key=lambda p: (p.local, p.peer)),
        )

    @defer.inlineCallbacks
    def test_put_replaces_the_row_of_the_same_pair(self):
        yield self.server_roster.put_peer(ServerPeer("example.org", "peer.example", "none", True))
        yield self.server_roster.put_peer(ServerPeer("example.net", "peer.example", "none", True))
        replacement = ServerPeer("example.org", "peer.example", "both", since=99.0)
        yield self.server_roster.put_peer(replacement)
        self.assertEqual(
            (yield self.server_roster.get_peers()),
            [ServerPeer("example.net", "peer.example", "none", True), replacement],
        )

    @defer.inlineCallbacks
    def test_remove_forgets_only_that_pair(self):
        yield self.server_roster.put_peer(ServerPeer("example.org", "a.example", "both"))
        yield self.server_roster.put_peer(ServerPeer("example.org", "b.example", "to"))
        self.assertIs((yield self.server_roster.remove_peer("example.org", "a.example")), True)
        self.assertIs((yield self.server_roster.remove_peer("example.org", "a.example")), False)
        self.assertIs((yield self.server_roster.remove_peer("example.net", "b.example")), False)
        self.assertEqual(
            (yield self.server_roster.get_peers()), [ServerPeer("example.org", "b.example", "to")]
        )

    @defer.inlineCallbacks
    def test_put_refuses_anything_but_a_server_peer(self):
        yield self.assertFailure(
            self.server_roster.put_peer(("example.org", "peer.example", "both")), TypeError
        )
        self.assertEqual((yield self.server_roster.get_peers()), [])

    @defer.inlineCallbacks
    def test_the_roster_has_nothing_to_do_with_accounts(self):
        yield self.create_users("alice@example.org")
        yield self.server_roster.put_peer(ServerPeer("example.org", "peer.example", "both"))
        yield self.users.delete_user("alice", "example.org")
        self.assertEqual(len((yield self.server_roster.get_peers())), 1)

    def test_impossible_states_are_refused_where_made(self):
        for bad in (dict(subscription="to", pending_out=True),
                    dict(subscription="both", pending_in=True),
                    dict(subscription="maybe")):
            with self.assertRaises(ValueError):
                ServerPeer("example.org", "peer.example", **bad)
        with self.assertRaises(TypeError):
            ServerPeer("example.org", "peer.example", pending_in=1)
        with self.assertRaises(ValueError):
            ServerPeer("example.org", "")


def incident(n: int, direction: str = "received", peer: str = "peer.example") -> IncidentRecord:
    report = f"<report xmlns='urn:xmpp:incident:2'><n>{n}</n></report>"
    return IncidentRecord(direction, "example.org", peer, f"id-{n}", f"incident {n}", report,
                          1000.0 + n)


class IncidentStoreContract(OpenStorage):
    """What any engine must do with incident reports (XEP-0268)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.incidents = self.storage.incidents

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IIncidentStore, self.incidents))

    @defer.inlineCallbacks
    def test_reports_come_back_in_the_order_kept_with_growing_ids(self):
        self.assertEqual((yield self.incidents.list_incidents()), [])
        records = [incident(3), incident(1, "sent", "other.example"), incident(2)]
        ids = []
        for record in records:
            ids.append((yield self.incidents.add_incident(record)))
        self.assertEqual(ids, sorted(set(ids)))
        listed = yield self.incidents.list_incidents()
        self.assertEqual([r.id for r in listed], ids)
        self.assertEqual(
            [dataclasses.replace(r, id=None) for r in listed], records
        )

    @defer.inlineCallbacks
    def test_a_report_round_trips_unchanged(self):
        record = IncidentRecord(
            "received", "example.org", "bücher.example", "4BF5D2CE-7C90",
            "spam from 'clueless.lit' -- again; 👋", "<report>" + "x" * 50_000 + "</report>",
            1.5,
        )
        yield self.incidents.add_incident(record)
        (listed,) = yield self.incidents.list_incidents()
        self.assertEqual(dataclasses.replace(listed, id=None), record)

    @defer.inlineCallbacks
    def test_a_given_id_is_ignored(self):
        first = yield self.incidents.add_incident(dataclasses.replace(incident(1), id=10**6))
        second = yield self.incidents.add_incident(incident(2))
        self.assertGreater(second, first)

    @defer.inlineCallbacks
    def test_add_refuses_anything_but_a_record(self):
        yield self.assertFailure(self.incidents.add_incident({"peer": "x"}), TypeError)
        self.assertEqual((yield self.incidents.list_incidents()), [])

    def test_bad_records_are_refused_where_made(self):
        with self.assertRaises(ValueError):
            dataclasses.replace(incident(1), direction="forwarded")
        with self.assertRaises(TypeError):
            dataclasses.replace(incident(1), report=b"<report/>")
        with self.assertRaises(TypeError):
            dataclasses.replace(incident(1), stamp="now")
