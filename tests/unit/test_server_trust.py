"""Server buddies (XEP-0267) end to end inside one server: the ServerTrust service over real
SQLite, the server_trust plugin on the real router with federation recorded, the admin API,
and the access checks (IServerTrust, and the buddies-only policy over the real service)."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.trust_helpers import ADMIN, LOCAL, PEER, REMOTE_ADMIN, TrustFixture
from xmppd import events, ns
from xmppd.admin.api import AdminAPI
from xmppd.im.subscription import STATES
from xmppd.interfaces import IServerTrust, IXmppdPlugin
from xmppd.jid import parse_jid
from xmppd.plugins.server_trust import server_trust
from xmppd.registry import PluginError
from xmppd.s2s.policy import FederationPolicy, Proof, ProvidedTrust
from xmppd.stanza import Stanza
from xmppd.storage.records import ServerPeer
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.trust import TrustError
from xmppd.trust.ratelimit import RateLimiter
from xmppd.trust.service import ServerTrust


def logged_texts(test: TestCase) -> list[str]:
    """Every log line emitted from now on, formatted (filled in as they come)."""
    from twisted.logger import formatEvent

    lines: list[str] = []

    def observe(event) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    test.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


# --------------------------------------------------------------------------- the service alone


class Recorder:
    """What the service sends and tells, instead of routing it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.told: list[tuple[str, str]] = []

    def send(self, local: str, peer: str, type: str) -> None:
        self.sent.append((local, peer, type))

    def notify(self, local: str, text: str) -> None:
        self.told.append((local, text))


