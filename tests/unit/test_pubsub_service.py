"""The pubsub core (XEP-0060) as services see it, on real SQLite in memory: publishing and
retrieving, auto-create and publish-options, OMEMO's nodes, retract/purge/delete with their
notifications, subscriptions, quotas and the access models."""

from __future__ import annotations

import itertools

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import Form, make_field
from xmppd.jid import JID, parse_jid
from xmppd.pubsub import Limits, PubSub, PubSubError
from xmppd.pubsub.access import anyone
from xmppd.pubsub.config import PEP_DEFAULTS
from xmppd.rsm import ResultSetRequest
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.xml.serializer import serialize
from xmppd.xml.stored import stanza_from_text

ALICE = parse_jid("alice@example.org/phone")
BOB = parse_jid("bob@example.org/laptop")
CAROL = parse_jid("carol@elsewhere.example/pc")  # another domain, no relationship at all
SERVICE = parse_jid("pubsub.example.org")
TUNE = "http://jabber.org/protocol/tune"


def xml(text: str) -> domish.Element:
    element = stanza_from_text(text)
    assert element is not None, text
    return element


def text(element: domish.Element) -> str:
    return serialize(element, ns.CLIENT).decode("utf-8")


def tune(title: str) -> domish.Element:
    return xml(f"<tune xmlns='{TUNE}'><title>{title}</title></tune>")


def options(**values) -> Form:
    """A publish-options form: option name -> value (``max_items='max'``, booleans...)."""
    return Form.build("submit", (make_field("pubsub#" + name, value)
                                 for name, value in values.items()),
                      form_type=ns.PUBSUB_PUBLISH_OPTIONS)


class PubSubTestCase(TestCase):
    """A PubSub on a fresh in-memory database, with a roster the tests fill in:
    ``self.roster[(owner, contact)] = (subscription, groups)`` (bare JID strings)."""

    limits = Limits()

    @defer.inlineCallbacks
    def setUp(self):
        self.storage = SQLiteStorage(":memory:")
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.roster: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self.asked: list[tuple[str, str]] = []
        self.clock = itertools.count(1000)
        self.pubsub = PubSub(self.storage, self.relationship, self.limits,
                             clock=lambda: float(next(self.clock)))

    async def relationship(self, owner: JID, contact: JID):
        self.asked.append((owner.full(), contact.full()))
        return self.roster.get((owner.full(), contact.full()), ("none", ()))

    def pep(self, account: JID = ALICE):
        return self.pubsub.pep(account)

    def generic(self):
        return self.pubsub.service(SERVICE, anyone)

    async def item_ids(self, service, node: str, requester: JID = ALICE) -> list[str]:
        return [item.id for item in (await service.items(requester, node)).items]

    async def assertError(self, condition: str, app: str | None, awaitable) -> StanzaError:
        """``awaitable`` fails with this condition and pubsub#errors child (None: none)."""
        try:
            await awaitable
        except StanzaError as error:
            found = (error.condition, getattr(error, "app_condition", None))
            self.assertEqual(found, (condition, app), error.text)
            return error
        self.fail(f"no {condition} error")


