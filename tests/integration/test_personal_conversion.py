"""Bookmarks and avatars across client generations, over real TLS with slixmpp's own
plugins: a XEP-0048 client (bookmarks in XEP-0049 private XML) and a XEP-0402 client (PEP
native bookmarks) see each other's bookmarks; an avatar published with XEP-0084 is the
vCard photo (XEP-0054) and the hash in presence (XEP-0153) a contact sees (XEP-0398)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
from slixmpp.plugins.xep_0004 import Form

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox, befriend

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", "offline",'
           ' "vcard", "avatar_hash", "private", "pep", "bookmarks", "vcard_conversion"]\n')
NATIVE = "urn:xmpp:bookmarks:1"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDw"
                       "AChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_SHA1 = hashlib.sha1(PNG).hexdigest()
PHOTO_BINVAL = "{vcard-temp}vCard/{vcard-temp}PHOTO/{vcard-temp}BINVAL"


@pytest.fixture
def server(tmp_path):
    yield from serve(XmppdProcess(tmp_path, extra=PLUGINS))


def run(scenario, timeout: float = 90.0) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def legacy_client(proc):
    """A XEP-0048 client keeping its bookmarks in private XML."""
    from slixmpp.plugins.xep_0048.stanza import Bookmarks

    client = await login(proc, "alice@localhost/legacy")
    client.register_plugin("xep_0049")
    client.plugin["xep_0049"].register(Bookmarks)
    return client


async def native_client(proc):
    client = await login(proc, "alice@localhost/modern")
    for plugin in ("xep_0030", "xep_0060", "xep_0402"):
        client.register_plugin(plugin)
    return client


def native_options() -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field("FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for name, value in (("persist_items", "true"), ("max_items", "max"),
                        ("send_last_published_item", "never"), ("access_model", "whitelist")):
        form.add_field(f"pubsub#{name}", value=value)
    return form


async def legacy_rooms(client) -> set[str]:
    answer = await client.plugin["xep_0049"].retrieve("bookmarks")
    return {str(c["jid"]) for c in answer["private"]["bookmarks"]["conferences"]}


async def native_rooms(client) -> dict[str, str]:
    answer = await client.plugin["xep_0060"].get_items("alice@localhost", NATIVE)
    return {item["id"]: item["conference"]["name"] for item in answer["pubsub"]["items"]}


def test_legacy_and_native_bookmarks_meet(server):
    async def scenario():
        from slixmpp.plugins.xep_0048.stanza import Bookmarks
        from slixmpp.plugins.xep_0402.stanza import Conference

        legacy = await legacy_client(server)
        modern = await native_client(server)
        info = await modern.plugin["xep_0030"].get_info("alice@localhost")
        features = set(info["disco_info"]["features"])
        assert {NATIVE + "#compat", NATIVE + "#compat-pep",
                "urn:xmpp:bookmarks-conversion:0"} <= features, features

        bookmarks = Bookmarks()
        bookmarks.add_conference("tea@conference.localhost", "alice", name="Tea",
                                 autojoin=True)
        await legacy.plugin["xep_0049"].store(bookmarks)
        assert await native_rooms(modern) == {"tea@conference.localhost": "Tea"}

        conference = Conference()
        conference["name"] = "Cake"
        conference["autojoin"] = True
        conference["nick"] = "alice"
        await modern.plugin["xep_0060"].publish("alice@localhost", NATIVE,
                                                id="cake@conference.localhost",
                                                payload=conference, options=native_options())
        assert await legacy_rooms(legacy) == {"tea@conference.localhost",
                                              "cake@conference.localhost"}
        await modern.plugin["xep_0060"].retract("alice@localhost", NATIVE,
                                                "tea@conference.localhost", notify=True)
        assert await legacy_rooms(legacy) == {"cake@conference.localhost"}
        await logout(legacy)
        await logout(modern)

    run(scenario)


def test_pep_avatar_is_the_vcard_photo_and_presence_hash(server):
    async def scenario():
        await befriend(server, "alice", "bob")
        alice = await login(server, "alice@localhost/phone")
        for plugin in ("xep_0060", "xep_0163", "xep_0084"):
            alice.register_plugin(plugin)
        await alice.plugin["xep_0084"].publish_avatar(PNG)
        await alice.plugin["xep_0084"].publish_avatar_metadata(
            {"id": PNG_SHA1, "type": "image/png", "bytes": len(PNG)})

        bob = await login(server, "bob@localhost/desk")
        bob.register_plugin("xep_0054")
        bob.register_plugin("xep_0153")
        updates = Inbox(bob, "vcard_avatar_update")
        await bob.get_roster()
        bob.send_presence()
        answer = await bob.plugin["xep_0054"].get_vcard("alice@localhost")
        binval = answer.xml.find(PHOTO_BINVAL)
        assert binval is not None, answer
        assert hashlib.sha1(base64.b64decode(binval.text)).hexdigest() == PNG_SHA1
        alice.send_presence(pstatus="here")
        await updates.wait_for(lambda presence: presence["from"].bare == "alice@localhost"
                               and presence["vcard_temp_update"]["photo"] == PNG_SHA1)
        await logout(alice)
        await logout(bob)

    run(scenario)