class ServiceTests(TestCase):
    DOMAINS = ("example.org", "example.net")

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.path = os.path.join(self.mktemp(), "xmppd.sqlite3")
        return self.open()

    async def open(self, max_pending: int = 100) -> ServerTrust:
        self.storage = SQLiteStorage(self.path)
        await self.storage.open()
        self.addCleanup(self.storage.close)
        self.out = Recorder()
        self.trust = ServerTrust(self.storage.server_roster, self.DOMAINS, self.out.send,
                                 self.out.notify, self.clock.seconds, max_pending)
        await self.trust.load()
        return self.trust

    async def restart(self) -> ServerTrust:
        await self.storage.close()
        return await self.open()

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IServerTrust, self.trust))

    async def test_nothing_is_sent_until_an_admin_asks(self):
        self.assertEqual((self.out.sent, self.trust.peers()), ([], []))
        rows = await self.trust.request("Peer.Example.")
        self.assertEqual(self.out.sent, [("example.org", PEER, "subscribe")])
        self.assertEqual(rows, [{
            "domain": PEER, "local": "example.org", "subscription": "none", "pending_in": False,
            "pending_out": True, "available": False, "state": "None + Pending Out",
            "since": 1000.0}])
        self.assertEqual(self.trust.peers(), rows)
        self.assertEqual(await self.storage.server_roster.get_peers(),
                         [ServerPeer("example.org", PEER, "none", True, False, 1000.0)])

    async def test_a_request_is_stored_pending_and_told_once(self):
        await self.trust.received("example.org", PEER, "subscribe")
        await self.trust.received("example.org", PEER, "subscribe")
        self.assertEqual(self.out.sent, [])
        self.assertEqual(len(self.out.told), 1)
        local, text = self.out.told[0]
        self.assertEqual(local, "example.org")
        self.assertIn(f"{PEER} asks to subscribe to the server presence of example.org", text)
        self.assertIn(f"trust approve {PEER}", text)
        self.assertEqual([row["domain"] for row in self.trust.pending()], [PEER])
        self.assertFalse(self.trust.is_trusted_buddy(PEER))

    async def test_mutual_trust_survives_a_restart(self):
        await self.trust.request(PEER)
        await self.trust.received("example.org", PEER, "subscribed")
        await self.trust.received("example.org", PEER, "subscribe")
        self.assertFalse(self.trust.is_trusted_buddy(PEER))  # not before our admin says so
        await self.trust.approve(PEER)
        self.assertTrue(self.trust.is_trusted_buddy(PEER))
        before = self.trust.peers()
        trust = await self.restart()
        self.assertEqual(trust.peers(), before)
        self.assertTrue(trust.is_trusted_buddy(PEER))
        self.assertEqual(trust.buddies(), [("example.org", PEER)])

    async def test_revocation_survives_a_restart(self):
        await self.trust.received("example.org", PEER, "subscribe")
        await self.trust.approve(PEER)
        await self.trust.received("example.org", PEER, "subscribed")
        self.assertTrue(self.trust.is_trusted_buddy(PEER))
        self.out.sent.clear()
        rows = await self.trust.revoke(PEER)
        self.assertEqual(self.out.sent, [("example.org", PEER, "unsubscribe"),
                                         ("example.org", PEER, "unsubscribed")])
        self.assertEqual(rows[0]["state"], "None")
        self.assertFalse(self.trust.is_trusted_buddy(PEER))
        trust = await self.restart()
        self.assertEqual((trust.peers(), trust.buddies()), ([], []))
        self.assertEqual(await self.storage.server_roster.get_peers(), [])

    async def test_every_state_as_the_rest_of_the_server_sees_it(self):
        # IServerTrust and the buddies-only policy, over the real service, for each state.
        for n, state in enumerate(STATES):
            if state.subscription != "none" or state.pending_out or state.pending_in:
                await self.storage.server_roster.put_peer(ServerPeer(
                    "example.org", f"p{n}.example", state.subscription, state.pending_out,
                    state.pending_in, 1.0))
        trust = await self.restart()
        policy = FederationPolicy("buddies-only", trust=trust)
        chat = domish.Element((None, "message"))
        chat["type"] = "chat"
        for n, state in enumerate(STATES):
            peer = f"p{n}.example"
            user_stanza = Stanza(chat, parse_jid(f"bob@{peer}/r"), parse_jid("a@example.org"))
            subscribe = domish.Element((None, "presence"))
            subscribe["type"] = "subscribe"
            server_stanza = Stanza(subscribe, parse_jid(peer), parse_jid("example.org"))
            mutual = state.subscription == "both"
            self.assertIs(trust.is_trusted_buddy(peer), mutual, str(state))
            self.assertIs(trust.is_trusted_buddy(peer.upper() + "."), mutual, str(state))
            self.assertIs(policy.admits(peer, user_stanza).ok, mutual, str(state))
            self.assertTrue(policy.admits(peer, server_stanza).ok, str(state))
            self.assertTrue(policy.decide(peer, Proof(tls=True, dialback=True)).ok)
        self.assertEqual(trust.buddies(), [("example.org", f"p{len(STATES) - 1}.example")])
        self.assertFalse(trust.is_trusted_buddy("not a domain"))

    async def test_admin_actions_that_do_not_apply_fail_clearly(self):
        for action, domain, message in [
            ("approve", PEER, f"{PEER}: no pending request to approve"),
            ("deny", PEER, f"{PEER}: no pending request to deny"),
            ("revoke", PEER, f"{PEER}: no relationship to revoke"),
            ("request", "example.net", "example.net is one of our own domains"),
            ("request", "bad domain", "invalid peer domain 'bad domain'"),
            ("request", None, "invalid peer domain None"),
        ]:
            error = await self.assertFailure(getattr(self.trust, action)(domain), TrustError)
            self.assertIn(message, str(error))
        error = await self.assertFailure(self.trust.request(PEER, "elsewhere.example"),
                                         TrustError)
        self.assertIn("elsewhere.example is not a domain of this server", str(error))
        self.assertIsInstance(error, ValueError)
        self.assertEqual((self.out.sent, self.trust.peers()), ([], []))

    async def test_each_of_our_domains_has_its_own_relationship(self):
        await self.trust.received("example.net", PEER, "subscribe")
        rows = await self.trust.approve(PEER)
        self.assertEqual(self.out.sent, [("example.net", PEER, "subscribed"),
                                         ("example.net", PEER, "subscribe")])
        self.assertEqual([row["local"] for row in rows], ["example.net"])
        await self.trust.request(PEER)  # asks from the first domain
        self.assertEqual(self.out.sent[-1], ("example.org", PEER, "subscribe"))
        self.assertEqual([(row["local"], row["state"]) for row in self.trust.peers()],
                         [("example.net", "From + Pending Out"),
                          ("example.org", "None + Pending Out")])
        await self.trust.revoke(PEER, "example.net")
        self.assertEqual([row["local"] for row in self.trust.peers()], ["example.org"])

    async def test_too_many_waiting_requests_drop_the_next(self):
        trust = await self.restart()
        trust.max_pending = 2
        for peer in ("a.example", "b.example", "c.example"):
            await trust.received("example.org", peer, "subscribe")
        self.assertEqual([row["domain"] for row in trust.pending()], ["a.example", "b.example"])
        self.assertEqual(len(self.out.told), 2)
        await trust.deny("a.example")
        await trust.received("example.org", "c.example", "subscribe")
        self.assertEqual([row["domain"] for row in trust.pending()], ["b.example", "c.example"])

    async def test_server_presence_follows_the_links(self):
        await self.trust.request(PEER)
        self.trust.link_up(PEER)
        self.trust.link_up(PEER)  # one link each way
        self.assertTrue(self.trust.is_available(PEER))
        self.trust.link_down(PEER)
        self.assertTrue(self.trust.peers()[0]["available"])
        self.trust.link_down(PEER)
        self.trust.link_down(PEER)  # one too many never goes below zero
        self.assertFalse(self.trust.is_available(PEER))
        self.trust.link_up(PEER)
        self.assertTrue(self.trust.is_available("PEER.example"))


