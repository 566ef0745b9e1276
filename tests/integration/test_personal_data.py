"""Personal data over real TLS with slixmpp's own plugins: a vCard with a photo (XEP-0054),
its hash in presence added by the server (XEP-0153), private XML (XEP-0049, with the
XEP-0048 bookmarks stanza), and all of it still there after a restart."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox, befriend

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", "offline",'
           ' "vcard", "avatar_hash", "private"]\n')
# A 1x1 PNG: what a client puts in PHOTO/BINVAL, as bytes.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDw"
                       "AChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_SHA1 = hashlib.sha1(PNG).hexdigest()
VCARD = "{vcard-temp}vCard"
PHOTO_BINVAL = f"{VCARD}/{{vcard-temp}}PHOTO/{{vcard-temp}}BINVAL"


@pytest.fixture
def personal(tmp_path):
    yield from serve(XmppdProcess(tmp_path, extra=PLUGINS))


async def alice_online(proc):
    """alice with XEP-0054 and XEP-0049 but not XEP-0153: she never puts a hash in her
    presence herself, so the one bob sees is the server's."""
    from slixmpp.plugins.xep_0048.stanza import Bookmarks

    alice = await login(proc, "alice@localhost/phone")
    alice.register_plugin("xep_0054")
    alice.register_plugin("xep_0049")
    alice.plugin["xep_0049"].register(Bookmarks)
    return alice


async def bob_watching(proc):
    """bob with XEP-0153: his client reports avatar hashes in the presence it receives."""
    bob = await login(proc, "bob@localhost/desk")
    bob.register_plugin("xep_0054")
    bob.register_plugin("xep_0153")
    updates = Inbox(bob, "vcard_avatar_update")
    await bob.get_roster()
    bob.send_presence()
    return bob, updates


def from_alice_with_hash(presence) -> bool:
    return (presence["from"].bare == "alice@localhost"
            and presence["vcard_temp_update"]["photo"] == PNG_SHA1)


async def bob_sees_alices_avatar(alice, bob, updates) -> None:
    alice.send_presence(pstatus="here")
    await updates.wait_for(from_alice_with_hash)
    answer = await bob.plugin["xep_0054"].get_vcard("alice@localhost")
    binval = answer.xml.find(PHOTO_BINVAL)
    assert binval is not None, answer
    assert hashlib.sha1(base64.b64decode(binval.text)).hexdigest() == PNG_SHA1
    assert answer.xml.find(f"{VCARD}/{{vcard-temp}}FN").text == "Alice Liddell"


async def alices_bookmark(alice) -> list[str]:
    answer = await alice.plugin["xep_0049"].retrieve("bookmarks")
    return [str(conference["jid"])
            for conference in answer["private"]["bookmarks"]["conferences"]]


def test_vcard_avatar_hash_and_private_storage_survive_a_restart(personal):
    async def first_run():
        await befriend(personal, "alice", "bob")
        alice = await alice_online(personal)
        vcard = alice.plugin["xep_0054"].make_vcard()
        vcard["FN"] = "Alice Liddell"
        vcard["PHOTO"]["TYPE"] = "image/png"
        vcard["PHOTO"]["BINVAL"] = PNG
        await alice.plugin["xep_0054"].publish_vcard(vcard)

        from slixmpp.plugins.xep_0048.stanza import Bookmarks
        bookmarks = Bookmarks()
        bookmarks.add_conference("tea@conference.localhost", "alice", autojoin=True)
        await alice.plugin["xep_0049"].store(bookmarks)
        assert await alices_bookmark(alice) == ["tea@conference.localhost"]

        bob, updates = await bob_watching(personal)
        await bob_sees_alices_avatar(alice, bob, updates)
        await logout(alice)
        await logout(bob)

    async def after_restart():
        alice = await alice_online(personal)
        bob, updates = await bob_watching(personal)
        await bob_sees_alices_avatar(alice, bob, updates)
        assert await alices_bookmark(alice) == ["tea@conference.localhost"]
        await logout(alice)
        await logout(bob)

    asyncio.run(first_run())
    assert personal.stop() == 0, personal.log()
    personal.start()
    asyncio.run(after_restart())
