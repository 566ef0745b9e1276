"""XEP-0280 message carbons on a real server: enabling and its errors, received and sent
copies and their form, who gets none (the original's recipients, the sender, resources
without carbons), what is never copied (private, no-copy, groupchat, copies, MUC private
messages), and the eligibility rules one by one."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.devices_case import DevicesCase, body, error_condition
from tests.helpers import StreamHarness
from xmppd import ns
from xmppd.im.carbons import RECEIVED, SENT, eligible
from xmppd.xml.stored import stanza_from_text

ENABLE = "<enable xmlns='urn:xmpp:carbons:2'/>"
DISABLE = "<disable xmlns='urn:xmpp:carbons:2'/>"


def forwarded(carbon: domish.Element, direction: str) -> domish.Element:
    """The original message inside a carbon, after checking the wrapping."""
    (wrapper,) = carbon.elements(ns.CARBONS, direction)
    (forward,) = wrapper.elements(ns.FORWARD, "forwarded")
    (original,) = forward.elements(ns.CLIENT, "message")
    return original


class CarbonsCase(DevicesCase):
    enabled = ("carbons",)

    async def enabled_client(self, user: str, resource: str, priority: int = 0):
        harness = await self.online(user, resource, priority)
        answer = await self.ask(harness, "set", ENABLE)
        self.assertEqual(answer["type"], "result", answer.toXml())
        return harness


class EnableTests(CarbonsCase):
    async def test_enable_and_disable_answer_a_result_also_when_repeated(self):
        phone = await self.online("alice", "phone")
        for payload in (ENABLE, ENABLE, DISABLE, DISABLE, ENABLE):
            answer = await self.ask(phone, "set", payload, to="alice@localhost")
            self.assertEqual((answer["type"], list(answer.elements())), ("result", []))

    async def test_a_get_is_bad_request(self):
        phone = await self.online("alice", "phone")
        for payload in (ENABLE, DISABLE):
            self.assertEqual(error_condition(await self.ask(phone, "get", payload)),
                             "bad-request")

    async def test_for_another_account_is_not_allowed(self):
        phone = await self.online("alice", "phone")
        for payload in (ENABLE, DISABLE):
            answer = await self.ask(phone, "set", payload, to="bob@localhost")
            self.assertEqual(error_condition(answer), "not-allowed")

    async def test_before_bind_the_stream_refuses_it(self):
        harness = StreamHarness(self.server)
        await harness.authenticate("alice", "pencil and paper")
        harness.feed(f"<iq type='set' id='e1'>{ENABLE}</iq>")
        self.assertEqual(harness.stream_error(), "not-authorized")

    async def test_advertised_in_host_disco(self):
        phone = await self.online("alice", "phone")
        answer = await self.ask(phone, "get",
                                "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                to="localhost")
        (query,) = answer.elements(ns.DISCO_INFO, "query")
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertIn(ns.CARBONS, features)


class CopyTests(CarbonsCase):
    async def test_received_copy_to_the_resource_delivery_passes_by(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.online("alice", "laptop")
        bob = await self.online("bob", "desk")
        bob.feed("<message to='alice@localhost/laptop' type='chat' id='m1'>"
                 "<body>hi</body></message>")
        (original,) = laptop.elements()
        self.assertEqual((original["from"], body(original)), ("bob@localhost/desk", "hi"))
        (carbon,) = phone.elements()
        self.assertEqual((carbon["from"], carbon["to"], carbon["type"]),
                         ("alice@localhost", "alice@localhost/phone", "chat"))
        inner = forwarded(carbon, RECEIVED)
        self.assertEqual((inner["from"], inner["to"], inner["id"], body(inner)),
                         ("bob@localhost/desk", "alice@localhost/laptop", "m1", "hi"))

    async def test_bare_message_copied_only_to_who_delivery_skipped(self):
        phone = await self.enabled_client("alice", "phone", priority=1)
        laptop = await self.enabled_client("alice", "laptop", priority=5)
        self.drain()
        bob = await self.online("bob", "desk")
        bob.feed("<message to='alice@localhost' type='chat'><body>hi</body></message>")
        (original,) = laptop.elements()
        self.assertEqual(body(original), "hi")
        (carbon,) = phone.elements()
        self.assertEqual(body(forwarded(carbon, RECEIVED)), "hi")

    async def test_all_resources_delivered_means_no_copies(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.enabled_client("alice", "laptop")
        self.drain()
        bob = await self.online("bob", "desk")
        bob.feed("<message to='alice@localhost' type='chat'><body>hi</body></message>")
        for harness in (phone, laptop):
            (original,) = harness.elements()
            self.assertEqual((original.name, body(original)), ("message", "hi"))
            self.assertEqual(list(original.elements(ns.CARBONS, RECEIVED)), [])

    async def test_sent_copy_to_other_enabled_resources_not_the_sender(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.online("alice", "laptop")  # sends, without carbons itself
        bob = await self.online("bob", "desk")
        laptop.feed("<message to='bob@localhost/desk' type='chat' id='s1'>"
                    "<body>yo</body></message>")
        (original,) = bob.elements()
        self.assertEqual((original["from"], body(original)), ("alice@localhost/laptop", "yo"))
        (carbon,) = phone.elements()
        self.assertEqual((carbon["from"], carbon["to"]),
                         ("alice@localhost", "alice@localhost/phone"))
        inner = forwarded(carbon, SENT)
        self.assertEqual((inner["from"], inner["to"], inner["id"]),
                         ("alice@localhost/laptop", "bob@localhost/desk", "s1"))
        self.assertEqual(laptop.elements(), [])

    async def test_sent_to_a_remote_contact_is_copied_too(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.online("alice", "laptop")
        laptop.feed("<message to='carol@remote.example' type='chat'><body>yo</body></message>")
        carbons = [e for e in await self.wait(phone, lambda e: e.name == "message")
                   if e.name == "message"]
        self.assertEqual([body(forwarded(c, SENT)) for c in carbons], ["yo"])

    async def test_between_own_resources_a_received_copy_only_and_none_to_the_sender(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.enabled_client("alice", "laptop")
        tablet = await self.enabled_client("alice", "tablet")
        self.drain()
        laptop.feed("<message to='alice@localhost/phone' type='chat'><body>note</body>"
                    "</message>")
        (original,) = phone.elements()
        self.assertEqual(body(original), "note")
        (carbon,) = tablet.elements()
        self.assertEqual(body(forwarded(carbon, RECEIVED)), "note")
        self.assertEqual(laptop.elements(), [])

    async def test_disabled_or_never_enabled_gets_nothing(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.online("alice", "laptop")
        await self.ask(phone, "set", DISABLE)
        bob = await self.online("bob", "desk")
        bob.feed("<message to='alice@localhost/laptop' type='chat'><body>1</body></message>")
        laptop.feed("<message to='bob@localhost' type='chat'><body>2</body></message>")
        self.assertEqual(phone.elements(), [])

    async def test_private_and_no_copy_are_not_copied_either_way(self):
        phone = await self.enabled_client("alice", "phone")
        laptop = await self.online("alice", "laptop")
        bob = await self.online("bob", "desk")
        for marker in ("<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>",
                       "<private xmlns='urn:xmpp:carbons:2'/>",
                       "<no-copy xmlns='urn:xmpp:hints'/>"):
            bob.feed(f"<message to='alice@localhost/laptop' type='chat'><body>s</body>{marker}"
                     "</message>")
            laptop.feed(f"<message to='bob@localhost/desk' type='chat'><body>s</body>{marker}"
                        "</message>")
            self.assertEqual([body(e) for e in laptop.elements()], ["s"])
            self.assertEqual([body(e) for e in bob.elements()], ["s"])
            self.assertEqual(phone.elements(), [], marker)


def message(xml: str) -> domish.Element:
    return stanza_from_text(xml)


class EligibleTests(SynchronousTestCase):
    """§6.1 and §9, one rule each."""

    def check(self, xml: str, direction: str = RECEIVED, from_full: bool = True) -> bool:
        return eligible(message(xml), direction, from_full)

    def test_chat_always_and_normal_with_a_body(self):
        self.assertTrue(self.check("<message xmlns='jabber:client' type='chat'/>"))
        self.assertTrue(self.check("<message xmlns='jabber:client'><body>x</body></message>"))
        self.assertFalse(self.check("<message xmlns='jabber:client'/>"))
        self.assertFalse(self.check("<message xmlns='jabber:client' type='normal'>"
                                    "<subject>x</subject></message>"))

    def test_normal_with_im_payloads(self):
        for payload in ("<received xmlns='urn:xmpp:receipts' id='1'/>",
                        "<active xmlns='http://jabber.org/protocol/chatstates'/>",
                        "<displayed xmlns='urn:xmpp:chat-markers:0' id='1'/>",
                        "<x xmlns='jabber:x:conference' jid='room@muc.example'/>",
                        "<x xmlns='http://jabber.org/protocol/muc#user'>"
                        "<invite from='a@b.example'/></x>"):
            self.assertTrue(self.check(f"<message xmlns='jabber:client'>{payload}</message>"),
                            payload)

    def test_never_groupchat_headline_or_errors(self):
        for type in ("groupchat", "headline", "error"):
            self.assertFalse(self.check(f"<message xmlns='jabber:client' type='{type}'>"
                                        "<body>x</body></message>"), type)

    def test_never_private_no_copy_or_a_carbon(self):
        for payload in ("<private xmlns='urn:xmpp:carbons:2'/>",
                        "<no-copy xmlns='urn:xmpp:hints'/>",
                        "<sent xmlns='urn:xmpp:carbons:2'/>",
                        "<received xmlns='urn:xmpp:carbons:2'/>"):
            for direction in (SENT, RECEIVED):
                self.assertFalse(self.check(f"<message xmlns='jabber:client' type='chat'>"
                                            f"<body>x</body>{payload}</message>", direction),
                                 payload)

    def test_other_hints_do_not_matter(self):
        self.assertTrue(self.check("<message xmlns='jabber:client' type='chat'>"
                                   "<no-store xmlns='urn:xmpp:hints'/></message>"))

    def test_muc_private_messages_sent_yes_received_from_an_occupant_no(self):
        pm = ("<message xmlns='jabber:client' type='chat'><body>psst</body>"
              "<x xmlns='http://jabber.org/protocol/muc#user'/></message>")
        self.assertFalse(self.check(pm, RECEIVED, from_full=True))
        self.assertTrue(self.check(pm, RECEIVED, from_full=False))
        self.assertTrue(self.check(pm, SENT, from_full=False))