class PublishTests(PubSubTestCase):
    async def test_a_published_item_is_retrieved_and_notified(self):
        service = self.pep()
        published = await service.publish(ALICE, TUNE, "t1", tune("Yesterday"))
        self.assertEqual((published.node, published.item_id), (TUNE, "t1"))
        [notification] = published.notifications
        self.assertEqual(notification.kind, "items")
        self.assertEqual(text(notification.message),
                         "<message type='headline'><event xmlns='http://jabber.org/protocol/"
                         f"pubsub#event'><items node='{TUNE}'><item id='t1'><tune xmlns="
                         f"'{TUNE}'><title>Yesterday</title></tune></item></items></event>"
                         "</message>")
        page = await service.items(ALICE, TUNE)
        [item] = page.items
        self.assertEqual((item.id, item.publisher, item.stamp), ("t1", ALICE.userhost(), 1000.0))
        self.assertEqual([text(each) for each in page.item_elements()],
                         [f"<item id='t1'><tune xmlns='{TUNE}'><title>Yesterday</title>"
                          "</tune></item>"])
        self.assertIsNone(page.page)

    async def test_retrieval_sends_the_stored_text_without_parsing_it(self):
        service = self.pep()
        await service.publish(ALICE, TUNE, "t1", tune("Help!"))
        [element] = (await service.items(ALICE, TUNE)).item_elements()
        [payload] = element.children
        self.assertIsInstance(payload, domish.SerializedXML)

    async def test_the_first_publish_creates_the_node_with_pep_defaults(self):
        service = self.pep()
        self.assertIsNone(await service.store.get_node(TUNE))
        await service.publish(ALICE, TUNE, None, tune("a"))
        node = await service.store.get_node(TUNE)
        self.assertEqual(node.config, PEP_DEFAULTS)
        self.assertEqual(dict(node.affiliations), {})  # the account owns it unlisted

    async def test_an_item_without_id_gets_one_and_max_items_1_keeps_the_last(self):
        service = self.pep()
        first = await service.publish(ALICE, TUNE, None, tune("a"))
        second = await service.publish(ALICE, TUNE, None, tune("b"))
        self.assertTrue(first.item_id and second.item_id and first.item_id != second.item_id)
        self.assertEqual(await self.item_ids(service, TUNE), [second.item_id])

    async def test_republishing_an_id_replaces_the_item_and_makes_it_newest(self):
        service = self.generic()
        for item_id, title in (("a", "1"), ("b", "2"), ("a", "3")):
            await service.publish(ALICE, "news", item_id, tune(title))
        page = await service.items(BOB, "news")
        self.assertEqual([item.id for item in page.items], ["b", "a"])
        self.assertIn("<title>3</title>", page.items[1].payload)

    async def test_a_payload_without_namespace_is_invalid(self):
        payload = xml("<tune><title>x</title></tune>")  # jabber:client, as a client sends it
        await self.assertError("bad-request", "invalid-payload",
                               self.pep().publish(ALICE, TUNE, "t", payload))

    async def test_item_and_payload_rules_of_the_event_types(self):
        service = self.generic()
        await self.assertError("bad-request", "item-required",
                               service.publish(ALICE, "n", with_item=False))
        await self.assertError("bad-request", "payload-required",
                               service.publish(ALICE, "n", "i", None))
        transient = options(persist_items=False, deliver_payloads=False)
        published = await service.publish(ALICE, "t", with_item=False, options=transient)
        self.assertIsNone(published.item_id)
        self.assertIn("<items node='t'/>", text(published.notifications[0].message))
        await self.assertError("bad-request", "item-forbidden",
                               service.publish(ALICE, "t", "i", tune("x")))

    async def test_a_transient_node_notifies_and_stores_nothing(self):
        service = self.generic()
        published = await service.publish(ALICE, "live", None, tune("x"),
                                          options=options(persist_items=False))
        self.assertIn("<title>x</title>", text(published.notifications[0].message))
        self.assertEqual(await service.store.count_items("live"), 0)

    async def test_deliver_payloads_off_notifies_the_id_only(self):
        service = self.generic()
        published = await service.publish(ALICE, "n", "i", tune("x"),
                                          options=options(deliver_payloads=False))
        self.assertIn("<item id='i'/>", text(published.notifications[0].message))
        [item] = (await service.items(ALICE, "n")).items
        self.assertIn("<title>x</title>", item.payload)  # kept all the same

    async def test_deliver_notifications_off_notifies_nobody(self):
        published = await self.generic().publish(ALICE, "n", "i", tune("x"),
                                                  options=options(deliver_notifications=False))
        self.assertEqual(published.notifications, ())

    async def test_only_the_account_publishes_to_its_pep(self):
        service = self.pep()
        await self.assertError("forbidden", None, service.publish(BOB, TUNE, "t", tune("x")))
        await service.publish(ALICE, TUNE, "t", tune("x"))
        await self.assertError("forbidden", None, service.publish(BOB, TUNE, "t", tune("y")))
        self.assertEqual((await service.items(ALICE, TUNE)).items[0].publisher, ALICE.userhost())


