"""IQs in, reply payloads and errors out: ``handle_iq`` on real XML, as the wiring will call
it, the pubsub#errors children of the error replies, and what disco says."""

from __future__ import annotations

from tests.unit.test_pubsub_service import (
    ALICE,
    BOB,
    CAROL,
    PubSubTestCase,
    options,
    text,
    tune,
    xml,
)
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import parse_form
from xmppd.pubsub import PubSubError
from xmppd.pubsub.discovery import features, identity, node_info, node_items
from xmppd.pubsub.errors import unsupported
from xmppd.pubsub.protocol import handle_iq
from xmppd.stanza import make_iq_result

PUBSUB = f"<pubsub xmlns='{ns.PUBSUB}'>"
OWNER = f"<pubsub xmlns='{ns.PUBSUB_OWNER}'>"
OMEMO_OPTIONS = (
    "<publish-options><x xmlns='jabber:x:data' type='submit'>"
    f"<field var='FORM_TYPE' type='hidden'><value>{ns.PUBSUB_PUBLISH_OPTIONS}</value></field>"
    "<field var='pubsub#access_model'><value>open</value></field>"
    "<field var='pubsub#max_items'><value>max</value></field>"
    "</x></publish-options>"
)


class ProtocolTestCase(PubSubTestCase):
    async def iq(self, iq_type: str, body: str, requester=ALICE, service=None):
        """The Reply to ``<iq type=...>body</iq>`` on Alice's PEP (or ``service``)."""
        iq = xml(f"<iq type='{iq_type}' id='1'>{body}</iq>")
        [pubsub] = list(iq.elements())
        return await handle_iq(service or self.pep(), requester, iq_type, pubsub)

    async def error(self, iq_type: str, body: str, requester=ALICE, service=None) -> str:
        """The <error/> an IQ gets, serialized."""
        try:
            await self.iq(iq_type, body, requester, service)
        except StanzaError as error:
            return text(error.to_element())
        self.fail("no error")


class PublishTests(ProtocolTestCase):
    async def test_an_omemo_device_list_end_to_end(self):
        request = xml(
            "<iq type='set' id='pub1' from='alice@example.org/phone'>"
            f"{PUBSUB}<publish node='urn:xmpp:omemo:2:devices'><item id='current'>"
            f"<devices xmlns='{ns.OMEMO}'><device id='12345'/></devices></item></publish>"
            f"{OMEMO_OPTIONS}</pubsub></iq>")
        [pubsub] = list(request.elements())
        reply = await handle_iq(self.pep(), ALICE, "set", pubsub)
        self.assertEqual(text(make_iq_result(request, reply.payload)),
                         "<iq type='result' id='pub1' to='alice@example.org/phone'>"
                         f"<pubsub xmlns='{ns.PUBSUB}'><publish node='urn:xmpp:omemo:2:devices'>"
                         "<item id='current'/></publish></pubsub></iq>")
        [notification] = reply.notifications
        self.assertIn(f"<devices xmlns='{ns.OMEMO}'><device id='12345'/></devices>",
                      text(notification.message))
        got = await self.iq("get", f"{PUBSUB}<items node='urn:xmpp:omemo:2:devices'/></pubsub>",
                            requester=CAROL)
        self.assertEqual(text(got.payload),
                         f"<pubsub xmlns='{ns.PUBSUB}'><items node='urn:xmpp:omemo:2:devices'>"
                         f"<item id='current'><devices xmlns='{ns.OMEMO}'><device id='12345'/>"
                         "</devices></item></items></pubsub>")

    async def test_a_generated_id_is_in_the_reply(self):
        reply = await self.iq("set", f"{PUBSUB}<publish node='n'><item>"
                                     f"<x xmlns='urn:example'/></item></publish></pubsub>")
        item_id = reply.payload.firstChildElement().firstChildElement()["id"]
        self.assertEqual(len(item_id), 16)

    async def test_publish_errors(self):
        cases = [
            ("<publish/>", "bad-request", "nodeid-required"),
            ("<publish node='n'><item><a xmlns='urn:a'/><b xmlns='urn:b'/></item></publish>",
             "bad-request", "invalid-payload"),
            ("<publish node='n'><item id='1'><a xmlns='urn:a'/></item><item id='2'>"
             "<a xmlns='urn:a'/></item></publish>", "bad-request", None),
        ]
        for body, condition, app in cases:
            error = await self.error("set", f"{PUBSUB}{body}</pubsub>")
            self.assertIn(f"<{condition} xmlns='{ns.STANZA_ERRORS}'/>", error)
            if app:
                self.assertIn(f"<{app} xmlns='{ns.PUBSUB_ERRORS}'/>", error)

    async def test_precondition_not_met_as_clients_see_it(self):
        await self.iq("set", f"{PUBSUB}<publish node='n'><item id='current'>"
                             "<x xmlns='urn:example'/></item></publish></pubsub>")
        error = await self.error("set", f"{PUBSUB}<publish node='n'><item id='current'>"
                                        f"<x xmlns='urn:example'/></item></publish>"
                                        f"{OMEMO_OPTIONS}</pubsub>")
        self.assertTrue(error.startswith(
            f"<error type='cancel'><conflict xmlns='{ns.STANZA_ERRORS}'/><text xmlns="))
        self.assertTrue(error.endswith(
            f"<precondition-not-met xmlns='{ns.PUBSUB_ERRORS}'/></error>"))

    async def test_retract_with_notify(self):
        await self.iq("set", f"{PUBSUB}<publish node='n'><item id='a'>"
                             "<x xmlns='urn:example'/></item></publish></pubsub>")
        reply = await self.iq("set", f"{PUBSUB}<retract node='n' notify='true'>"
                                     "<item id='a'/></retract></pubsub>")
        self.assertIsNone(reply.payload)
        self.assertIn("<retract id='a'/>", text(reply.notifications[0].message))
        error = await self.error("set", f"{PUBSUB}<retract node='n'><item/></retract></pubsub>")
        self.assertIn("item-required", error)
        error = await self.error("set", f"{PUBSUB}<retract node='n' notify='perhaps'>"
                                        "<item id='a'/></retract></pubsub>")
        self.assertIn("bad-request", error)


