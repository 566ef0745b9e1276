"""The admin API over real SQLite, with a small fake server for the session commands."""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppd import events
from xmppd.admin.api import AdminAPI
from xmppd.interfaces import IAdminAPI, ISession, ISessionRegistry
from xmppd.jid import JID, parse_jid
from xmppd.storage import UserExists, UserNotFound
from xmppd.storage.auth import StorageAuthBackend
from xmppd.storage.sqlite import SQLiteStorage

DOMAINS = ["example.org", "example.net"]
PASSWORD = "correct horse battery staple"
KICKED = ("policy-violation", "kicked by an administrator")


@implementer(ISession)
class FakeSession:
    def __init__(self, registry: FakeRegistry, jid: str, peer: str, started: float) -> None:
        self.registry = registry
        self.jid = parse_jid(jid)
        self.peer = peer
        self.secure = True
        self.authenticated_by = "SCRAM-SHA-256"
        self.started = started
        self.closed_with: tuple[str | None, str | None] | None = None

    def send(self, element) -> None:
        raise AssertionError("the admin API sends no stanzas")

    def close(self, condition=None, text=None) -> None:
        self.closed_with = (condition, text)
        self.registry.unbind(self)  # as a real stream does when it ends


@implementer(ISessionRegistry)
class FakeRegistry:
    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def add(self, jid: str, peer: str = "192.0.2.1:40000", started: float = 1000.0) -> FakeSession:
        session = FakeSession(self, jid, peer, started)
        self.sessions.append(session)
        return session

    def bind(self, session, resource):
        raise NotImplementedError

    def unbind(self, session) -> None:
        self.sessions.remove(session)

    def get(self, full_jid: JID):
        return next((s for s in self.sessions if s.jid == full_jid), None)

    def resources(self, bare_jid: JID) -> list[FakeSession]:
        return [s for s in self.sessions if s.jid.bare() == bare_jid]

    def all(self) -> list[FakeSession]:
        return list(self.sessions)


class FakeFederation:
    """The part of S2SManager the admin API uses: list_links and close_links."""

    def __init__(self, links: list[dict]) -> None:
        self.links = links
        self.closed: list[str] = []

    def list_links(self) -> list[dict]:
        return [dict(link) for link in self.links]

    def close_links(self, domain: str) -> int:
        self.closed.append(domain)
        return sum(1 for link in self.links if link["remote"] == domain)


class FakeServer:
    def __init__(self) -> None:
        self.sessions = FakeRegistry()
        self.emitted: list[tuple] = []
        self.s2s: FakeFederation | None = None  # federation off, as without [s2s] listen

    def emit(self, event, *args):
        self.emitted.append((event, *args))
        return defer.succeed(None)


