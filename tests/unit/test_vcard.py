"""XEP-0054 vcard-temp on a real server with real SQLite: own vCard get/set, anyone's vCard
at the account's bare JID, forbidden sets, the size limit, disco, and deletion with the
account."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.personal_case import (
    PNG_BASE64,
    PNG_SHA1,
    PersonalCase,
    error_condition,
    photo_xml,
    vcard_xml,
)
from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IVCards
from xmppd.jid import parse_jid
from xmppd.personal.vcards import photo_hash
from xmppd.registry import PluginError, PluginRegistry
from xmppd.xml.stored import stanza_from_text

ALICE = parse_jid("alice@localhost")


def vcard_of(answer: domish.Element) -> domish.Element:
    (vcard,) = answer.elements(ns.VCARD, "vCard")
    return vcard


def names(vcard: domish.Element) -> list[str]:
    return [child.name for child in vcard.elements()]


class OwnVCardTests(PersonalCase):
    async def test_none_yet_is_an_empty_vcard(self):
        alice = await self.client("alice", "phone")
        answer = await self.ask(alice, "get", vcard_xml(""))
        self.assertEqual((answer["type"], names(vcard_of(answer))), ("result", []))

    async def test_set_then_get_without_to_and_at_own_bare_jid(self):
        alice = await self.client("alice", "phone")
        answer = await self.ask(alice, "set", vcard_xml("<FN>Alice</FN><NICKNAME>al</NICKNAME>"))
        self.assertEqual(answer["type"], "result")
        for to in (None, "alice@localhost"):
            vcard = vcard_of(await self.ask(alice, "get", vcard_xml(""), to=to))
            self.assertEqual(names(vcard), ["FN", "NICKNAME"])
            self.assertEqual(str(next(vcard.elements(ns.VCARD, "FN"))), "Alice")

    async def test_a_new_set_replaces_and_an_empty_one_removes(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        await self.ask(alice, "set", vcard_xml("<NICKNAME>al</NICKNAME>"))
        self.assertEqual(names(vcard_of(await self.ask(alice, "get", vcard_xml("")))),
                         ["NICKNAME"])
        await self.ask(alice, "set", vcard_xml(""))
        self.assertIsNone(await self.server.storage.open_store("vcard", "keyval")
                          .get("alice@localhost"))
        self.assertEqual(names(vcard_of(await self.ask(alice, "get", vcard_xml("")))), [])

    async def test_a_photo_that_is_not_base64_is_refused(self):
        alice = await self.client("alice", "phone")
        answer = await self.ask(alice, "set", vcard_xml(photo_xml("not base64!")))
        self.assertEqual(error_condition(answer), "bad-request")

    async def test_the_vcard_goes_with_the_account(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        vcards = self.server.query(IVCards)
        self.assertEqual(await vcards.photo_hash(ALICE), PNG_SHA1)
        await self.server.storage.users.delete_user("alice", "localhost")
        self.server.emit(events.USER_DELETED, ALICE)
        self.assertIsNone(await vcards.get(ALICE))
        self.assertIsNone(await vcards.photo_hash(ALICE))


class OtherAccountTests(PersonalCase):
    async def test_anyone_reads_a_vcard_at_the_bare_jid(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        bob = await self.client("bob", "desk")
        answer = await self.ask(bob, "get", vcard_xml(""), to="alice@localhost")
        self.assertEqual(answer["from"], "alice@localhost")
        self.assertEqual(names(vcard_of(answer)), ["FN"])
        self.assertEqual(alice.elements(), [])  # answered by the server, not a resource

    async def test_no_vcard_and_no_account_answer_alike(self):
        bob = await self.client("bob", "desk")
        for to in ("alice@localhost", "nobody@localhost"):
            answer = await self.ask(bob, "get", vcard_xml(""), to=to)
            self.assertEqual(error_condition(answer), "service-unavailable")

    async def test_setting_someone_elses_vcard_is_forbidden(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        bob = await self.client("bob", "desk")
        answer = await self.ask(bob, "set", vcard_xml("<FN>Bob was here</FN>"),
                                to="alice@localhost")
        self.assertEqual(error_condition(answer), "forbidden")
        answer = await self.ask(bob, "get", vcard_xml(""), to="alice@localhost")
        self.assertEqual(str(next(vcard_of(answer).elements(ns.VCARD, "FN"))), "Alice")


class SizeLimitTests(PersonalCase):
    sections = {"vcard": {"max_size": 1024}}

    async def test_a_vcard_over_max_size_is_not_acceptable_and_not_stored(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        answer = await self.ask(alice, "set", vcard_xml(f"<DESC>{'x' * 1024}</DESC>"))
        self.assertEqual(error_condition(answer), "not-acceptable")
        self.assertEqual(names(vcard_of(await self.ask(alice, "get", vcard_xml("")))), ["FN"])
        fits = vcard_xml(f"<DESC>{'x' * 900}</DESC>")
        self.assertEqual((await self.ask(alice, "set", fits))["type"], "result")


class DiscoTests(PersonalCase):
    async def test_vcard_temp_advertised_on_the_host_and_the_account(self):
        alice = await self.client("alice", "phone")
        for to in ("localhost", "alice@localhost"):
            answer = await self.ask(
                alice, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=to)
            features = {feature["var"] for feature in next(answer.elements()).elements()
                        if feature.name == "feature"}
            self.assertLessEqual({ns.VCARD, ns.PRIVATE}, features, to)


class ConfigTests(PersonalCase):
    enabled = ()

    def test_options_are_checked_and_unknown_keys_refused(self):
        for plugin, section, word in (
                ("vcard", {"max_size": 0}, "max_size"), ("vcard", {"max_size": "big"}, "max_size"),
                ("vcard", {"maxsize": 1}, "maxsize"), ("private", {"max_size": -1}, "max_size"),
                ("avatar_hash", {"size": 1}, "size")):
            registry = PluginRegistry(self.server, ("vcard", plugin), {plugin: section})
            failure = self.failureResultOf(registry.load(), PluginError)
            self.assertIn(f"[plugins.{plugin}] {word}", str(failure.value))


class PhotoHashTests(SynchronousTestCase):
    def vcard(self, inner: str) -> domish.Element:
        return stanza_from_text(vcard_xml(inner))

    def test_sha1_of_the_image_bytes_whitespace_ignored(self):
        self.assertEqual(photo_hash(self.vcard(photo_xml())), PNG_SHA1)
        spaced = " \n".join(PNG_BASE64[i:i + 10] for i in range(0, len(PNG_BASE64), 10))
        self.assertEqual(photo_hash(self.vcard(photo_xml(spaced))), PNG_SHA1)

    def test_no_binval_no_hash(self):
        for inner in ("<FN>x</FN>", "<PHOTO><EXTVAL>https://example.org/a.png</EXTVAL></PHOTO>",
                      photo_xml("")):
            self.assertIsNone(photo_hash(self.vcard(inner)), inner)

    def test_bad_base64_is_bad_request(self):
        with self.assertRaises(StanzaError) as raised:
            photo_hash(self.vcard(photo_xml("@@@@")))
        self.assertEqual(raised.exception.condition, "bad-request")