class PublishOptionsTests(PubSubTestCase):
    async def test_a_new_node_takes_the_options(self):
        service = self.pep()
        await service.publish(ALICE, "urn:xmpp:bookmarks:1", "room@muc.example.org",
                              xml("<conference xmlns='urn:xmpp:bookmarks:1'/>"),
                              options=options(persist_items=True, access_model="whitelist",
                                              max_items="max",
                                              send_last_published_item="never"))
        config = (await service.store.get_node("urn:xmpp:bookmarks:1")).config
        self.assertEqual((config.access_model, config.max_items, config.persist_items,
                          config.send_last_published_item),
                         ("whitelist", None, True, "never"))

    async def test_options_the_node_meets_publish(self):
        service = self.pep()
        for title in ("a", "b"):
            await service.publish(ALICE, TUNE, "current", tune(title),
                                  options=options(access_model="open"))
        [item] = (await service.items(ALICE, TUNE)).items
        self.assertIn("<title>b</title>", item.payload)

    async def test_options_the_node_does_not_meet_are_a_conflict_and_nothing_is_stored(self):
        service = self.pep()
        await service.publish(ALICE, TUNE, "current", tune("old"))  # access_model presence
        error = await self.assertError(
            "conflict", "precondition-not-met",
            service.publish(ALICE, TUNE, "current", tune("new"),
                            options=options(access_model="open")))
        self.assertIn("pubsub#access_model", error.text)
        [item] = (await service.items(ALICE, TUNE)).items
        self.assertIn("<title>old</title>", item.payload)
        self.assertEqual((await service.store.get_node(TUNE)).config.access_model, "presence")

    async def test_an_option_we_do_not_have_is_not_met(self):
        await self.assertError("conflict", "precondition-not-met",
                               self.pep().publish(ALICE, TUNE, "t", tune("x"),
                                                  options=options(itemreply="owner")))

    async def test_max_meets_the_limit_written_as_a_number(self):
        service = self.pep()
        await service.publish(ALICE, "n", "1", tune("x"), options=options(max_items=256))
        await service.publish(ALICE, "n", "2", tune("x"), options=options(max_items="max"))
        await self.assertError("conflict", "precondition-not-met",
                               service.publish(ALICE, "n", "3", tune("x"),
                                               options=options(max_items=255)))

    async def test_an_option_value_we_cannot_take_is_not_acceptable(self):
        service = self.pep()
        await self.assertError("not-acceptable", "unsupported-access-model",
                               service.publish(ALICE, TUNE, "t", tune("x"),
                                               options=options(access_model="authorize")))
        await self.assertError("not-acceptable", None,
                               service.publish(ALICE, TUNE, "t", tune("x"),
                                               options=options(max_items="lots")))
        self.assertIsNone(await service.store.get_node(TUNE))

    async def test_a_form_of_another_type_is_a_bad_request(self):
        form = Form.build("submit", (make_field("pubsub#access_model", "open"),),
                          form_type=ns.PUBSUB_NODE_CONFIG)
        await self.assertError("bad-request", None,
                               self.pep().publish(ALICE, TUNE, "t", tune("x"), options=form))