class RetrievalTests(ProtocolTestCase):
    async def setUp(self):
        await super().setUp()
        self.service = self.generic()
        for n in range(1, 6):
            await self.service.publish(ALICE, "log", f"i{n}", tune(str(n)))

    async def ids(self, body: str) -> tuple[list[str], str]:
        reply = await self.iq("get", f"{PUBSUB}{body}</pubsub>", BOB, self.service)
        [items] = [each for each in reply.payload.elements() if each.name == "items"]
        rsm = [text(each) for each in reply.payload.elements() if each.name == "set"]
        return [item["id"] for item in items.elements()], "".join(rsm)

    async def test_by_id_max_items_and_rsm(self):
        self.assertEqual(await self.ids("<items node='log'><item id='i2'/><item id='x'/></items>"),
                         (["i2"], ""))
        self.assertEqual(await self.ids("<items node='log' max_items='2'/>"), (["i4", "i5"], ""))
        ids, rsm = await self.ids(f"<items node='log'/><set xmlns='{ns.RSM}'><max>2</max>"
                                  "<after>i2</after></set>")
        self.assertEqual(ids, ["i3", "i4"])
        self.assertEqual(rsm, f"<set xmlns='{ns.RSM}'><first>i3</first><last>i4</last>"
                              "<count>5</count></set>")

    async def test_bad_requests(self):
        for body in ("<items node='log' max_items='0'/>", "<items node='log' max_items='x'/>",
                     f"<items node='log'/><set xmlns='{ns.RSM}'><max>x</max></set>"):
            error = await self.error("get", f"{PUBSUB}{body}</pubsub>", BOB, self.service)
            self.assertIn("bad-request", error)
        error = await self.error("get", f"{PUBSUB}<items/></pubsub>", BOB, self.service)
        self.assertIn("nodeid-required", error)


