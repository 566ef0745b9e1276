"""XEP-0398 on a real server with real SQLite: a XEP-0084 avatar becomes the vCard PHOTO
(and so the XEP-0153 hash in presence), a vCard PHOTO becomes the XEP-0084 avatar, neither
direction wakes the other, and the feature is advertised on the account."""

from __future__ import annotations

import base64

from tests.personal_case import (
    PNG_BASE64,
    PNG_SHA1,
    PersonalCase,
    error_condition,
    photo_xml,
    vcard_xml,
)
from tests.unit.test_bookmarks import items_get, items_of
from xmppd import ns

PNG_BYTES = base64.b64decode("".join(PNG_BASE64.split()))


def avatar_data(item_id: str = PNG_SHA1, data: str = PNG_BASE64) -> str:
    return (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.AVATAR_DATA}'>"
            f"<item id='{item_id}'><data xmlns='{ns.AVATAR_DATA}'>{data}</data></item>"
            f"</publish></pubsub>")


def avatar_metadata(infos: str | None = None) -> str:
    if infos is None:
        infos = (f"<info url='https://example.org/a.png' id='elsewhere' bytes='9' "
                 f"type='image/png'/><info id='{PNG_SHA1}' bytes='{len(PNG_BYTES)}' "
                 f"type='image/png'/>")
    return (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.AVATAR_METADATA}'>"
            f"<item id='{PNG_SHA1}'><metadata xmlns='{ns.AVATAR_METADATA}'>{infos}"
            f"</metadata></item></publish></pubsub>")


VCARD_GET = "<vCard xmlns='vcard-temp'/>"


class ConversionCase(PersonalCase):
    enabled = ("vcard", "avatar_hash", "private", "pep", "vcard_conversion")

    async def vcard_photo(self, harness) -> tuple[str | None, str | None]:
        answer = await self.ask(harness, "get", VCARD_GET)
        (vcard,) = answer.elements(ns.VCARD, "vCard")
        photo = next(vcard.elements(ns.VCARD, "PHOTO"), None)
        if photo is None:
            return None, None
        (kind,) = photo.elements(ns.VCARD, "TYPE")
        (binval,) = photo.elements(ns.VCARD, "BINVAL")
        return str(kind), "".join(str(binval).split())


class PepToVCardTest(ConversionCase):
    async def test_published_avatar_becomes_the_photo_and_the_presence_hash(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        self.assertIsNone(error_condition(await self.ask(alice, "set", avatar_data())))
        self.assertIsNone(error_condition(await self.ask(alice, "set", avatar_metadata())))
        self.assertEqual(await self.vcard_photo(alice),
                         ("image/png", "".join(PNG_BASE64.split())))
        answer = await self.ask(alice, "get", VCARD_GET)
        self.assertIn("<FN>Alice</FN>", answer.toXml())  # the rest of the vCard is kept
        alice.feed("<presence/>")
        presence = await alice.wait_for_element("presence")
        self.assertIn(PNG_SHA1, presence.toXml())

    async def test_data_that_does_not_match_its_id_is_not_copied(self):
        alice = await self.client("alice", "phone")
        other = base64.b64encode(b"not the png").decode()
        await self.ask(alice, "set", avatar_data(data=other))
        await self.ask(alice, "set", avatar_metadata())
        self.assertEqual(await self.vcard_photo(alice), (None, None))

    async def test_metadata_without_info_removes_the_photo(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>" + photo_xml()))
        await self.ask(alice, "set", avatar_metadata(infos=""))
        self.assertEqual(await self.vcard_photo(alice), (None, None))


class VCardToPepTest(ConversionCase):
    async def test_vcard_photo_is_published_as_data_then_metadata(self):
        alice = await self.client("alice", "phone")
        self.assertIsNone(error_condition(
            await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>" + photo_xml()))))
        data = items_of(await self.ask(alice, "get", items_get(ns.AVATAR_DATA)))
        self.assertEqual(list(data), [PNG_SHA1])
        self.assertEqual("".join(str(data[PNG_SHA1]).split()), "".join(PNG_BASE64.split()))
        metadata = items_of(await self.ask(alice, "get", items_get(ns.AVATAR_METADATA)))
        (info,) = metadata[PNG_SHA1].elements(ns.AVATAR_METADATA, "info")
        self.assertEqual((info["id"], info["type"], info["bytes"]),
                         (PNG_SHA1, "image/png", str(len(PNG_BYTES))))

    async def test_a_vcard_without_photo_publishes_nothing(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        answer = await self.ask(alice, "get", items_get(ns.AVATAR_METADATA))
        self.assertEqual(error_condition(answer), "item-not-found")

    async def test_advertised_on_the_account(self):
        alice = await self.client("alice", "phone")
        answer = await self.ask(alice, "get", f"<query xmlns='{ns.DISCO_INFO}'/>",
                                to="alice@localhost")
        self.assertIn(ns.PEP_VCARD_CONVERSION, answer.toXml())


class VCard4Test(ConversionCase):
    async def test_vcard4_over_pep_is_plain_pep(self):
        """XEP-0292 §3: one item 'current' on urn:xmpp:vcard4; nothing to add."""
        alice = await self.client("alice", "phone")
        publish = (f"<pubsub xmlns='{ns.PUBSUB}'><publish node='{ns.VCARD4}'>"
                   f"<item id='current'><vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'>"
                   f"<fn><text>Alice</text></fn></vcard></item></publish></pubsub>")
        self.assertIsNone(error_condition(await self.ask(alice, "set", publish)))
        items = items_of(await self.ask(alice, "get", items_get(ns.VCARD4)))
        self.assertEqual(items["current"].name, "vcard")