class AdminAPITestCase(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.storage = SQLiteStorage(":memory:")
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.server = FakeServer()
        self.api = AdminAPI(self.storage, DOMAINS, self.server)
        self.offline = AdminAPI(self.storage, DOMAINS)
        self.auth = StorageAuthBackend(self.storage.users)

    def password_works(self, localpart, domain, password):
        return self.auth.check_password(localpart, domain, password)


class AccountTests(AdminAPITestCase):
    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IAdminAPI, self.api))

    @defer.inlineCallbacks
    def test_add_user_stores_keys_for_the_password(self):
        yield self.offline.add_user("alice@example.org", PASSWORD)
        self.assertEqual((yield self.offline.list_users()), ["alice@example.org"])
        self.assertTrue((yield self.password_works("alice", "example.org", PASSWORD)))
        self.assertFalse((yield self.password_works("alice", "example.org", "wrong")))
        for hash_name in ("sha-1", "sha-256"):
            keys = yield self.storage.users.get_credentials("alice", "example.org", hash_name)
            self.assertIsNotNone(keys, hash_name)

    @defer.inlineCallbacks
    def test_add_user_prepares_jid_and_password(self):
        yield self.offline.add_user("Alice@EXAMPLE.org", "Pass\u2003word")  # EM SPACE → space
        self.assertEqual((yield self.offline.list_users()), ["alice@example.org"])
        self.assertTrue((yield self.password_works("alice", "example.org", "Pass word")))

    @defer.inlineCallbacks
    def test_hosted_domains_are_compared_prepared(self):
        api = AdminAPI(self.storage, ["Example.ORG."])
        yield api.add_user("bob@example.org", PASSWORD)
        self.assertEqual((yield api.list_users("EXAMPLE.org")), ["bob@example.org"])

    @defer.inlineCallbacks
    def test_add_user_emits_user_created_when_the_server_runs(self):
        yield self.api.add_user("alice@example.org", PASSWORD)
        alice = parse_jid("alice@example.org")
        self.assertEqual(self.server.emitted, [(events.USER_CREATED, alice)])

    @defer.inlineCallbacks
    def test_bad_addresses_are_refused_with_the_reason(self):
        cases = {
            "alice@example.org/phone": "resource",
            "example.org": "no user part",
            "alice@example.com": "example.com is not a domain of this server",
            "@example.org": "invalid JID",
            "al ice@example.org": "invalid JID",
            "": "invalid JID",
        }
        for jid, reason in cases.items():
            error = yield self.assertFailure(self.offline.add_user(jid, PASSWORD), ValueError)
            self.assertIn(reason, str(error), jid)
        self.assertEqual((yield self.offline.list_users()), [])

    @defer.inlineCallbacks
    def test_unknown_domain_error_lists_ours(self):
        d = self.offline.add_user("a@elsewhere.example", PASSWORD)
        error = yield self.assertFailure(d, ValueError)
        self.assertIn("example.net, example.org", str(error))

    @defer.inlineCallbacks
    def test_bad_passwords_are_refused_without_being_echoed(self):
        for password in ("", "tab\tinside"):
            error = yield self.assertFailure(
                self.offline.add_user("alice@example.org", password), ValueError
            )
            self.assertIn("password", str(error))
            if password:
                self.assertNotIn(password, str(error))
        self.assertEqual((yield self.offline.list_users()), [])

    @defer.inlineCallbacks
    def test_duplicate_user_fails(self):
        yield self.offline.add_user("alice@example.org", PASSWORD)
        yield self.assertFailure(self.offline.add_user("ALICE@example.org", "other"), UserExists)
        self.assertTrue((yield self.password_works("alice", "example.org", PASSWORD)))

    @defer.inlineCallbacks
    def test_set_password_replaces_the_old_one(self):
        yield self.offline.add_user("alice@example.org", PASSWORD)
        yield self.offline.set_password("alice@example.org", "new secret")
        self.assertFalse((yield self.password_works("alice", "example.org", PASSWORD)))
        self.assertTrue((yield self.password_works("alice", "example.org", "new secret")))

    @defer.inlineCallbacks
    def test_set_password_of_unknown_user_fails(self):
        yield self.assertFailure(self.offline.set_password("bob@example.org", "x"), UserNotFound)
        self.assertEqual((yield self.offline.list_users()), [])

    @defer.inlineCallbacks
    def test_list_users_by_domain(self):
        for jid in ("b@example.org", "a@example.net", "a@example.org"):
            yield self.offline.add_user(jid, PASSWORD)
        self.assertEqual(
            (yield self.offline.list_users()), ["a@example.net", "a@example.org", "b@example.org"]
        )
        self.assertEqual(
            (yield self.offline.list_users("example.org")), ["a@example.org", "b@example.org"]
        )
        yield self.assertFailure(self.offline.list_users("a@example.org"), ValueError)

    @defer.inlineCallbacks
    def test_no_password_reaches_the_log(self):
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        yield self.api.add_user("alice@example.org", PASSWORD)
        yield self.api.set_password("alice@example.org", "second " + PASSWORD)
        yield self.assertFailure(self.api.add_user("alice@example.org", PASSWORD), UserExists)
        self.assertTrue(logged)
        for event in logged:
            self.assertNotIn("horse", repr(event))


