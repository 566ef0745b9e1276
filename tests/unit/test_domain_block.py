"""Domain blocklists, shared between trusted buddies, and the stranger limits (issue 15):
the lists and the report format alone, then the domain_block plugin in a real server with
real SQLite and a federation that records (tests.trust_helpers). Two real servers:
tests/integration/test_domain_block.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.trust_helpers import LOCAL, TrustFixture
from xmppd import ns
from xmppd.abuse.domains import ADMIN, DomainLists, domain_entry
from xmppd.abuse.shared import build_blocklist_report, read_blocklist_report
from xmppd.im.subscription import SubState
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.s2s.policy import FederationPolicy, ProvidedTrust
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text, stanza_to_text

BUDDY = "buddy.example"

# --------------------------------------------------------------------------- the lists


def test_an_entry_covers_its_subdomains_and_nothing_that_merely_ends_alike():
    lists = DomainLists()
    lists.add(ADMIN, "spam.example")
    assert lists.match("spam.example").entry == "spam.example"
    assert lists.match("a.b.spam.example").entry == "spam.example"
    assert lists.match("notspam.example") is None
    assert lists.match("example") is None


def test_the_admin_wins_and_may_allow_what_buddies_list():
    lists = DomainLists()
    lists.add("b.example", "spam.example")
    assert lists.match("x.spam.example").source == "b.example"
    lists.allowed.add("x.spam.example")
    assert lists.match("x.spam.example") is None
    assert lists.match("y.spam.example").source == "b.example"
    lists.add(ADMIN, "spam.example")
    assert lists.match("x.spam.example").source == ADMIN  # the admin's own list: always


def test_replace_says_what_came_and_went():
    lists = DomainLists()
    lists.replace("b.example", {"a.example", "c.example"})
    assert lists.replace("b.example", {"c.example", "d.example"}) == ({"d.example"},
                                                                        {"a.example"})
    assert lists.match("a.example") is None


@pytest.mark.parametrize("text, prepared", [("Spam.Example.", "spam.example"),
                                            ("bücher.example", "bücher.example")])
def test_entries_are_prepared(text, prepared):
    assert domain_entry(text) == prepared


@pytest.mark.parametrize("text", ["user@spam.example", "spam.example/r", "[::1]", "", "com",
                                  "bad domain.example", None])
def test_not_a_domain_is_refused(text):
    with pytest.raises(ValueError):
        domain_entry(text)


def test_the_shared_report_round_trips_and_is_marked_as_spam():
    report = build_blocklist_report(LOCAL, "ID-1", 0.0, ["a.example", "b.example"])
    text = stanza_to_text(report)
    assert "ext-type=\"spam\"" in text or "ext-type='spam'" in text
    assert read_blocklist_report(stanza_from_text(text)) == ["a.example", "b.example"]
    assert read_blocklist_report(build_blocklist_report(LOCAL, "ID-2", 0.0, [])) == []


def test_an_ordinary_incident_report_is_not_a_blocklist():
    from xmppd.trust.incidents import build_report

    report = build_report(LOCAL, "ID-3", "a DoS", 0.0, sources=[parse_jid("x@y.example")])
    assert read_blocklist_report(report) is None


def test_a_report_naming_something_else_than_domains_is_refused_whole():
    report = build_blocklist_report(LOCAL, "ID-4", 0.0, ["a.example"])
    text = stanza_to_text(report).replace("a.example", "mallory@a.example")
    with pytest.raises(ValueError):
        read_blocklist_report(stanza_from_text(text))


# --------------------------------------------------------------------------- the plugin


class DomainBlockCase(TestCase):
    SECTIONS = ""

    def setUp(self):
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        self.fixture = TrustFixture(
            directory, plugins=("offline", "roster", "presence", "server_trust", "incident",
                                "domain_block"),
            sections="[plugins.domain_block]\nstranger_messages = 2\n"
                     "stranger_subscriptions = 1\n" + self.SECTIONS)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.fixture.start()
        await self.fixture.base.add_user("alice", "pencil and paper")
        self.policy = FederationPolicy("secure", trust=ProvidedTrust(self.fixture.server.query))

    @property
    def admin(self):
        return self.fixture.admin

    async def send(self, xml: str, sender: str, recipient: str = "alice@localhost"):
        result = self.fixture.inject(xml, sender, recipient)
        if isinstance(result, defer.Deferred):
            result = await result
        return result

    def bounced(self, domain: str) -> list[str]:
        return [next(c.name for e in s.elements() if e.name == "error" for c in e.elements())
                for s in self.fixture.sent_to(domain) if s.getAttribute("type") == "error"]

    async def offline(self) -> list[str]:
        return [text for _, text, _ in await self.fixture.storage.offline.fetch("alice", LOCAL)]


class AdminBlockTests(DomainBlockCase):
    async def test_block_domain_refuses_federation_with_it_and_its_subdomains(self):
        result = await self.admin.block_domain("Spam.Example")
        self.assertEqual(result["blocked"], "spam.example")
        for domain in ("spam.example", "muc.spam.example"):
            self.assertFalse(self.policy.allowed(domain))
            decision = self.policy.decide(domain, _proof())
            self.assertEqual(decision.condition, "policy-violation")
            self.assertIn("blocked by the admin", decision.reason)
        self.assertTrue(self.policy.allowed("notspam.example"))
        stanza = Stanza(stanza_from_text("<message/>"), parse_jid("a@spam.example"),
                        parse_jid("alice@localhost"))
        decision = self.policy.admits("spam.example", stanza)  # on a link already up
        self.assertEqual((decision.ok, decision.condition), (False, "not-allowed"))

        await self.admin.unblock_domain("spam.example")
        self.assertTrue(self.policy.allowed("spam.example"))
        with self.assertRaises(ValueError):
            await self.admin.unblock_domain("spam.example")

    async def test_a_stanza_from_a_blocked_domain_is_dropped_and_the_list_survives_a_restart(
            self):
        await self.admin.block_domain("spam.example")
        self.assertIs(await self.send("<message type='chat'><body>buy</body></message>",
                                      "x@a.spam.example"), True)
        self.assertEqual(await self.offline(), [])
        await self.fixture.base.registry.reload("domain_block")
        listing = await self.admin.blocked_domains()
        self.assertEqual(listing["blocked"], ["spam.example"])
        self.assertFalse(self.policy.allowed("spam.example"))

    async def test_our_own_domain_cannot_be_blocked(self):
        with self.assertRaises(ValueError):
            await self.admin.block_domain("localhost")


class StrangerTests(DomainBlockCase):
    async def test_first_contact_messages_per_remote_domain_are_limited(self):
        for n in range(2):
            await self.send(f"<message type='chat' id='m{n}'><body>hi</body></message>",
                            f"u{n}@spam.example")
        await self.send("<message type='chat' id='m2'><body>hi</body></message>",
                        "u9@spam.example")
        self.assertEqual(self.bounced("spam.example"), ["policy-violation"])
        self.assertEqual(len(await self.offline()), 2)
        # another domain has its own budget; a headline is no first contact
        await self.send("<message type='chat'><body>hi</body></message>", "u@other.example")
        await self.send("<message type='headline'><body>news</body></message>",
                        "u8@spam.example")
        self.assertEqual(self.bounced("other.example"), [])
        self.assertEqual(len(await self.offline()), 3)  # the headline is not kept offline

    async def test_a_contact_in_the_roster_is_no_stranger(self):
        roster = self.fixture.server.query(IRoster)
        await roster.set_state(parse_jid("alice@localhost"), parse_jid("friend@spam.example"),
                               SubState("both"))
        for n in range(4):
            await self.send(f"<message type='chat' id='f{n}'><body>hi</body></message>",
                            "friend@spam.example")
        self.assertEqual(self.bounced("spam.example"), [])

    async def test_subscription_requests_from_strangers_are_limited(self):
        await self.send("<presence type='subscribe'/>", "a@spam.example")
        await self.send("<presence type='subscribe'/>", "b@spam.example")
        self.assertEqual(self.bounced("spam.example"), ["policy-violation"])
        pending = await self.fixture.server.query(IRoster).pending_requests(
            parse_jid("alice@localhost"))
        self.assertEqual(len(pending), 1)

    async def test_the_window_ends(self):
        for n in range(3):
            await self.send("<message type='chat'><body>hi</body></message>", f"u{n}@s.example")
        self.fixture.base.clock.advance(3600)
        await self.send("<message type='chat'><body>hi</body></message>", "u7@s.example")
        self.assertEqual(self.bounced("s.example"), ["policy-violation"])  # only the third


class SharingTests(DomainBlockCase):
    SECTIONS = "share = true\nbuddy_policy = 'block'\n"

    def report(self, entries: list[str]) -> str:
        report = build_blocklist_report(BUDDY, "ID-9", 0.0, entries)
        return f"<iq type='set' id='r1'>{stanza_to_text(report)}</iq>"

    async def test_our_block_goes_to_every_trusted_buddy_as_a_spam_report(self):
        await self.fixture.make_buddy(BUDDY)
        result = await self.admin.block_domain("spam.example")
        self.assertEqual(result["shared_with"], [BUDDY])
        (iq,) = [e for e in self.fixture.sent_to(BUDDY) if e.name == "iq"]
        report = next(iq.elements())
        self.assertEqual((report.uri, report.name), (ns.INCIDENT, "report"))
        self.assertEqual(read_blocklist_report(report), ["spam.example"])
        await self.admin.unblock_domain("spam.example")
        last = [e for e in self.fixture.sent_to(BUDDY) if e.name == "iq"][-1]
        self.assertEqual(read_blocklist_report(next(last.elements())), [])

    async def test_a_buddys_list_blocks_here_and_the_next_report_replaces_it(self):
        await self.fixture.make_buddy(BUDDY)
        await self.send(self.report(["spam.example", "localhost"]), BUDDY, LOCAL)
        self.assertFalse(self.policy.allowed("x.spam.example"))
        self.assertIn(f"trusted buddy {BUDDY}",
                      self.policy.decide("spam.example", _proof()).reason)
        listing = await self.admin.blocked_domains()
        self.assertEqual(listing["buddies"], {BUDDY: ["spam.example"]})  # never our own
        answer = self.fixture.sent_to(BUDDY)[-1]
        self.assertEqual(answer.getAttribute("type"), "result")  # the incident plugin's
        await self.send(self.report([]), BUDDY, LOCAL)
        self.assertTrue(self.policy.allowed("spam.example"))

    async def test_the_admin_may_allow_what_a_buddy_blocks(self):
        await self.fixture.make_buddy(BUDDY)
        await self.send(self.report(["spam.example"]), BUDDY, LOCAL)
        result = await self.admin.unblock_domain("spam.example")
        self.assertTrue(result["allowed_against_buddies"])
        self.assertTrue(self.policy.allowed("spam.example"))

    async def test_a_report_from_a_stranger_server_changes_nothing(self):
        await self.send(self.report(["spam.example"]), "stranger.example", LOCAL)
        self.assertTrue(self.policy.allowed("spam.example"))
        self.assertEqual(self.bounced("stranger.example"), ["forbidden"])


class QuarantineTests(DomainBlockCase):
    SECTIONS = "share = true\nbuddy_policy = 'quarantine'\n"

    async def test_a_quarantined_domain_federates_but_its_messages_wait_for_the_admin(self):
        await self.fixture.make_buddy(BUDDY)
        report = build_blocklist_report(BUDDY, "ID-8", 0.0, ["spam.example"])
        await self.send(f"<iq type='set' id='q1'>{stanza_to_text(report)}</iq>", BUDDY, LOCAL)
        self.assertTrue(self.policy.allowed("spam.example"))
        await self.send("<message type='chat'><body>buy now</body></message>",
                        "x@spam.example")
        await self.send("<presence type='subscribe'/>", "y@spam.example")
        self.assertEqual(await self.offline(), [])
        self.assertEqual(self.bounced("spam.example"), [])  # nothing tells the spammer
        rows = await self.admin.quarantine_list()
        self.assertEqual([(r["domain"], r["to"]) for r in rows],
                         [("spam.example", "alice@localhost")] * 2)
        self.assertIn("buy now", rows[0]["stanza"])
        cleared = await self.admin.quarantine_clear("spam.example")
        self.assertEqual(cleared["forgotten"], 2)
        self.assertEqual(await self.admin.quarantine_list(), [])

    async def test_the_admin_may_release_what_was_quarantined(self):
        await self.fixture.make_buddy(BUDDY)
        report = build_blocklist_report(BUDDY, "ID-6", 0.0, ["spam.example"])
        await self.send(f"<iq type='set' id='q2'>{stanza_to_text(report)}</iq>", BUDDY, LOCAL)
        await self.send("<message type='chat'><body>not spam after all</body></message>",
                        "x@spam.example")
        await self.send("<presence type='subscribe'/>", "y@spam.example")
        self.assertEqual(await self.offline(), [])
        released = await self.admin.quarantine_release("spam.example")
        self.assertEqual(released["delivered"], 2)
        (stored,) = await self.offline()
        self.assertIn("not spam after all", stored)
        pending = await self.fixture.server.query(IRoster).pending_requests(
            parse_jid("alice@localhost"))
        self.assertEqual(len(pending), 1)
        self.assertEqual(await self.admin.quarantine_list(), [])
        await self.send("<message type='chat'><body>more</body></message>", "x@spam.example")
        self.assertEqual(len(await self.admin.quarantine_list()), 1)  # still quarantined


class LogOnlyTests(DomainBlockCase):
    SECTIONS = "buddy_policy = 'log'\n"

    async def test_a_buddys_entry_is_only_logged(self):
        await self.fixture.make_buddy(BUDDY)
        report = build_blocklist_report(BUDDY, "ID-7", 0.0, ["spam.example"])
        await self.send(f"<iq type='set' id='l1'>{stanza_to_text(report)}</iq>", BUDDY, LOCAL)
        self.assertTrue(self.policy.allowed("spam.example"))
        await self.send("<message type='chat'><body>hello</body></message>", "x@spam.example")
        self.assertEqual(len(await self.offline()), 1)


def _proof():
    from xmppd.s2s.policy import Proof

    return Proof(tls=True, cert_valid=True)
