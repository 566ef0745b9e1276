"""The owner use cases of XEP-0060 §8 on the pubsub core: creating nodes, the configure
form both ways (and the reconfigure-and-retry of Dino and Converse.js), affiliations and
subscriptions."""

from __future__ import annotations

from tests.unit.test_pubsub_service import (
    ALICE,
    BOB,
    CAROL,
    SERVICE,
    TUNE,
    PubSubTestCase,
    options,
    text,
    tune,
)
from xmppd import ns
from xmppd.forms import Form, make_field
from xmppd.pubsub import Limits
from xmppd.pubsub.access import admins
from xmppd.pubsub.config import PEP_DEFAULTS, SERVICE_DEFAULTS


def config(form_type: str = "submit", **values) -> Form:
    return Form.build(form_type, (make_field("pubsub#" + name, value)
                                  for name, value in values.items()),
                      form_type=ns.PUBSUB_NODE_CONFIG)


class CreateTests(PubSubTestCase):
    async def test_the_creator_owns_a_node_of_a_generic_service(self):
        service = self.generic()
        self.assertEqual(await service.create(ALICE, "news"), "news")
        node = await service.store.get_node("news")
        self.assertEqual((dict(node.affiliations), node.config),
                         ({"alice@example.org": "owner"}, SERVICE_DEFAULTS))
        await self.assertError("conflict", None, service.create(BOB, "news"))

    async def test_instant_nodes_on_a_generic_service_only(self):
        name = await self.generic().create(ALICE, None)
        self.assertEqual(len(name), 32)
        await self.assertError("not-acceptable", "nodeid-required", self.pep().create(ALICE, None))

    async def test_create_and_configure(self):
        service = self.generic()
        await service.create(ALICE, "n", config(access_model="whitelist", title="Mine"))
        node = await service.store.get_node("n")
        self.assertEqual((node.config.access_model, node.config.title), ("whitelist", "Mine"))
        await self.assertError("not-acceptable", None,
                               service.create(ALICE, "m", config(frobnicate="1")))
        self.assertIsNone(await service.store.get_node("m"))

    async def test_who_may_create(self):
        service = self.pubsub.service(SERVICE, admins([ALICE]))
        await self.assertError("forbidden", None, service.create(BOB, "n"))
        await self.assertError("forbidden", None, service.publish(BOB, "n", "i", tune("x")))
        await service.create(ALICE, "n")
        await self.assertError("forbidden", None, self.pep().create(BOB, "n"))

    def test_default_config(self):
        form = self.pep().default_config()
        self.assertEqual(form.get_text("pubsub#access_model"), "presence")
        self.assertEqual(self.generic().default_config().get_text("pubsub#access_model"), "open")


class ConfigureTests(PubSubTestCase):
    async def setUp(self):
        await super().setUp()
        self.service = self.pep()
        await self.service.publish(ALICE, TUNE, "t", tune("x"))

    async def test_the_form_shows_the_current_values(self):
        form = await self.service.get_config(ALICE, TUNE)
        self.assertEqual((form.type, form.form_type), ("form", ns.PUBSUB_NODE_CONFIG))
        fields = form.fields
        self.assertEqual(fields["pubsub#access_model"].type, "list-single")
        self.assertEqual([option.value for option in fields["pubsub#access_model"].options],
                         ["open", "presence", "roster", "whitelist"])
        self.assertEqual(form.get_text("pubsub#access_model"), "presence")
        self.assertEqual(form.get_text("pubsub#max_items"), "1")
        self.assertIs(form.get_bool("pubsub#persist_items"), True)
        self.assertEqual(form.get_text("pubsub#send_last_published_item"),
                         "on_sub_and_presence")
        self.assertEqual(fields["pubsub#max_items"].label,
                         "Max # of items to persist. `max` for the server's limit")

    async def test_set_changes_it(self):
        await self.service.configure(ALICE, TUNE, config(access_model="open", max_items="max",
                                                         title="Tunes"))
        form = await self.service.get_config(ALICE, TUNE)
        self.assertEqual((form.get_text("pubsub#access_model"), form.get_text("pubsub#max_items"),
                          form.get_text("pubsub#title"), form.get_text("pubsub#publish_model")),
                         ("open", "max", "Tunes", "publishers"))

    async def test_notify_config_tells_subscribers_with_the_form(self):
        await self.service.configure(ALICE, TUNE, config(access_model="open"))
        await self.service.subscribe(BOB, TUNE, BOB)
        self.assertEqual(await self.service.configure(ALICE, TUNE, config(title="a")), ())
        [notification] = await self.service.configure(ALICE, TUNE,
                                                      config(notify_config=True, title="b"))
        self.assertEqual((notification.kind, notification.subscribers), ("configuration", (BOB,)))
        message = text(notification.message)
        self.assertIn(f"<configuration node='{TUNE}'><x xmlns='jabber:x:data' type='result'>",
                      message)
        self.assertIn("<field var='pubsub#title'><value>b</value></field>", message)
        [notification] = await self.service.configure(ALICE, TUNE, config(deliver_payloads=False))
        self.assertIn(f"<configuration node='{TUNE}'/>", text(notification.message))

    async def test_lowering_max_items_drops_the_oldest(self):
        await self.service.configure(ALICE, TUNE, config(max_items=3))
        for item_id in "abcd":
            await self.service.publish(ALICE, TUNE, item_id, tune("x"))
        await self.service.configure(ALICE, TUNE, config(max_items=2))
        self.assertEqual(await self.item_ids(self.service, TUNE), ["c", "d"])
        await self.service.configure(ALICE, TUNE, config(persist_items=False))
        self.assertEqual(await self.item_ids(self.service, TUNE), [])

    async def test_a_cancelled_form_changes_nothing(self):
        await self.service.configure(ALICE, TUNE, config("cancel", access_model="open"))
        self.assertEqual((await self.service.store.get_node(TUNE)).config, PEP_DEFAULTS)

    async def test_errors(self):
        cases = [
            ("not-acceptable", None, config(notify_sub=True)),  # an option we do not have
            ("not-acceptable", "unsupported-access-model", config(access_model="authorize")),
            ("not-acceptable", None, config(access_model="")),
            ("not-acceptable", None, config(persist_items="maybe")),
            ("not-acceptable", None, config(max_items="0")),
            ("not-allowed", "max-items-exceeded", config(max_items=257)),
            ("bad-request", None, options(access_model="open")),  # another FORM_TYPE
            ("bad-request", None, config("form", access_model="open")),
        ]
        for condition, app, form in cases:
            await self.assertError(condition, app, self.service.configure(ALICE, TUNE, form))
        self.assertEqual((await self.service.store.get_node(TUNE)).config, PEP_DEFAULTS)
        await self.assertError("forbidden", None, self.service.get_config(BOB, TUNE))
        await self.assertError("forbidden", None, self.service.configure(BOB, TUNE, config()))
        await self.assertError("item-not-found", None, self.service.get_config(ALICE, "nope"))

    async def test_the_reconfigure_and_retry_of_dino_and_converse(self):
        opened = options(access_model="open", max_items="max")
        await self.assertError("conflict", "precondition-not-met",
                               self.service.publish(ALICE, TUNE, "t", tune("y"), options=opened))
        await self.service.configure(ALICE, TUNE, config(access_model="open", max_items="max"))
        await self.service.publish(ALICE, TUNE, "t", tune("y"), options=opened)
        self.assertEqual(await self.item_ids(self.service, TUNE, CAROL), ["t"])


