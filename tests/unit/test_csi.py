"""XEP-0352 client state indication on a real server: the stream feature, presence held
while inactive and deduplicated per contact, flushed on <active/> or before a message,
messages and IQs at once, subscriptions never held, the bound on what is held, and the
elements refused before bind."""

from __future__ import annotations

from tests.devices_case import DevicesCase, body
from tests.helpers import StreamHarness
from xmppd import ns
from xmppd.jid import parse_jid

INACTIVE = "<inactive xmlns='urn:xmpp:csi:0'/>"
ACTIVE = "<active xmlns='urn:xmpp:csi:0'/>"


def show(presence) -> str | None:
    found = [str(child) for child in presence.elements() if child.name == "show"]
    return found[0] if found else None


class CSICase(DevicesCase):
    enabled = ("csi",)
    users = ("alice", "bob", "carol")

    async def started(self) -> None:
        await super().started()
        await self.befriend("alice", "bob")
        await self.befriend("alice", "carol")

    async def inactive_alice(self) -> StreamHarness:
        alice = await self.online("alice", "phone")
        alice.feed(INACTIVE)
        return alice

    async def change(self, harness: StreamHarness, show: str | None = None,
                     type: str | None = None) -> None:
        attrs = f" type='{type}'" if type else ""
        inner = f"<show>{show}</show>" if show else ""
        harness.feed(f"<presence{attrs}>{inner}</presence>")
        await self.settle(harness)


class FeatureTests(CSICase):
    async def test_csi_stream_feature_after_authentication(self):
        harness = StreamHarness(self.server)
        await harness.authenticate("alice", "pencil and paper")
        self.assertIn((ns.CSI, "csi"),
                      [(f.uri, f.name) for f in harness.bind_features.elements()])

    async def test_before_bind_the_elements_are_refused(self):
        harness = StreamHarness(self.server)
        await harness.authenticate("alice", "pencil and paper")
        harness.feed(INACTIVE)
        self.assertEqual(harness.stream_error(), "not-authorized")

    async def test_active_and_inactive_answer_nothing(self):
        alice = await self.online("alice", "phone")
        alice.feed(INACTIVE)
        alice.feed(ACTIVE)
        await self.settle(alice)
        self.assertEqual(alice.elements(), [])


class CostTests(CSICase):
    async def test_only_an_inactive_session_is_filtered(self):
        alice = await self.online("alice", "phone")
        session = self.server.sessions.get(parse_jid("alice@localhost/phone"))
        self.assertNotIn("send", vars(session))
        alice.feed(INACTIVE)
        alice.feed(INACTIVE)
        self.assertIn("send", vars(session))
        alice.feed(ACTIVE)
        self.assertNotIn("send", vars(session))

    async def test_stopping_the_plugin_flushes_and_unfilters(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        await self.change(bob, "away")
        session = self.server.sessions.get(parse_jid("alice@localhost/phone"))
        self.fixture.registry.stop("csi")
        self.assertEqual([show(p) for p in alice.elements()], ["away"])
        self.assertNotIn("send", vars(session))


class HoldTests(CSICase):
    async def test_presence_held_deduplicated_and_flushed_on_active(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        carol = await self.online("carol", "pad")
        await self.change(bob, "away")
        await self.change(carol, "dnd")
        await self.change(bob, "xa")
        await self.settle(alice)
        self.assertEqual(alice.elements(), [])
        alice.feed(ACTIVE)
        flushed = alice.elements()
        self.assertEqual([(p.name, p["from"], show(p)) for p in flushed],
                         [("presence", "carol@localhost/pad", "dnd"),
                          ("presence", "bob@localhost/desk", "xa")])
        await self.change(bob, "chat")  # active again: straight through
        self.assertEqual([show(p) for p in alice.elements()], ["chat"])

    async def test_unavailable_replaces_what_was_held_for_that_resource(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        await self.change(bob, "away")
        await self.change(bob, type="unavailable")
        alice.feed(ACTIVE)
        self.assertEqual([(p["from"], p.getAttribute("type")) for p in alice.elements()],
                         [("bob@localhost/desk", "unavailable")])

    async def test_a_message_passes_at_once_after_the_held_presence(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        await self.change(bob, "away")
        bob.feed("<message to='alice@localhost/phone' type='chat'><body>hi</body></message>")
        got = alice.elements()
        self.assertEqual([(e.name, show(e) if e.name == "presence" else body(e)) for e in got],
                         [("presence", "away"), ("message", "hi")])
        await self.change(bob, "dnd")  # still inactive: held again
        self.assertEqual(alice.elements(), [])

    async def test_iqs_pass_at_once_and_flush_nothing(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        await self.change(bob, "away")
        answer = await self.ask(alice, "get", "<ping xmlns='urn:xmpp:ping'/>", id="p1")
        self.assertEqual((answer["type"], self.also), ("result", []))

    async def test_subscription_requests_are_not_held(self):
        alice = await self.inactive_alice()
        bob = await self.online("bob", "desk")
        bob.feed("<presence type='unsubscribe' to='alice@localhost'/>")
        await self.settle(bob)
        got = await self.wait(alice, lambda e: e.getAttribute("type") == "unsubscribe")
        self.assertIn("unsubscribe", [e.getAttribute("type") for e in got])
        await self.settle(alice)  # the roster writes that follow are done before the end
        await self.settle(bob)


class BoundTests(CSICase):
    sections = {"csi": {"max_held": 2}}
    async def test_reaching_max_held_flushes(self):
        bob = await self.online("bob", "desk")
        carol = await self.online("carol", "pad")
        alice = await self.inactive_alice()
        await self.change(bob, "away")
        self.assertEqual(alice.elements(), [])
        await self.change(carol, "dnd")
        self.assertEqual([(p["from"], show(p)) for p in alice.elements()],
                         [("bob@localhost/desk", "away"), ("carol@localhost/pad", "dnd")])