class OmemoTests(PubSubTestCase):
    """XEP-0384 clients publish their device list and bundles with access_model=open and
    max_items=max, and contacts without a subscription (even on other servers) read them."""

    async def publish_omemo(self, devices_node: str, device_list: str, bundles: list[tuple]):
        service = self.pep()
        opened = options(access_model="open", max_items="max")
        await service.publish(ALICE, devices_node, "current", xml(device_list), options=opened)
        for node, item_id, bundle in bundles:
            await service.publish(ALICE, node, item_id, xml(bundle), options=opened)
        return service

    async def test_omemo_2(self):
        service = await self.publish_omemo(
            "urn:xmpp:omemo:2:devices",
            f"<devices xmlns='{ns.OMEMO}'><device id='12345'/><device id='4223'/></devices>",
            [("urn:xmpp:omemo:2:bundles", device, f"<bundle xmlns='{ns.OMEMO}'><spk id='1'>"
              f"{device}</spk></bundle>") for device in ("12345", "4223")])
        for reader in (BOB, CAROL):
            [devices] = (await service.items(reader, "urn:xmpp:omemo:2:devices")).items
            self.assertIn("<device id='4223'/>", devices.payload)
            bundles = await service.items(reader, "urn:xmpp:omemo:2:bundles",
                                          item_ids=("4223",))
            self.assertEqual([item.id for item in bundles.items], ["4223"])
            everything = await self.item_ids(service, "urn:xmpp:omemo:2:bundles", reader)
            self.assertEqual(everything, ["12345", "4223"])
        self.assertEqual(self.asked, [])  # 'open' asks no roster

    async def test_legacy_axolotl(self):
        service = await self.publish_omemo(
            "eu.siacs.conversations.axolotl.devicelist",
            f"<list xmlns='{ns.OMEMO_LEGACY}'><device id='777'/></list>",
            [("eu.siacs.conversations.axolotl.bundles:777", "current",
              f"<bundle xmlns='{ns.OMEMO_LEGACY}'><signedPreKeyPublic signedPreKeyId='1'>"
              "AAA=</signedPreKeyPublic></bundle>")])
        [bundle] = (await service.items(CAROL,
                                        "eu.siacs.conversations.axolotl.bundles:777")).items
        self.assertIn("signedPreKeyPublic", bundle.payload)
        [devices] = (await service.items(CAROL,
                                         "eu.siacs.conversations.axolotl.devicelist")).items
        self.assertEqual(devices.id, "current")


class RetrievalTests(PubSubTestCase):
    async def setUp(self):
        await super().setUp()
        self.service = self.generic()
        for n in range(1, 8):
            await self.service.publish(ALICE, "log", f"i{n}", tune(str(n)))

    async def test_by_id_only_those_that_exist(self):
        page = await self.service.items(BOB, "log", item_ids=("i3", "nope", "i1"))
        self.assertEqual([item.id for item in page.items], ["i3", "i1"])

    async def test_max_items_gives_the_newest_oldest_first(self):
        page = await self.service.items(BOB, "log", max_items=3)
        self.assertEqual([item.id for item in page.items], ["i5", "i6", "i7"])
        self.assertIsNone(page.page)

    async def test_rsm_pages_forwards_and_backwards(self):
        first = await self.service.items(BOB, "log", rsm=ResultSetRequest(max=3))
        self.assertEqual([item.id for item in first.items], ["i1", "i2", "i3"])
        self.assertEqual((first.page.first, first.page.last, first.page.total),
                         ("i1", "i3", 7))
        second = await self.service.items(BOB, "log", rsm=ResultSetRequest(max=3, after="i3"))
        self.assertEqual([item.id for item in second.items], ["i4", "i5", "i6"])
        last = await self.service.items(BOB, "log", rsm=ResultSetRequest(max=2, before=""))
        self.assertEqual([item.id for item in last.items], ["i6", "i7"])
        before = await self.service.items(BOB, "log", rsm=ResultSetRequest(max=2, before="i6"))
        self.assertEqual([item.id for item in before.items], ["i4", "i5"])

    async def test_rsm_after_an_unknown_item_is_item_not_found(self):
        await self.assertError("item-not-found", None,
                               self.service.items(BOB, "log",
                                                  rsm=ResultSetRequest(max=3, after="zz")))

    async def test_rsm_index_is_not_implemented(self):
        with self.assertRaises(PubSubError) as caught:
            await self.service.items(BOB, "log", rsm=ResultSetRequest(max=3, index=2))
        self.assertEqual(caught.exception.condition, "feature-not-implemented")

    async def test_more_items_than_a_page_come_newest_with_a_result_set(self):
        self.service.limits = Limits(max_page=4)
        page = await self.service.items(BOB, "log")
        self.assertEqual([item.id for item in page.items], ["i4", "i5", "i6", "i7"])
        self.assertEqual((page.page.total, page.page.complete), (7, False))

    async def test_a_node_that_does_not_exist(self):
        await self.assertError("item-not-found", None, self.service.items(BOB, "nothing"))

    async def test_node_names(self):
        await self.assertError("bad-request", "nodeid-required", self.service.items(BOB, ""))
        await self.assertError("not-acceptable", None, self.service.items(BOB, "n" * 1001))