class AffiliationTests(PubSubTestCase):
    async def test_pep_lists_the_account_as_owner(self):
        service = self.pep()
        await service.create(ALICE, "n")
        await service.set_affiliations(ALICE, "n", {BOB: "member", CAROL: "outcast"})
        self.assertEqual(await service.node_affiliations(ALICE, "n"),
                         {"alice@example.org": "owner", "bob@example.org": "member",
                          "carol@elsewhere.example": "outcast"})
        await service.set_affiliations(ALICE, "n", {CAROL: "none"})
        self.assertEqual(await service.affiliations(BOB), [("n", "member")])
        self.assertEqual(await service.affiliations(ALICE), [("n", "owner")])
        self.assertEqual(await service.affiliations(CAROL), [])
        await self.assertError("not-acceptable", None,
                               service.set_affiliations(ALICE, "n", {ALICE: "none"}))
        await self.assertError("forbidden", None, service.node_affiliations(BOB, "n"))

    async def test_a_generic_node_keeps_an_owner(self):
        service = self.generic()
        await service.create(ALICE, "n")
        await self.assertError("not-acceptable", None,
                               service.set_affiliations(ALICE, "n", {ALICE: "none"}))
        await self.assertError("bad-request", None,
                               service.set_affiliations(ALICE, "n", {BOB: "king"}))
        await service.set_affiliations(ALICE, "n", {BOB: "owner", ALICE: "publisher"})
        await self.assertError("forbidden", None, service.set_affiliations(ALICE, "n", {}))
        self.assertEqual(await service.node_affiliations(BOB, "n"),
                         {"alice@example.org": "publisher", "bob@example.org": "owner"})


class SubscriptionManagementTests(PubSubTestCase):
    async def test_owner_lists_adds_and_removes(self):
        service = self.generic()
        await service.create(ALICE, "n")
        await service.subscribe(BOB, "n", BOB)
        await service.set_subscriptions(ALICE, "n", {CAROL.bare(): "subscribed",
                                                     BOB: "none"})
        [subscription] = await service.node_subscriptions(ALICE, "n")
        self.assertEqual((subscription.jid, subscription.state),
                         ("carol@elsewhere.example", "subscribed"))
        await self.assertError("bad-request", None,
                               service.set_subscriptions(ALICE, "n", {BOB: "pending"}))
        await self.assertError("forbidden", None, service.node_subscriptions(BOB, "n"))
        [notification] = (await service.publish(ALICE, "n", "i", tune("x"))).notifications
        self.assertEqual(notification.subscribers, (CAROL.bare(),))


class LimitsTests(PubSubTestCase):
    def test_limits_are_positive_ints(self):
        for bad in (0, -1, 1.5, True):
            self.assertRaises(ValueError, Limits, max_nodes=bad)