class SubscriberTests(ProtocolTestCase):
    async def test_subscribe_list_and_unsubscribe(self):
        service = self.generic()
        await service.create(ALICE, "n")
        reply = await self.iq("set", f"{PUBSUB}<subscribe node='n' jid='{BOB.full()}'/></pubsub>",
                              BOB, service)
        subscription = reply.payload.firstChildElement()
        self.assertEqual((subscription.name, subscription["node"], subscription["jid"],
                          subscription["subscription"]), ("subscription", "n", BOB.full(),
                                                          "subscribed"))
        listing = await self.iq("get", f"{PUBSUB}<subscriptions/></pubsub>", BOB, service)
        self.assertEqual(text(listing.payload),
                         f"<pubsub xmlns='{ns.PUBSUB}'><subscriptions><subscription node='n' "
                         f"jid='{BOB.full()}' subid='{subscription['subid']}' "
                         "subscription='subscribed'/></subscriptions></pubsub>")
        affiliations = await self.iq("get", f"{PUBSUB}<affiliations/></pubsub>", ALICE, service)
        self.assertEqual(text(affiliations.payload),
                         f"<pubsub xmlns='{ns.PUBSUB}'><affiliations><affiliation node='n' "
                         "affiliation='owner'/></affiliations></pubsub>")
        reply = await self.iq("set", f"{PUBSUB}<unsubscribe node='n' jid='{BOB.full()}'/>"
                                     "</pubsub>", BOB, service)
        self.assertIsNone(reply.payload)
        error = await self.error("set", f"{PUBSUB}<unsubscribe node='n' jid='{BOB.full()}'/>"
                                        "</pubsub>", BOB, service)
        self.assertIn(f"<not-subscribed xmlns='{ns.PUBSUB_ERRORS}'/>", error)

    async def test_subscribe_errors(self):
        await self.pep().create(ALICE, "n")
        for body, app in (("<subscribe node='n'/>", "jid-required"),
                          ("<subscribe node='n' jid='@@'/>", "invalid-jid")):
            error = await self.error("set", f"{PUBSUB}{body}</pubsub>", BOB)
            self.assertIn(f"<{app} xmlns='{ns.PUBSUB_ERRORS}'/>", error)
        error = await self.error("set", f"{PUBSUB}<subscribe node='n' jid='{BOB.full()}'/>"
                                        "</pubsub>", BOB)
        self.assertIn("<not-authorized", error)
        self.assertIn(f"<presence-subscription-required xmlns='{ns.PUBSUB_ERRORS}'/>", error)
        error = await self.error("set", f"{PUBSUB}<subscribe node='n' jid='{BOB.full()}'/>"
                                        "<options/></pubsub>", BOB)
        self.assertIn(f"<unsupported xmlns='{ns.PUBSUB_ERRORS}' feature='subscription-options'/>",
                      error)


class OwnerTests(ProtocolTestCase):
    async def test_configure_get_and_set(self):
        await self.iq("set", f"{PUBSUB}<create node='n'/><configure><x xmlns='jabber:x:data' "
                             "type='submit'><field var='pubsub#title'><value>Mine</value>"
                             "</field></x></configure></pubsub>")
        reply = await self.iq("get", f"{OWNER}<configure node='n'/></pubsub>")
        configure = reply.payload.firstChildElement()
        self.assertEqual((configure.uri, configure["node"]), (ns.PUBSUB_OWNER, "n"))
        form = parse_form(configure.firstChildElement())
        self.assertEqual((form.type, form.get_text("pubsub#title")), ("form", "Mine"))
        await self.iq("set", f"{OWNER}<configure node='n'><x xmlns='jabber:x:data' "
                             "type='submit'><field var='pubsub#access_model'><value>open</value>"
                             "</field></x></configure></pubsub>")
        node = await self.pep().store.get_node("n")
        self.assertEqual((node.config.access_model, node.config.title), ("open", "Mine"))
        error = await self.error("set", f"{OWNER}<configure node='n'/></pubsub>")
        self.assertIn("bad-request", error)
        error = await self.error("get", f"{OWNER}<configure node='n'/></pubsub>", BOB)
        self.assertIn("<forbidden", error)

    async def test_default_delete_purge(self):
        reply = await self.iq("get", f"{OWNER}<default/></pubsub>")
        form = parse_form(reply.payload.firstChildElement().firstChildElement())
        self.assertEqual(form.get_text("pubsub#access_model"), "presence")
        await self.pep().publish(ALICE, "n", "i", tune("x"))
        reply = await self.iq("set", f"{OWNER}<purge node='n'/></pubsub>")
        self.assertEqual(reply.notifications[0].kind, "purge")
        reply = await self.iq("set", f"{OWNER}<delete node='n'><redirect uri='xmpp:x'/>"
                                     "</delete></pubsub>")
        self.assertIn("<redirect uri='xmpp:x'/>", text(reply.notifications[0].message))

    async def test_affiliations_and_subscriptions(self):
        service = self.generic()
        await service.create(ALICE, "n")
        await self.iq("set", f"{OWNER}<affiliations node='n'><affiliation jid='{BOB.userhost()}' "
                             "affiliation='publisher'/></affiliations></pubsub>", ALICE, service)
        reply = await self.iq("get", f"{OWNER}<affiliations node='n'/></pubsub>", ALICE, service)
        self.assertEqual(text(reply.payload),
                         f"<pubsub xmlns='{ns.PUBSUB_OWNER}'><affiliations node='n'>"
                         "<affiliation jid='alice@example.org' affiliation='owner'/>"
                         "<affiliation jid='bob@example.org' affiliation='publisher'/>"
                         "</affiliations></pubsub>")
        await self.iq("set", f"{OWNER}<subscriptions node='n'><subscription "
                             f"jid='{CAROL.userhost()}' subscription='subscribed'/>"
                             "</subscriptions></pubsub>", ALICE, service)
        reply = await self.iq("get", f"{OWNER}<subscriptions node='n'/></pubsub>", ALICE, service)
        subscription = reply.payload.firstChildElement().firstChildElement()
        self.assertEqual((subscription.hasAttribute("node"), subscription["jid"],
                          subscription["subscription"]),
                         (False, CAROL.userhost(), "subscribed"))
        error = await self.error("set", f"{OWNER}<affiliations node='n'><affiliation "
                                        f"jid='{BOB.userhost()}'/></affiliations></pubsub>",
                                 ALICE, service)
        self.assertIn("bad-request", error)