class RetractPurgeDeleteTests(PubSubTestCase):
    async def setUp(self):
        await super().setUp()
        self.service = self.generic()
        await self.service.publish(ALICE, "news", "a", tune("a"))
        await self.service.publish(ALICE, "news", "b", tune("b"))
        await self.service.subscribe(BOB, "news", BOB)

    async def test_retract_with_notify(self):
        [notification] = await self.service.retract(ALICE, "news", ("a",), notify=True)
        self.assertEqual(notification.kind, "retract")
        self.assertEqual(notification.subscribers, (BOB,))
        self.assertIn("<items node='news'><retract id='a'/></items>", text(notification.message))
        self.assertEqual(await self.item_ids(self.service, "news"), ["b"])

    async def test_retract_notifies_as_configured_unless_told(self):
        self.assertEqual(await self.service.retract(ALICE, "news", ("a",), notify=False), ())
        self.assertEqual(len(await self.service.retract(ALICE, "news", ("b",))), 1)

    async def test_retract_errors(self):
        await self.assertError("item-not-found", None,
                               self.service.retract(ALICE, "news", ("zz",)))
        await self.assertError("bad-request", "item-required",
                               self.service.retract(ALICE, "news", ()))
        await self.assertError("forbidden", None, self.service.retract(BOB, "news", ("a",)))
        await self.assertError("item-not-found", None, self.service.retract(ALICE, "x", ("a",)))
        self.assertEqual(await self.item_ids(self.service, "news"), ["a", "b"])

    async def test_anyone_retracts_what_they_published(self):
        await self.service.publish(BOB, "open", "mine", tune("x"),
                                   options=options(publish_model="open"))
        await self.service.publish(ALICE, "open", "hers", tune("x"))
        await self.assertError("forbidden", None, self.service.retract(CAROL, "open", ("mine",)))
        await self.service.retract(BOB, "open", ("mine",))  # Bob created it: the owner
        await self.service.publish(CAROL, "open", "c", tune("x"))
        await self.service.retract(CAROL, "open", ("c",))
        await self.assertError("forbidden", None, self.service.retract(CAROL, "open", ("hers",)))

    async def test_purge(self):
        await self.assertError("forbidden", None, self.service.purge(BOB, "news"))
        [notification] = await self.service.purge(ALICE, "news")
        self.assertEqual((notification.kind, notification.subscribers), ("purge", (BOB,)))
        self.assertIn("<purge node='news'/>", text(notification.message))
        self.assertEqual(await self.item_ids(self.service, "news"), [])

    async def test_delete_notifies_and_leaves_nothing_for_a_new_node(self):
        await self.assertError("forbidden", None, self.service.delete(BOB, "news"))
        [notification] = await self.service.delete(ALICE, "news", "xmpp:pubsub.example.org"
                                                   "?;node=new")
        self.assertEqual((notification.kind, notification.subscribers), ("delete", (BOB,)))
        self.assertIn("<delete node='news'><redirect uri='xmpp:pubsub.example.org?;node=new'/>"
                      "</delete>", text(notification.message))
        await self.assertError("item-not-found", None, self.service.items(ALICE, "news"))
        await self.assertError("item-not-found", None, self.service.delete(ALICE, "news"))
        await self.service.create(ALICE, "news")
        self.assertEqual(await self.item_ids(self.service, "news"), [])
        self.assertEqual(await self.service.node_subscriptions(ALICE, "news"), [])


