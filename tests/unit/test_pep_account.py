"""IPep (the pep plugin acting on an account's behalf) and events.PEP_CHANGED on a real
server with real SQLite: publish with publish-options and notifications as for a client,
read, retract; a client's publish and retract are told, the server's own writes are not."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.unit.test_pep_plugin import TUNE, PepTestCase, event_of, publish_iq, wait_for
from xmppd import events, ns
from xmppd.interfaces import IPep
from xmppd.jid import parse_jid
from xmppd.pubsub import PubSubError

ALICE = parse_jid("alice@localhost")


def tune(title: str) -> domish.Element:
    element = domish.Element((TUNE, "tune"))
    element.addElement("title", content=title)
    return element


class AccountPepTest(PepTestCase):
    async def test_publish_read_retract_on_behalf(self):
        pep = self.server.query(IPep)
        self.assertEqual(await pep.items(ALICE, TUNE), [])
        item_id = await pep.publish(ALICE, TUNE, "one", tune("Help"),
                                    {"access_model": "whitelist"})
        self.assertEqual(item_id, "one")
        ((found_id, payload),) = await pep.items(ALICE, TUNE)
        self.assertEqual((found_id, payload.name, payload.uri), ("one", "tune", TUNE))
        with self.assertRaises(PubSubError) as refused:
            await pep.publish(ALICE, TUNE, "two", tune("Help"), {"access_model": "open"})
        self.assertEqual(refused.exception.condition, "conflict")
        await pep.retract(ALICE, TUNE, ["one"])
        self.assertEqual(await pep.items(ALICE, TUNE), [])

    async def test_on_behalf_publish_notifies_own_resources(self):
        self.learn_client_caps()
        alice = await self.client("alice", "phone")
        alice.feed(f"<presence>{self.caps_element()}</presence>")
        await self.server.query(IPep).publish(ALICE, TUNE, "current", tune("Let it be"))
        event = await wait_for(alice, event_of(TUNE))
        self.assertIn("Let it be", event.toXml())

    def caps_element(self) -> str:
        from tests.unit.test_pep_plugin import CLIENT_CAPS
        return CLIENT_CAPS.to_element().toXml()


class ChangeEventTest(PepTestCase):
    async def test_client_changes_are_told_and_server_writes_are_not(self):
        told = []
        self.server.events.on(events.PEP_CHANGED, told.append)
        alice = await self.client("alice", "phone")
        await self.publish(alice, item_id="a", title="Yesterday")
        await self.server.query(IPep).publish(ALICE, "urn:example:other", "b", tune("Server"))
        alice.feed(f"<iq type='set' id='r1'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<retract node='{TUNE}'><item id='a'/></retract></pubsub></iq>")
        await wait_for(alice, lambda e: e.name == "iq" and e.getAttribute("id") == "r1")
        self.assertEqual([(c.account, c.node, c.item_id, c.retracted) for c in told],
                         [(ALICE, TUNE, "a", False), (ALICE, TUNE, "a", True)])
        self.assertEqual(told[0].payload.name, "tune")

    async def test_a_made_up_item_id_is_told(self):
        told = []
        self.server.events.on(events.PEP_CHANGED, told.append)
        alice = await self.client("alice", "phone")
        alice.feed(publish_iq().replace("<item id='current'>", "<item>"))
        await wait_for(alice, lambda e: e.name == "iq" and e.getAttribute("id") == "pub1")
        (change,) = told
        self.assertTrue(change.item_id)


class ManyItemsTest(PepTestCase):
    sections = {"pep": {"max_items_per_node": 300}}

    async def test_items_reads_past_a_reply_page(self):
        pep = self.server.query(IPep)
        for n in range(120):
            await pep.publish(ALICE, TUNE, f"i{n}", tune(str(n)), {"max_items": "max"})
        self.assertEqual(len(await pep.items(ALICE, TUNE)), 120)