class RateLimiterTests(TestCase):
    def test_counts_per_key_per_window(self):
        clock = Clock()
        limiter = RateLimiter(2, 10.0, clock.seconds)
        self.assertEqual([limiter.hit("a") for _ in range(4)], [0, 0, 1, 2])
        self.assertEqual(limiter.hit("b"), 0)
        clock.advance(10)
        self.assertEqual(limiter.hit("a"), 0)

    def test_memory_stays_bounded(self):
        clock = Clock()
        limiter = RateLimiter(1, 10.0, clock.seconds, max_keys=3)
        for n in range(100):
            limiter.hit(n)
        self.assertEqual(len(limiter), 3)
        self.assertEqual(limiter.hit(99), 1)  # the newest windows are the ones kept

    def test_bad_limits_are_refused(self):
        for args in ((0, 1.0), (1, 0.0)):
            with self.assertRaises(ValueError):
                RateLimiter(*args, Clock().seconds)


# --------------------------------------------------------------------------- the plugin


class PluginTestCase(TestCase):
    SECTIONS = ""

    def setUp(self):
        self.fixture = TrustFixture(self.mktemp_path(), sections=self.SECTIONS)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self.fixture.start())

    def mktemp_path(self):
        from pathlib import Path

        path = Path(self.mktemp())
        path.mkdir(parents=True)
        return path

    @property
    def trust(self) -> IServerTrust:
        return self.fixture.server.query(IServerTrust)