class SubscriptionTests(PubSubTestCase):
    async def test_subscribe_gets_the_last_item_then_notifications(self):
        service = self.generic()
        await service.publish(ALICE, "news", "a", tune("a"))
        await service.publish(ALICE, "news", "b", tune("b"))
        subscribed = await service.subscribe(BOB, "news", BOB)
        self.assertEqual((subscribed.subscription.jid, subscribed.subscription.state),
                         (BOB.full(), "subscribed"))
        [last] = subscribed.notifications
        self.assertEqual(last.subscribers, (BOB,))
        self.assertIn("<item id='b'><tune", text(last.message))
        again = await service.subscribe(BOB, "news", BOB)
        self.assertEqual(again.subscription, subscribed.subscription)
        [notification] = (await service.publish(ALICE, "news", "c", tune("c"))).notifications
        self.assertEqual(notification.subscribers, (BOB,))
        self.assertEqual(await service.subscriptions(BOB), [subscribed.subscription])
        await service.unsubscribe(BOB, "news", BOB, subscribed.subscription.subid)
        [notification] = (await service.publish(ALICE, "news", "d", tune("d"))).notifications
        self.assertEqual(notification.subscribers, ())

    async def test_subscription_errors(self):
        service = self.generic()
        await service.create(ALICE, "news")
        await self.assertError("bad-request", "invalid-jid", service.subscribe(BOB, "news", CAROL))
        await self.assertError("item-not-found", None, service.subscribe(BOB, "none", BOB))
        await self.assertError("unexpected-request", "not-subscribed",
                               service.unsubscribe(BOB, "news", BOB))
        await service.subscribe(BOB, "news", BOB.bare())
        await self.assertError("not-acceptable", "invalid-subid",
                               service.unsubscribe(BOB, "news", BOB.bare(), "wrong"))
        await self.assertError("forbidden", None, service.unsubscribe(CAROL, "news", BOB.bare()))
        await service.unsubscribe(ALICE, "news", BOB.bare())  # the owner may

    async def test_never_sends_no_last_item(self):
        service = self.generic()
        await service.publish(ALICE, "n", "a", tune("a"),
                              options=options(send_last_published_item="never"))
        self.assertEqual((await service.subscribe(BOB, "n", BOB)).notifications, ())

    async def test_last_published_for_presence(self):
        service = self.pep()
        self.assertIsNone(await service.last_published(TUNE))
        await service.publish(ALICE, TUNE, "t", tune("x"))
        last = await service.last_published(TUNE)
        self.assertEqual(last.subscribers, ())
        self.assertIn("<item id='t'><tune", text(last.message))


class QuotaTests(PubSubTestCase):
    limits = Limits(max_nodes=2, max_items_per_node=5, max_item_size=200)

    async def test_nodes_per_owner(self):
        service = self.pep()
        await service.publish(ALICE, "one", "i", tune("x"))
        await service.create(ALICE, "two")
        await self.assertError("not-allowed", "max-nodes-exceeded",
                               service.publish(ALICE, "three", "i", tune("x")))
        await self.assertError("not-allowed", "max-nodes-exceeded", service.create(ALICE, "3"))
        await self.pep(BOB).create(BOB, "three")  # another account's quota
        await service.delete(ALICE, "one")
        await service.create(ALICE, "three")

    async def test_concurrent_creations_do_not_pass_the_quota(self):
        service = self.pep()
        results = await defer.DeferredList(
            [defer.ensureDeferred(service.publish(ALICE, f"n{n}", "i", tune("x")))
             for n in range(4)], consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True, True, False, False])
        self.assertEqual(await service.store.count_nodes(), 2)

    async def test_items_per_node(self):
        service = self.pep()
        await self.assertError("not-allowed", "max-items-exceeded",
                               service.publish(ALICE, "n", "i", tune("x"),
                                               options=options(max_items=6)))
        for n in range(7):
            await service.publish(ALICE, "n", str(n), tune("x"), options=options(max_items="max"))
        self.assertEqual(await self.item_ids(service, "n"), ["2", "3", "4", "5", "6"])

    async def test_item_size(self):
        service = self.pep()
        await service.publish(ALICE, TUNE, "small", tune("x" * 100))
        await self.assertError("not-acceptable", "payload-too-big",
                               service.publish(ALICE, TUNE, "big", tune("x" * 200)))
        self.assertEqual(await self.item_ids(service, TUNE), ["small"])

    async def test_item_ids_are_bounded(self):
        await self.assertError("bad-request", None,
                               self.pep().publish(ALICE, TUNE, "i" * 1024, tune("x")))


