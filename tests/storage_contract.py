"""The IUserStore contract, written once and run against every storage engine.

Mix ``UserStoreContract`` into a ``twisted.trial.unittest.TestCase`` that defines
``make_storage()`` returning an unopened IStorage; fixtures go through the interface only.
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface.verify import verifyObject

from xmppd.interfaces import IStorage, IUserStore
from xmppd.sasl.credentials import HASHES, derive_all, derive_credentials
from xmppd.storage import UserExists, UserNotFound
from xmppd.storage.migrate import load_migrations

FAST = 64  # iterations: the store keeps whatever it is given, tests need not be slow


class UserStoreContract:
    """What any engine must do with accounts and their SCRAM credentials."""

    def make_storage(self):
        raise NotImplementedError("a storage test case defines make_storage()")

    @defer.inlineCallbacks
    def setUp(self):
        self.storage = self.make_storage()
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.users = self.storage.users

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
