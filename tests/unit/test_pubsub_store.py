"""Where the pubsub core keeps things (generic stores, owner = the service's JID), and that
an account's nodes go with it."""

from __future__ import annotations

from tests.unit.test_pubsub_service import ALICE, BOB, TUNE, PubSubTestCase, tune
from xmppd.pubsub.config import PEP_DEFAULTS, NodeConfig
from xmppd.pubsub.model import Node
from xmppd.sasl.credentials import derive_all
from xmppd.storage.records import ArchiveEntry

OWNER = "alice@example.org"


class LayoutTests(PubSubTestCase):
    async def test_nodes_items_and_subscriptions(self):
        service = self.pep()
        await service.publish(ALICE, TUNE, "t", tune("x"))
        self.roster[(OWNER, "bob@example.org")] = ("both", ())
        await service.subscribe(BOB, TUNE, BOB)
        record = await self.storage.open_store("pubsub", "map").get(OWNER, TUNE)
        self.assertEqual(record["config"]["max_items"], 1)
        self.assertEqual(record["affiliations"], {})
        entry = await self.storage.open_store("pubsub/items/" + TUNE, "archive").get(OWNER, "t")
        self.assertEqual((entry.with_jid, entry.payload),
                         (OWNER, f"<tune xmlns='{TUNE}'><title>x</title></tune>"))
        subscriptions = await self.storage.open_store("pubsub/subscriptions/" + TUNE,
                                                      "map").items(OWNER)
        self.assertEqual(list(subscriptions), [BOB.full()])

    async def test_a_new_node_starts_clean_after_an_interrupted_delete(self):
        items = self.storage.open_store("pubsub/items/n", "archive")
        await items.append(OWNER, ArchiveEntry(1.0, OWNER, "<old xmlns='urn:x'/>", "old"))
        service = self.pep()
        await service.create(ALICE, "n")
        self.assertEqual(await self.item_ids(service, "n"), [])

    async def test_deleting_the_account_deletes_its_nodes(self):
        await self.storage.users.create_user("alice", "example.org", derive_all("x", 64))
        service = self.pep()
        await service.publish(ALICE, TUNE, "t", tune("x"))
        await service.subscribe(ALICE, TUNE, ALICE)
        await self.storage.users.delete_user("alice", "example.org")
        self.assertEqual(await service.store.nodes(), [])
        self.assertEqual(await service.store.count_items(TUNE), 0)
        self.assertEqual(await service.store.subscriptions(TUNE), [])

    async def test_services_do_not_see_each_others_nodes(self):
        await self.pep().publish(ALICE, TUNE, "t", tune("x"))
        self.assertIsNone(await self.pep(BOB).store.get_node(TUNE))
        self.assertIsNone(await self.generic().store.get_node(TUNE))


class RecordTests(PubSubTestCase):
    def test_a_stored_config_takes_new_options_from_the_defaults(self):
        stored = {"access_model": "open", "max_items": "max", "retired_option": True}
        config = NodeConfig.from_json(stored, PEP_DEFAULTS)
        self.assertEqual((config.access_model, config.max_items, config.send_last_published_item),
                         ("open", None, "on_sub_and_presence"))
        self.assertEqual(NodeConfig.from_json(config.to_json(), NodeConfig()), config)

    def test_values_are_checked(self):
        self.assertRaises(ValueError, NodeConfig, access_model="authorize")
        self.assertRaises(ValueError, NodeConfig, max_items=0)
        self.assertRaises(ValueError, NodeConfig, persist_items="yes")
        self.assertRaises(ValueError, NodeConfig, roster_groups_allowed=["a"])
        self.assertRaises(ValueError, Node, "n", NodeConfig(), {OWNER: "none"})
        self.assertRaises(ValueError, Node, "n", NodeConfig(), {OWNER: "king"})