class AccessModelTests(PubSubTestCase):
    async def node(self, **config) -> object:
        service = self.pep()
        await service.publish(ALICE, "n", "i", tune("x"), options=options(**config))
        return service

    async def test_open_is_anyone(self):
        service = await self.node(access_model="open")
        for reader in (BOB, CAROL):
            self.assertEqual(await self.item_ids(service, "n", reader), ["i"])

    async def test_presence_is_contacts_that_get_the_owners_presence(self):
        service = await self.node()  # 'presence', the PEP default
        self.roster[("alice@example.org", "bob@example.org")] = ("from", ())
        self.assertEqual(await self.item_ids(service, "n", BOB), ["i"])
        for subscription in ("to", "none"):
            self.roster[("alice@example.org", "bob@example.org")] = (subscription, ())
            await self.assertError("not-authorized", "presence-subscription-required",
                                   service.items(BOB, "n"))
            await self.assertError("not-authorized", "presence-subscription-required",
                                   service.subscribe(BOB, "n", BOB))
        self.assertEqual(await self.item_ids(service, "n", ALICE), ["i"])  # the owner

    async def test_roster_is_contacts_in_the_groups_allowed(self):
        service = await self.node(access_model="roster", roster_groups_allowed=["Family"])
        self.roster[("alice@example.org", "bob@example.org")] = ("both", ("Work",))
        await self.assertError("not-authorized", "not-in-roster-group", service.items(BOB, "n"))
        self.roster[("alice@example.org", "bob@example.org")] = ("none", ("Work", "Family"))
        self.assertEqual(await self.item_ids(service, "n", BOB), ["i"])

    async def test_whitelist_is_members(self):
        service = await self.node(access_model="whitelist")
        await self.assertError("not-allowed", "closed-node", service.items(BOB, "n"))
        await service.set_affiliations(ALICE, "n", {BOB.bare(): "member"})
        self.assertEqual(await self.item_ids(service, "n", BOB), ["i"])
        await self.assertError("not-allowed", "closed-node", service.subscribe(CAROL, "n", CAROL))

    async def test_an_outcast_may_do_nothing(self):
        service = self.generic()
        await service.publish(ALICE, "n", "i", tune("x"), options=options(publish_model="open"))
        await service.subscribe(BOB, "n", BOB)
        await service.set_affiliations(ALICE, "n", {BOB.bare(): "outcast"})
        await self.assertError("forbidden", None, service.items(BOB, "n"))
        await self.assertError("forbidden", None, service.subscribe(BOB, "n", BOB))
        await self.assertError("forbidden", None, service.publish(BOB, "n", "j", tune("y")))
        self.assertEqual(await service.node_subscriptions(ALICE, "n"), [])  # banned, dropped

    async def test_publish_models(self):
        service = self.generic()
        await service.publish(ALICE, "n", "i", tune("x"),
                              options=options(publish_model="subscribers"))
        await self.assertError("forbidden", None, service.publish(BOB, "n", "j", tune("y")))
        await service.subscribe(BOB, "n", BOB)
        await service.publish(BOB, "n", "j", tune("y"))
        await service.set_affiliations(ALICE, "n", {CAROL: "publisher"})
        await service.publish(CAROL, "n", "k", tune("z"))

    async def test_notifications_skip_subscribers_who_lost_access(self):
        service = await self.node()
        self.roster[("alice@example.org", "bob@example.org")] = ("both", ())
        await service.subscribe(BOB, "n", BOB)
        self.roster[("alice@example.org", "bob@example.org")] = ("to", ())
        [notification] = (await service.publish(ALICE, "n", "j", tune("y"))).notifications
        self.assertEqual(notification.subscribers, ())

    async def test_audience_filters_the_wirings_candidates(self):
        service = await self.node()
        self.roster[("alice@example.org", "bob@example.org")] = ("from", ())
        [notification] = (await service.publish(ALICE, "n", "j", tune("y"))).notifications
        self.assertEqual(await service.audience(notification.node, [BOB, CAROL, ALICE]),
                         [BOB, ALICE])

    async def test_disco_items_lists_the_nodes_the_asker_may_see(self):
        service = self.pep()
        for node, access in (("a", "open"), ("b", "presence"), ("c", "whitelist")):
            await service.publish(ALICE, node, "i", tune("x"), options=options(access_model=access))
        self.roster[("alice@example.org", "bob@example.org")] = ("both", ())
        seen = {who: [node.name for node in await service.visible_nodes(who)]
                for who in (ALICE, BOB, CAROL)}
        self.assertEqual(seen, {ALICE: ["a", "b", "c"], BOB: ["a", "b"], CAROL: ["a"]})
