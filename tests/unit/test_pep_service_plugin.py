"""The pubsub plugin: a XEP-0060 service on pubsub.localhost, configured by
[plugins.pubsub]: who may create nodes, the defaults of new nodes, subscriber notifications."""

from __future__ import annotations

from tests.plugin_case import PluginServerCase
from tests.unit.test_pep_plugin import TUNE, error_conditions, event_of, iq_answer, wait_for
from xmppd import ns

SERVICE = "pubsub.localhost"


def create_iq(node: str, id: str = "c1") -> str:
    return (f"<iq type='set' id='{id}' to='{SERVICE}'><pubsub xmlns='{ns.PUBSUB}'>"
            f"<create node='{node}'/></pubsub></iq>")


class ServiceTest(PluginServerCase):
    enabled = ("pubsub",)
    sections = {"pubsub": {"create": "local", "default_max_items": 5}}
    users = ("alice", "bob")

    async def test_create_subscribe_publish_notify(self):
        alice = await self.client("alice", "phone")
        alice.feed(create_iq("news"))
        self.assertEqual((await wait_for(alice, iq_answer("c1")))["type"], "result")
        bob = await self.client("bob", "pc")
        bob.feed(f"<iq type='set' id='s1' to='{SERVICE}'><pubsub xmlns='{ns.PUBSUB}'>"
                 f"<subscribe node='news' jid='bob@localhost/pc'/></pubsub></iq>")
        self.assertEqual((await wait_for(bob, iq_answer("s1")))["type"], "result")
        alice.feed(f"<iq type='set' id='p1' to='{SERVICE}'><pubsub xmlns='{ns.PUBSUB}'>"
                   f"<publish node='news'><item><tune xmlns='{TUNE}'/></item></publish>"
                   f"</pubsub></iq>")
        self.assertEqual((await wait_for(alice, iq_answer("p1")))["type"], "result")
        event = await wait_for(bob, event_of("news"))
        self.assertEqual(event["from"], SERVICE)

    async def test_defaults_and_disco(self):
        alice = await self.client("alice", "phone")
        alice.feed(create_iq("news"))
        await wait_for(alice, iq_answer("c1"))
        alice.feed(f"<iq type='get' id='g1' to='{SERVICE}'><pubsub xmlns='{ns.PUBSUB_OWNER}'>"
                   f"<configure node='news'/></pubsub></iq>")
        form = (await wait_for(alice, iq_answer("g1"))).toXml()
        self.assertIn("<value>5</value>", form)
        alice.feed(f"<iq type='get' id='d1' to='{SERVICE}'><query xmlns='{ns.DISCO_ITEMS}'/>"
                   f"</iq>")
        items = await wait_for(alice, iq_answer("d1"))
        self.assertEqual([item["node"] for item in items.children[0].elements()], ["news"])
        alice.feed(f"<iq type='get' id='d2' to='{SERVICE}'><query xmlns='{ns.DISCO_INFO}'/>"
                   f"</iq>")
        info = (await wait_for(alice, iq_answer("d2"))).toXml()
        self.assertIn("instant-nodes", info)


class AdminsOnlyTest(PluginServerCase):
    enabled = ("pubsub",)
    sections = {"pubsub": {"create": "admins"}}

    async def test_a_user_may_not_create(self):
        alice = await self.client("alice", "phone")
        alice.feed(create_iq("news"))
        self.assertIn("forbidden", error_conditions(await wait_for(alice, iq_answer("c1"))))