class PluginTests(PluginTestCase):
    def test_plugin_and_provider_interfaces(self):
        self.assertTrue(verifyObject(IXmppdPlugin, server_trust))
        self.assertTrue(verifyObject(IServerTrust, self.trust))
        self.assertIn(ns.SERVER_PRESENCE, self.fixture.server.features.features())

    async def test_a_subscription_goes_out_only_when_an_admin_asks(self):
        self.assertEqual(self.fixture.remote.sent, [])
        await self.fixture.admin.trust_request(PEER)
        self.assertEqual(self.fixture.presence_sent(),
                         [(LOCAL, PEER, "subscribe")])
        self.assertEqual(self.fixture.remote.sent[0].sender, parse_jid(LOCAL))

    async def test_an_inbound_request_is_stored_once_told_and_not_answered(self):
        await self.fixture.receive("subscribe")
        await self.fixture.receive("subscribe")
        self.assertEqual(self.fixture.sent_to(PEER), [])
        pending = await self.fixture.admin.trust_pending()
        self.assertEqual([(row["domain"], row["state"]) for row in pending],
                         [(PEER, "None + Pending In")])
        messages = await self.fixture.admin_messages()
        self.assertEqual(len(messages), 1)
        self.assertIn(f"{PEER} asks to subscribe", messages[0])
        (to_remote_admin,) = self.fixture.sent_to("elsewhere.example")
        self.assertEqual((to_remote_admin["to"], to_remote_admin["from"]), (REMOTE_ADMIN, LOCAL))

    async def test_approval_sends_subscribed_and_subscribe_back(self):
        await self.fixture.receive("subscribe")
        await self.fixture.admin.trust_approve(PEER)
        self.assertEqual(self.fixture.presence_sent(), [(LOCAL, PEER, "subscribed"),
                                                        (LOCAL, PEER, "subscribe")])
        await self.fixture.receive("subscribed")
        (row,) = await self.fixture.admin.trust_list()
        self.assertEqual((row["subscription"], row["pending_in"], row["pending_out"]),
                         ("both", False, False))
        self.assertTrue(self.trust.is_trusted_buddy(PEER))

    async def test_denial_sends_unsubscribed(self):
        await self.fixture.receive("subscribe")
        await self.fixture.admin.trust_deny(PEER)
        self.assertEqual(self.fixture.presence_sent(), [(LOCAL, PEER, "unsubscribed")])
        self.assertEqual(await self.fixture.admin.trust_list(), [])

    async def test_a_flood_is_stored_once_rate_limited_and_never_approved(self):
        lines = logged_texts(self)
        results = [self.fixture.inject("<presence type='subscribe'/>") for _ in range(1000)]
        await defer.gatherResults([r for r in results if isinstance(r, defer.Deferred)])
        self.assertTrue(all(results))  # every one consumed, none left for anyone else
        self.assertEqual(self.fixture.sent_to(PEER), [])
        self.assertEqual(await self.fixture.storage.server_roster.get_peers(),
                         [ServerPeer(LOCAL, PEER, "none", False, True, 0.0)])
        self.assertEqual(len(await self.fixture.admin_messages()), 1)
        self.assertEqual(len(self.fixture.sent_to("elsewhere.example")), 1)
        flood = [line for line in lines if "sends too many subscription stanzas" in line]
        self.assertEqual(len(flood), 1)
        self.assertIn(PEER, flood[0])
        self.assertFalse(self.trust.is_trusted_buddy(PEER))

    async def test_revocation_sends_unsubscribe_and_unsubscribed(self):
        await self.fixture.make_buddy()
        self.fixture.remote.sent.clear()
        await self.fixture.admin.trust_revoke(PEER)
        self.assertEqual(self.fixture.presence_sent(), [(LOCAL, PEER, "unsubscribe"),
                                                        (LOCAL, PEER, "unsubscribed")])
        self.assertFalse(self.trust.is_trusted_buddy(PEER))
        self.assertEqual(await self.fixture.admin.trust_list(), [])

    async def test_the_peer_ending_it_is_acknowledged_and_told(self):
        await self.fixture.make_buddy()
        self.fixture.remote.sent.clear()
        await self.fixture.receive("unsubscribe")
        self.assertEqual(self.fixture.presence_sent(), [(LOCAL, PEER, "unsubscribed")])
        self.assertFalse(self.trust.is_trusted_buddy(PEER))
        await self.fixture.receive("unsubscribed")
        self.assertEqual(await self.fixture.admin.trust_list(), [])
        messages = await self.fixture.admin_messages()
        self.assertIn(f"{PEER} cancelled its subscription", messages[-2])
        self.assertIn(f"{PEER} cancelled the subscription of {LOCAL}", messages[-1])

    async def test_users_and_our_own_domain_are_not_server_subscriptions(self):
        for sender, recipient in [(f"bob@{PEER}", LOCAL), (f"{PEER}/x", LOCAL),
                                  (PEER, f"{LOCAL}/res"), (LOCAL, LOCAL)]:
            result = self.fixture.inject("<presence type='subscribe'/>", sender, recipient)
            self.assertFalse(result, (sender, recipient))
        self.assertEqual(await self.fixture.admin.trust_list(), [])
        self.assertEqual(self.fixture.sent_to(PEER), [])

    async def test_a_bounced_request_is_logged_and_changes_nothing(self):
        await self.fixture.admin.trust_request(PEER)
        lines = logged_texts(self)
        self.assertIs(self.fixture.inject(
            "<presence type='error'><error type='cancel'><service-unavailable "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"), True)
        self.assertIn(f"server trust: {PEER} answered {LOCAL} with an error: "
                      "service-unavailable", lines)
        self.assertEqual([row["state"] for row in await self.fixture.admin.trust_list()],
                         ["None + Pending Out"])
        self.assertFalse(self.fixture.inject("<presence type='error'/>", f"bob@{PEER}"))

    async def test_server_presence_from_link_events(self):
        await self.fixture.admin.trust_request(PEER)
        await self.fixture.server.emit(events.S2S_LINK_UP, PEER)
        self.assertTrue((await self.fixture.admin.trust_list())[0]["available"])
        await self.fixture.server.emit(events.S2S_LINK_DOWN, PEER)
        self.assertFalse((await self.fixture.admin.trust_list())[0]["available"])

    async def test_unloading_removes_handlers_and_provider(self):
        self.fixture.base.registry.unload()
        self.assertIsNone(self.trust)
        self.assertFalse(self.fixture.inject("<presence type='subscribe'/>"))


class LookupTests(PluginTestCase):
    async def test_the_policy_can_be_made_before_the_plugin_loads(self):
        policy = FederationPolicy("buddies-only", trust=ProvidedTrust(self.fixture.server.query))
        chat = domish.Element((None, "message"))
        stanza = Stanza(chat, parse_jid(f"bob@{PEER}"), parse_jid(f"alice@{LOCAL}"))
        self.assertFalse(policy.admits(PEER, stanza).ok)
        await self.fixture.make_buddy()
        self.assertTrue(policy.admits(PEER, stanza).ok)
        self.fixture.base.registry.unload()  # no provider: nobody is a buddy
        self.assertFalse(policy.admits(PEER, stanza).ok)
        await self.fixture.base.registry.load()  # reloaded from storage: a buddy again
        self.assertTrue(policy.admits(PEER, stanza).ok)


class SettingsTests(PluginTestCase):
    SECTIONS = "[plugins.server_trust]\nrate_limit = 2\nrate_period = 30\nmax_pending = 1\n"

    async def test_settings_are_used(self):
        results = [self.fixture.inject("<presence type='subscribe'/>") for _ in range(5)]
        self.assertEqual(sum(isinstance(r, defer.Deferred) for r in results), 2)
        await defer.gatherResults([r for r in results if isinstance(r, defer.Deferred)])
        await self.fixture.receive("subscribe", "other.example")  # max_pending = 1
        self.assertEqual([row["domain"] for row in await self.fixture.admin.trust_pending()],
                         [PEER])
        self.fixture.base.clock.advance(30)
        self.assertIsInstance(self.fixture.inject("<presence type='subscribe'/>"),
                              defer.Deferred)


class BadSettingsTests(TestCase):
    async def check(self, section: str, message: str) -> None:
        from pathlib import Path

        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        fixture = TrustFixture(directory, plugins=("server_trust",),
                               sections=f"[plugins.server_trust]\n{section}\n")
        error = await self.assertFailure(defer.ensureDeferred(fixture.start()), PluginError)
        self.assertIn(message, str(error))
        await fixture.storage.close()

    async def test_bad_values_name_the_key(self):
        await self.check("rate_limit = 0", "[plugins.server_trust] rate_limit: expected a whole "
                                           "number above 0, got 0")
        await self.check("rate_period = 'soon'", "rate_period: expected a number above 0")
        await self.check("max_pending = 1.5", "max_pending: expected a whole number")
        await self.check("rate_limt = 1", "[plugins.server_trust] rate_limt: unknown key")


# --------------------------------------------------------------------------- the admin API


class AdminCommandTests(PluginTestCase):
    """The plugin's own xmppdctl/manhole commands (xmppd.admin.commands)."""

    def commands(self) -> list[tuple[str, str]]:
        return [(row["command"], row["plugin"])
                for row in self.fixture.server.admin_commands.rows()]

    async def test_the_commands_are_the_plugins_and_go_with_it(self):
        self.assertEqual(self.commands(), [
            ("incident list", "incident"), ("incident report", "incident"),
            *((f"trust {action}", "server_trust")
              for action in ("approve", "deny", "list", "pending", "request", "revoke"))])
        self.assertFalse(hasattr(AdminAPI(self.fixture.storage, [LOCAL]), "trust_request"))
        self.fixture.base.registry.unload()
        self.assertEqual(self.commands(), [])
        with self.assertRaisesRegex(ValueError, "'trust request' is a command of the "
                                                "server_trust plugin, which is not loaded"):
            self.fixture.server.admin_commands.call(["trust", "request", PEER])

    async def test_words_from_xmppdctl_reach_the_service(self):
        call = self.fixture.server.admin_commands.call
        await self.fixture.receive("subscribe")
        await self.fixture.receive("subscribe", "other.example")
        await call(["trust", "approve", "other.example"])
        await self.fixture.server.emit(events.S2S_LINK_UP, PEER)
        self.assertEqual([(row["domain"], row["available"])
                          for row in await call(["trust", "list"])],
                         [("other.example", False), (PEER, True)])
        self.assertEqual([row["domain"] for row in await call(["trust", "pending"])], [PEER])
        with self.assertRaisesRegex(ValueError, r"usage: trust request DOMAIN \[LOCAL\]"):
            call(["trust", "request"])

    async def test_errors_of_the_rules_reach_the_admin(self):
        error = await self.assertFailure(self.fixture.admin.trust_approve(PEER), ValueError)
        self.assertEqual(str(error), f"{PEER}: no pending request to approve")

    async def test_the_admin_jids_are_the_configured_ones(self):
        self.assertEqual(self.fixture.server.config.server.admins,
                         (parse_jid(ADMIN), parse_jid(REMOTE_ADMIN)))
