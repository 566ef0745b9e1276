"""XEP-0153 on the server's side: the account's vCard photo hash goes into its available
presence, unless the client already said something about its photo."""

from __future__ import annotations

import hashlib

from twisted.words.xish import domish

from tests.personal_case import PNG_SHA1, PersonalCase, photo_xml, vcard_xml
from xmppd import ns
from xmppd.interfaces import IVCards
from xmppd.jid import parse_jid
from xmppd.plugins.avatar_hash import avatar_hash
from xmppd.stanza import Stanza

ALICE = parse_jid("alice@localhost")


def photos(presence: domish.Element) -> list[str]:
    """The text of every <photo/> in the presence's update elements ('' when empty)."""
    return [str(photo) if photo.children else ""
            for update in presence.elements(ns.VCARD_UPDATE, "x")
            for photo in update.elements(ns.VCARD_UPDATE, "photo")]


def updates(presence: domish.Element) -> int:
    return len(list(presence.elements(ns.VCARD_UPDATE, "x")))


class AvatarHashTests(PersonalCase):
    async def send_presence(self, harness, xml: str) -> domish.Element:
        """Send available presence; return it as it came back (the server's echo)."""
        harness.feed(xml)
        return await harness.wait_for_element("presence")

    async def test_the_hash_is_added_when_the_vcard_has_a_photo(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        presence = await self.send_presence(alice, "<presence><show>away</show></presence>")
        self.assertEqual((updates(presence), photos(presence)), (1, [PNG_SHA1]))

    async def test_others_see_it_and_a_new_photo_changes_it(self):
        alice = await self.client("alice", "phone")
        bob = await self.client("bob", "desk", available=True)
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        alice.feed("<presence to='bob@localhost/desk'/>")  # directed: §4.1 rule 1 too
        directed = await bob.wait_for_element("presence")
        self.assertEqual(photos(directed), [PNG_SHA1])
        await self.ask(alice, "set", vcard_xml(photo_xml("AAAA")))
        alice.feed("<presence to='bob@localhost/desk'/>")
        directed = await bob.wait_for_element("presence")
        self.assertEqual(photos(directed), [hashlib.sha1(b"\0\0\0").hexdigest()])

    async def test_nothing_added_without_a_photo(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml("<FN>Alice</FN>"))
        presence = await self.send_presence(alice, "<presence/>")
        self.assertEqual(updates(presence), 0)

    async def test_what_the_client_said_about_its_photo_wins(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        for photo in ("", "0123456789abcdef0123456789abcdef01234567"):
            presence = await self.send_presence(
                alice, f"<presence><x xmlns='vcard-temp:x:update'><photo>{photo}</photo></x>"
                       "</presence>")
            self.assertEqual((updates(presence), photos(presence)), (1, [photo]))

    async def test_not_ready_is_filled_in_from_the_stored_vcard(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        presence = await self.send_presence(
            alice, "<presence><x xmlns='vcard-temp:x:update'/></presence>")
        self.assertEqual((updates(presence), photos(presence)), (1, [PNG_SHA1]))

    async def test_the_hash_survives_in_storage_not_only_in_memory(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        self.fixture.registry.unload()  # the plugins' memory goes; the database stays
        await self.fixture.registry.load()
        presence = await self.send_presence(alice, "<presence/>")
        self.assertEqual(photos(presence), [PNG_SHA1])

    async def test_a_hash_in_memory_adds_no_wait_to_presence(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", vcard_xml(photo_xml()))
        await self.server.query(IVCards).photo_hash(ALICE)
        element = domish.Element((ns.CLIENT, "presence"))
        stanza = Stanza(element, parse_jid("alice@localhost/phone"), None)
        self.assertIsNone(avatar_hash.on_presence(stanza, alice.stream.session))  # go on now
        self.assertEqual(photos(element), [PNG_SHA1])