class RequestShapeTests(ProtocolTestCase):
    async def test_one_action_that_we_offer(self):
        cases = [
            (f"{PUBSUB}</pubsub>", "set", "bad-request"),
            (f"{PUBSUB}<create node='a'/><create node='b'/></pubsub>", "set", "bad-request"),
            (f"{PUBSUB}<frobnicate node='a'/></pubsub>", "set", "feature-not-implemented"),
            (f"{PUBSUB}<publish node='a'/></pubsub>", "get", "feature-not-implemented"),
            (f"{OWNER}<default/></pubsub>", "set", "bad-request"),
            (f"{PUBSUB}<options node='a' jid='{ALICE.full()}'/></pubsub>", "get",
             "feature-not-implemented"),
        ]
        for body, iq_type, condition in cases:
            error = await self.error(iq_type, body)
            self.assertIn(f"<{condition} xmlns='{ns.STANZA_ERRORS}'/>", error)


class ErrorElementTests(ProtocolTestCase):
    def test_the_application_condition_follows_the_text(self):
        error = PubSubError("not-authorized", "presence-subscription-required", "ask first")
        self.assertEqual(text(error.to_element()),
                         f"<error type='auth'><not-authorized xmlns='{ns.STANZA_ERRORS}'/>"
                         f"<text xmlns='{ns.STANZA_ERRORS}'>ask first</text>"
                         f"<presence-subscription-required xmlns='{ns.PUBSUB_ERRORS}'/></error>")
        self.assertEqual(text(unsupported("publish").to_element()),
                         f"<error type='cancel'><feature-not-implemented xmlns="
                         f"'{ns.STANZA_ERRORS}'/><unsupported xmlns='{ns.PUBSUB_ERRORS}' "
                         "feature='publish'/></error>")

    def test_conditions_are_checked(self):
        self.assertRaises(ValueError, PubSubError, "conflict", "precondition-unmet")
        self.assertRaises(ValueError, PubSubError, "conflict", "closed-node", feature="x")
        self.assertRaises(ValueError, PubSubError, "feature-not-implemented", "unsupported")


class DiscoTests(ProtocolTestCase):
    def test_features(self):
        pep, service = features(True), features(False)
        self.assertEqual(pep[0], ns.PUBSUB)
        for feature in ("publish-options", "auto-create", "access-presence", "rsm"):
            self.assertIn(f"{ns.PUBSUB}#{feature}", pep)
        self.assertIn(f"{ns.PUBSUB}#filtered-notifications", pep)
        self.assertNotIn(f"{ns.PUBSUB}#filtered-notifications", service)
        self.assertIn(f"{ns.PUBSUB}#instant-nodes", service)
        self.assertEqual((identity(True).type, identity(False).type), ("pep", "service"))

    async def test_items_and_node_info(self):
        service = self.pep()
        await service.publish(ALICE, "open", "i", tune("x"),
                              options=options(access_model="open", title="Public"))
        await service.publish(ALICE, "private", "i", tune("x"),
                              options=options(access_model="whitelist"))
        items = await node_items(service, CAROL)
        self.assertEqual([(item.jid, item.node, item.name) for item in items],
                         [("alice@example.org", "open", "Public")])
        self.assertEqual(len(await node_items(service, ALICE)), 2)
        info = await node_info(service, CAROL, "open")
        self.assertEqual(info.identities[0].type, "leaf")
        self.assertEqual(info.forms[0].get_text("pubsub#access_model"), "open")
        for name in ("private", "missing"):
            with self.assertRaises(PubSubError) as caught:
                await node_info(service, CAROL, name)
            self.assertEqual(caught.exception.condition, "item-not-found")