class DeleteUserTests(AdminAPITestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        yield self.api.add_user("alice@example.org", PASSWORD)
        yield self.api.add_user("bob@example.org", PASSWORD)
        self.server.emitted.clear()
        registry = self.server.sessions
        self.phone = registry.add("alice@example.org/phone")
        self.laptop = registry.add("alice@example.org/laptop")
        self.bob = registry.add("bob@example.org/desk")

    @defer.inlineCallbacks
    def test_delete_ends_the_accounts_sessions_and_announces_it(self):
        closed = yield self.api.delete_user("alice@example.org")
        self.assertEqual(closed, 2)
        for session in (self.phone, self.laptop):
            self.assertEqual(session.closed_with, ("not-authorized", "account deleted"))
        self.assertIsNone(self.bob.closed_with)
        alice = parse_jid("alice@example.org")
        self.assertEqual(self.server.emitted,
                         [(events.USER_DELETING, alice), (events.USER_DELETED, alice)])
        self.assertEqual((yield self.api.list_users()), ["bob@example.org"])
        self.assertFalse((yield self.password_works("alice", "example.org", PASSWORD)))

    @defer.inlineCallbacks
    def test_delete_unknown_user_fails_and_touches_nothing(self):
        yield self.assertFailure(self.api.delete_user("carol@example.org"), UserNotFound)
        self.assertEqual(self.server.emitted, [])
        self.assertEqual(len(self.server.sessions.all()), 3)

    @defer.inlineCallbacks
    def test_delete_works_with_the_server_stopped(self):
        self.assertEqual((yield self.offline.delete_user("alice@example.org")), 0)
        self.assertEqual((yield self.offline.list_users()), ["bob@example.org"])
        self.assertIsNone(self.phone.closed_with)


class SessionTests(AdminAPITestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        registry = self.server.sessions
        self.phone = registry.add("alice@example.org/phone", "198.51.100.7:5000", started=200.0)
        self.laptop = registry.add("alice@example.org/laptop", "[2001:db8::1]:6000", started=100.0)
        self.bob = registry.add("bob@example.org/desk", started=300.0)

    def test_list_sessions(self):
        self.assertEqual(
            self.api.list_sessions(),
            [
                {"jid": "alice@example.org/laptop", "peer": "[2001:db8::1]:6000", "secure": True,
                 "mechanism": "SCRAM-SHA-256", "since": 100.0},
                {"jid": "alice@example.org/phone", "peer": "198.51.100.7:5000", "secure": True,
                 "mechanism": "SCRAM-SHA-256", "since": 200.0},
                {"jid": "bob@example.org/desk", "peer": "192.0.2.1:40000", "secure": True,
                 "mechanism": "SCRAM-SHA-256", "since": 300.0},
            ],
        )

    def test_session_commands_need_the_server(self):
        for command, args in ((self.offline.list_sessions, ()), (self.offline.kick, ("a@b",))):
            error = self.assertRaises(RuntimeError, command, *args)
            self.assertEqual(str(error), "the server is not running")

    def test_kick_a_full_jid_closes_that_session_only(self):
        self.assertEqual(self.api.kick("alice@example.org/phone"), 1)
        self.assertEqual(self.phone.closed_with, KICKED)
        self.assertIsNone(self.laptop.closed_with)
        self.assertIsNone(self.bob.closed_with)

    def test_kick_a_bare_jid_closes_all_its_sessions(self):
        self.assertEqual(self.api.kick("Alice@example.org"), 2)
        for session in (self.phone, self.laptop):
            self.assertEqual(session.closed_with, KICKED)
        self.assertIsNone(self.bob.closed_with)
        self.assertEqual([row["jid"] for row in self.api.list_sessions()], ["bob@example.org/desk"])

    def test_kick_nobody(self):
        self.assertEqual(self.api.kick("carol@example.org"), 0)
        self.assertEqual(self.api.kick("alice@example.org/tablet"), 0)
        self.assertEqual(len(self.api.list_sessions()), 3)

    def test_kick_a_bad_jid(self):
        self.assertRaises(ValueError, self.api.kick, "alice@@example.org")


def s2s_link(direction: str, remote: str, auth: str = "dialback", tls: bool = True,
             peer: str = "192.0.2.9:5269", local: str = "example.org") -> dict:
    return {"direction": direction, "local": local, "remote": remote, "auth": auth,
            "tls": tls, "peer": peer}


class FederationTests(AdminAPITestCase):
    def setUp(self):
        d = super().setUp()
        self.links = [
            s2s_link("outgoing", "b.example", "certificate", peer="198.51.100.2:5269"),
            s2s_link("incoming", "b.example", "dialback+certificate", peer="198.51.100.2:41000"),
            s2s_link("incoming", "a.example", "dialback", tls=False, local="example.net"),
        ]
        return d

    def test_list_s2s_gives_each_link_sorted_by_remote_then_direction(self):
        self.server.s2s = FakeFederation(self.links)
        self.assertEqual(self.api.list_s2s(), [self.links[2], self.links[1], self.links[0]])

    def test_list_s2s_keeps_only_the_documented_fields(self):
        link = dict(self.links[0], stream_id="abc", queue=3)
        self.server.s2s = FakeFederation([link])
        (row,) = self.api.list_s2s()
        self.assertEqual(sorted(row), ["auth", "direction", "local", "peer", "remote", "tls"])

    def test_list_s2s_is_empty_when_federation_is_off(self):
        self.assertIsNone(self.server.s2s)
        self.assertEqual(self.api.list_s2s(), [])

    def test_close_s2s_closes_the_links_of_the_prepared_domain(self):
        federation = self.server.s2s = FakeFederation(self.links)
        self.assertEqual(self.api.close_s2s("B.Example."), 2)
        self.assertEqual(federation.closed, ["b.example"])

    def test_close_s2s_of_an_unknown_domain_closes_nothing(self):
        self.server.s2s = FakeFederation(self.links)
        self.assertEqual(self.api.close_s2s("c.example"), 0)

    def test_close_s2s_with_federation_off_closes_nothing(self):
        self.assertEqual(self.api.close_s2s("b.example"), 0)

    def test_close_s2s_refuses_a_bad_domain_before_touching_links(self):
        federation = self.server.s2s = FakeFederation(self.links)
        for bad in ("", "user@b.example", "b.example/res", "b example", None):
            error = self.assertRaises(ValueError, self.api.close_s2s, bad)
            self.assertIn("invalid domain", str(error))
        self.assertEqual(federation.closed, [])

    def test_s2s_commands_need_the_server(self):
        commands = ((self.offline.list_s2s, ()), (self.offline.close_s2s, ("b.example",)))
        for command, args in commands:
            error = self.assertRaises(RuntimeError, command, *args)
            self.assertEqual(str(error), "the server is not running")
