"""XEP-0191 blocking on a real server with real SQLite: the list and its commands with
their errors, pushes, persistence, enforcement both ways for every stanza kind, presence
hidden on block and shown again on unblock, own resources never blocked, and JID matching."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.devices_case import DevicesCase, body, error_children, error_condition
from xmppd import events, ns
from xmppd.im.blocklist import STORE, BlockLists, matches
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza

GET = "<blocklist xmlns='urn:xmpp:blocking'/>"
ALICE = parse_jid("alice@localhost")
ROMEO = parse_jid("romeo@remote.example")


def block(*jids: str, name: str = "block") -> str:
    items = "".join(f"<item jid='{jid}'/>" for jid in jids)
    return f"<{name} xmlns='urn:xmpp:blocking'>{items}</{name}>"


def unblock(*jids: str) -> str:
    return block(*jids, name="unblock")


def listed(answer: domish.Element) -> list[str]:
    assert answer["type"] == "result", answer.toXml()
    (blocklist,) = answer.elements(ns.BLOCKING, "blocklist")
    return [item["jid"] for item in blocklist.elements()]


def pushes(elements: list) -> list[tuple[str, str, list[str]]]:
    found = []
    for iq in elements:
        if iq.name == "iq" and iq.getAttribute("type") == "set":
            (command,) = iq.elements()
            if command.uri == ns.BLOCKING:
                found.append((iq["to"], command.name,
                              [item["jid"] for item in command.elements()]))
    return found


class BlockingCase(DevicesCase):
    enabled = ("blocking",)
    users = ("alice", "bob", "carol")

    def stored(self):
        return self.server.storage.open_store(STORE, "map").get("localhost", "alice@localhost")


class CommandTests(BlockingCase):
    async def test_empty_list_then_block_push_and_list(self):
        phone = await self.online("alice", "phone")
        laptop = await self.online("alice", "laptop")
        tablet = await self.online("alice", "tablet")  # never asks: gets no pushes
        self.assertEqual(listed(await self.ask(phone, "get", GET)), [])
        self.assertEqual(listed(await self.ask(laptop, "get", GET, to="alice@localhost")), [])
        answer = await self.ask(phone, "set", block("bob@localhost", "spam.example"))
        self.assertEqual((answer["type"], list(answer.elements())), ("result", []))
        self.assertEqual(pushes(self.also),
                         [("alice@localhost/phone", "block", ["bob@localhost", "spam.example"])])
        self.assertEqual(pushes(laptop.elements()),
                         [("alice@localhost/laptop", "block", ["bob@localhost", "spam.example"])])
        self.assertEqual(tablet.elements(), [])
        self.assertEqual(listed(await self.ask(tablet, "get", GET)),
                         ["bob@localhost", "spam.example"])
        self.assertEqual(await self.stored(), ["bob@localhost", "spam.example"])

    async def test_items_are_prepared_and_blocking_twice_pushes_only_the_new(self):
        phone = await self.online("alice", "phone")
        await self.ask(phone, "get", GET)
        await self.ask(phone, "set", block("Bob@LocalHost"))
        self.assertEqual(pushes(self.also), [("alice@localhost/phone", "block",
                                              ["bob@localhost"])])
        await self.ask(phone, "set", block("bob@localhost", "carol@localhost"))
        self.assertEqual(pushes(self.also), [("alice@localhost/phone", "block",
                                              ["carol@localhost"])])

    async def test_unblock_one_unknown_and_all(self):
        phone = await self.online("alice", "phone")
        await self.ask(phone, "get", GET)
        await self.ask(phone, "set", block("bob@localhost", "carol@localhost", "x.example"))
        answer = await self.ask(phone, "set", unblock("nobody@localhost"))
        self.assertEqual((answer["type"], pushes(self.also)), ("result", []))
        await self.ask(phone, "set", unblock("bob@localhost", "nobody@localhost"))
        self.assertEqual(pushes(self.also), [("alice@localhost/phone", "unblock",
                                              ["bob@localhost"])])
        await self.ask(phone, "set", unblock())
        self.assertEqual(pushes(self.also), [("alice@localhost/phone", "unblock", [])])
        self.assertEqual(listed(await self.ask(phone, "get", GET)), [])
        self.assertIsNone(await self.stored())

    async def test_errors(self):
        phone = await self.online("alice", "phone")
        cases = [("set", block(), "bad-request"),
                 ("set", "<block xmlns='urn:xmpp:blocking'><item/></block>", "bad-request"),
                 ("set", block("@bad@"), "jid-malformed"),
                 ("set", block("bob@localhost", "a@b@c"), "jid-malformed"),
                 ("set", unblock("@bad@"), "jid-malformed"),
                 ("get", block("bob@localhost"), "bad-request"),
                 ("get", unblock(), "bad-request"),
                 ("set", GET, "bad-request")]
        for type, payload, condition in cases:
            self.assertEqual(error_condition(await self.ask(phone, type, payload)), condition,
                             payload)
        self.assertIsNone(await self.stored())
        answer = await self.ask(phone, "get", GET, to="bob@localhost")
        self.assertEqual(error_condition(answer), "service-unavailable")

    async def test_advertised_in_host_disco(self):
        phone = await self.online("alice", "phone")
        answer = await self.ask(phone, "get",
                                "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                to="localhost")
        (query,) = answer.elements(ns.DISCO_INFO, "query")
        self.assertIn(ns.BLOCKING, [f["var"] for f in query.elements() if f.name == "feature"])

    async def test_the_list_survives_a_restart_but_not_its_account(self):
        phone = await self.online("alice", "phone")
        await self.ask(phone, "set", block("bob@localhost"))
        await self.ask(phone, "set", block("carol@localhost"), to=None, id="q2")
        storage = self.server.storage
        fresh = BlockLists(storage.open_store(STORE, "map"), storage.users)
        await fresh.load(["localhost"])
        self.assertEqual(fresh.lookup(ALICE), frozenset(["bob@localhost", "carol@localhost"]))
        await storage.users.delete_user("alice", "localhost")  # as xmppdctl, server down
        fresh = BlockLists(storage.open_store(STORE, "map"), storage.users)
        await fresh.load(["localhost"])
        self.assertEqual(fresh.lookup(ALICE), frozenset())
        self.assertIsNone(await self.stored())

    async def test_deleting_the_account_deletes_its_list(self):
        phone = await self.online("alice", "phone")
        await self.ask(phone, "set", block("bob@localhost"))
        await self.server.emit(events.USER_DELETED, ALICE)
        self.assertIsNone(await self.stored())


class StopTests(BlockingCase):
    async def test_stopping_the_plugin_unfilters_the_sessions(self):
        phone = await self.online("alice", "phone")
        session = self.server.sessions.get(parse_jid("alice@localhost/phone"))
        self.assertIsNone(session.inbound)  # blocks nobody: not filtered
        await self.ask(phone, "set", block("bob@localhost"))
        self.assertIsNotNone(session.inbound)
        self.fixture.registry.stop("blocking")
        self.assertIsNone(session.inbound)

    async def test_unblocking_all_unfilters(self):
        phone = await self.online("alice", "phone")
        session = self.server.sessions.get(parse_jid("alice@localhost/phone"))
        await self.ask(phone, "set", block("bob@localhost"))
        await self.ask(phone, "set", unblock())
        self.assertIsNone(session.inbound)


class LimitTests(BlockingCase):
    sections = {"blocking": {"max_items": 2}}

    async def test_max_items(self):
        phone = await self.online("alice", "phone")
        await self.ask(phone, "set", block("a.example", "b.example"))
        answer = await self.ask(phone, "set", block("a.example", "c.example"))
        self.assertEqual(error_condition(answer), "resource-constraint")
        await self.ask(phone, "set", block("a.example"))  # nothing new: fine


class EnforcementTests(BlockingCase):
    async def blocked_bob(self):
        alice = await self.online("alice", "phone")
        bob = await self.online("bob", "desk")
        await self.ask(alice, "set", block("bob@localhost"))
        self.drain()
        return alice, bob

    async def test_blocked_senders_message_never_arrives_and_bounces(self):
        alice, bob = await self.blocked_bob()
        for to in ("alice@localhost", "alice@localhost/phone", "alice@localhost/gone"):
            bob.feed(f"<message to='{to}' type='chat' id='m1'><body>hi</body></message>")
            (error,) = bob.elements()
            self.assertEqual((error["from"], error_condition(error)),
                             (to, "service-unavailable"))
        self.assertEqual(alice.elements(), [])

    async def test_nothing_kept_offline_from_a_blocked_sender(self):
        alice, bob = await self.blocked_bob()
        alice.feed("</stream:stream>")
        bob.feed("<message to='alice@localhost' type='chat'><body>later</body></message>")
        (error,) = await self.wait(bob, lambda e: e.name == "message")
        self.assertEqual(error_condition(error), "service-unavailable")
        self.assertEqual(await self.server.storage.offline.count("alice", "localhost"), 0)

    async def test_blocked_iqs_get_service_unavailable_answers_vanish(self):
        alice, bob = await self.blocked_bob()
        answer = await self.ask(bob, "get", "<ping xmlns='urn:xmpp:ping'/>",
                                to="alice@localhost/phone")
        self.assertEqual(error_condition(answer), "service-unavailable")
        answer = await self.ask(bob, "get", "<query xmlns='jabber:iq:version'/>",
                                to="alice@localhost")
        self.assertEqual(error_condition(answer), "service-unavailable")
        bob.feed("<iq type='result' id='x' to='alice@localhost/phone'/>")
        await self.settle(bob)
        self.assertEqual(alice.elements(), [])

    async def test_blocked_presence_of_every_type_vanishes(self):
        alice, bob = await self.blocked_bob()
        for stanza in ("<presence to='alice@localhost/phone'/>",
                       "<presence type='subscribe' to='alice@localhost'/>",
                       "<presence type='probe' to='alice@localhost'/>",
                       "<presence type='unavailable' to='alice@localhost'/>"):
            bob.feed(stanza)
            await self.settle(bob)
            self.assertEqual((alice.elements(), self.also), ([], []), stanza)

    async def test_what_the_blocker_sends_is_refused_with_blocked(self):
        alice, bob = await self.blocked_bob()
        alice.feed("<message to='bob@localhost/desk' type='chat' id='m2'><body>hey</body>"
                   "</message>")
        (error,) = alice.elements()
        self.assertEqual((error.name, error["id"], error_condition(error)),
                         ("message", "m2", "not-acceptable"))
        self.assertIn((ns.BLOCKING_ERRORS, "blocked"), error_children(error))
        answer = await self.ask(alice, "get", "<ping xmlns='urn:xmpp:ping'/>",
                                to="bob@localhost/desk")
        self.assertEqual(error_condition(answer), "not-acceptable")
        self.assertIn((ns.BLOCKING_ERRORS, "blocked"), error_children(answer))
        alice.feed("<presence to='bob@localhost/desk'/>")
        alice.feed("<presence type='subscribe' to='bob@localhost'/>")
        await self.settle(alice)
        self.assertEqual(bob.elements(), [])

    async def test_a_blocked_domain_covers_its_users_and_resources(self):
        alice = await self.online("alice", "phone")
        await self.ask(alice, "set", block("remote.example"))
        alice.feed("<message to='carol@remote.example/x' type='chat'><body>x</body></message>")
        (error,) = alice.elements()
        self.assertIn((ns.BLOCKING_ERRORS, "blocked"), error_children(error))

    async def test_own_resources_are_never_blocked(self):
        phone = await self.online("alice", "phone")
        laptop = await self.online("alice", "laptop")
        await self.ask(phone, "set", block("alice@localhost", "localhost"))
        laptop.feed("<message to='alice@localhost/phone' type='chat'><body>me</body>"
                    "</message>")
        self.assertEqual([body(e) for e in phone.elements() if e.name == "message"], ["me"])

    async def test_unblock_restores(self):
        alice, bob = await self.blocked_bob()
        await self.ask(alice, "set", unblock("bob@localhost"))
        bob.feed("<message to='alice@localhost' type='chat'><body>again</body></message>")
        self.assertEqual([body(e) for e in alice.elements()], ["again"])
        self.assertEqual(bob.elements(), [])


class PresenceTests(BlockingCase):
    async def started(self) -> None:
        await super().started()
        await self.befriend("alice", "bob")

    async def test_blocking_shows_unavailable_then_hides_unblocking_shows_again(self):
        alice = await self.online("alice", "phone")
        bob = await self.online("bob", "desk")
        await self.ask(alice, "set", block("bob@localhost"))
        got = await self.wait(bob, lambda e: e.name == "presence")
        self.assertEqual([(e["from"], e.getAttribute("type")) for e in got],
                         [("alice@localhost/phone", "unavailable")])
        alice.feed("<presence><show>away</show></presence>")
        await self.settle(alice)
        self.assertEqual(bob.elements(), [])  # the broadcast does not reach him
        bob.feed("<presence><show>dnd</show></presence>")
        await self.settle(bob)
        self.assertEqual([e for e in alice.elements() if e.name == "presence"], [])
        await self.ask(alice, "set", unblock("bob@localhost"))
        seen = self.also + alice.elements()  # bob's answer to the probe
        self.assertIn(("bob@localhost/desk", "dnd"),
                      [(e["from"], str(next(e.elements()))) for e in seen
                       if e.name == "presence"])
        shown = await self.wait(bob, lambda e: e.name == "presence")
        self.assertEqual([(e["from"], e.getAttribute("type")) for e in shown],
                         [("alice@localhost/phone", None)])


class RemoteTests(BlockingCase):
    """A remote subscriber alice blocked: the server's presence broadcast to it is held back
    at the 'remote' link (it went out through federation before); errors still go."""

    async def started(self) -> None:
        await super().started()
        from tests.unit.test_presence_remote import RecordingRemote
        from xmppd.im.subscription import SubState

        self.remote = RecordingRemote()
        self.server.router.remote = self.remote
        roster = self.server.query(IRoster)
        await roster.set_state(ALICE, ROMEO, SubState("both"))

    async def test_a_blocked_remote_subscriber_gets_unavailable_then_nothing(self):
        alice = await self.online("alice", "phone")
        self.assertIn(("alice@localhost/phone", "romeo@remote.example"),
                      [(e["from"], e["to"]) for e in sent_presence(self.remote)])
        await self.ask(alice, "set", block("romeo@remote.example"))
        self.assertEqual([(e["from"], e.getAttribute("type")) for e in
                          sent_presence(self.remote)][-1:],
                         [("alice@localhost/phone", "unavailable")])  # §3.3, before the block
        before = len(self.remote.sent)
        alice.feed("<presence><show>away</show></presence>")
        await self.settle(alice)
        self.assertEqual(self.remote.sent[before:], [])
        self.server.router.route(Stanza(domish.Element((None, "message"), attribs={
            "from": "romeo@remote.example/a", "to": "alice@localhost", "type": "chat"}),
            ROMEO, ALICE), object())
        self.assertEqual(self.remote.errors(), ["service-unavailable"])  # the bounce goes
        before = len(self.remote.sent)
        await self.ask(alice, "set", unblock("romeo@remote.example"))
        self.assertIn(("alice@localhost/phone", None),  # shown again, then probed
                      [(e["from"], e.getAttribute("type"))
                       for e in sent_presence(self.remote, since=before)])


def sent_presence(remote, since: int = 0) -> list[domish.Element]:
    return [stanza.element for stanza in remote.sent[since:] if stanza.kind == "presence"]


class MatchingTests(SynchronousTestCase):
    def check(self, item: str, jid: str) -> bool:
        return matches(frozenset([item]), parse_jid(jid))

    def test_the_four_forms(self):
        self.assertTrue(self.check("a@x.example/r", "a@x.example/r"))
        self.assertFalse(self.check("a@x.example/r", "a@x.example/s"))
        self.assertFalse(self.check("a@x.example/r", "a@x.example"))
        self.assertTrue(self.check("a@x.example", "a@x.example/any"))
        self.assertTrue(self.check("a@x.example", "a@x.example"))
        self.assertFalse(self.check("a@x.example", "b@x.example"))
        self.assertTrue(self.check("x.example/r", "x.example/r"))
        self.assertTrue(self.check("x.example/r", "a@x.example/r"))
        self.assertFalse(self.check("x.example/r", "x.example"))
        for jid in ("x.example", "a@x.example", "x.example/r", "a@x.example/r"):
            self.assertTrue(self.check("x.example", jid), jid)
        self.assertFalse(self.check("x.example", "sub.x.example"))

    def test_nothing_blocked(self):
        self.assertFalse(matches(frozenset(), parse_jid("a@x.example")))
