"""XEP-0357 push over real TLS with slixmpp: a phone registers an app server, goes away, a
message comes, and the app server (a second local account's client, as a local JID is
reached like any other) gets the summary publish and answers it."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess

PUSH = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"
APP = "app@localhost/pushd"
PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", "push"]\n'
           "[plugins.push]\nmin_interval = 0\n")
ENABLE = (f"<enable xmlns='{PUSH}' jid='{APP}' node='device-1'>"
          f"<x xmlns='{DATA}' type='submit'>"
          "<field var='FORM_TYPE'>"
          "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
          "<field var='secret'><value>s3cr3t</value></field></x></enable>")


@pytest.fixture
def push_server(tmp_path):
    yield from serve(XmppdProcess(tmp_path, extra=PLUGINS), ("alice", "bob", "app"))


def fields(form: ET.Element) -> dict[str, list[str]]:
    return {f.get("var"): [v.text or "" for v in f.findall(f"{{{DATA}}}value")]
            for f in form.findall(f"{{{DATA}}}field")}


async def app_server(proc: XmppdProcess):
    """The app server's client: every pubsub publish it gets is answered with a result and
    put on the returned queue."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    client = await login(proc, APP)
    received: asyncio.Queue = asyncio.Queue()

    def on_publish(iq) -> None:
        received.put_nowait(iq.xml)
        iq.reply(clear=True).send()

    client.register_handler(Callback(
        "push publish", MatchXPath(f"{{jabber:client}}iq/{{{PUBSUB}}}pubsub"), on_publish))
    return client, received


def test_a_message_for_an_absent_account_reaches_its_app_server(push_server):
    async def scenario():
        app, received = await app_server(push_server)
        alice = await login(push_server, "alice@localhost/phone")
        iq = alice.make_iq_set()
        iq.append(ET.fromstring(ENABLE))
        answer = await iq.send(timeout=10)
        assert answer["type"] == "result"
        await logout(alice)

        bob = await login(push_server, "bob@localhost/desk")
        bob.send_message(mto="alice@localhost", mbody="meet at noon", mtype="chat")
        publish_iq = await asyncio.wait_for(received.get(), 10)
        assert (publish_iq.get("from"), publish_iq.get("type")) == ("alice@localhost", "set")
        pubsub = publish_iq.find(f"{{{PUBSUB}}}pubsub")
        publish = pubsub.find(f"{{{PUBSUB}}}publish")
        assert publish.get("node") == "device-1"
        summary = publish.find(f"{{{PUBSUB}}}item/{{{PUSH}}}notification/{{{DATA}}}x")
        assert fields(summary) == {"FORM_TYPE": ["urn:xmpp:push:summary"],
                                   "message-count": ["1"],
                                   "last-message-sender": ["bob@localhost/desk"]}
        assert "meet at noon" not in ET.tostring(publish_iq, encoding="unicode")
        options = pubsub.find(f"{{{PUBSUB}}}publish-options/{{{DATA}}}x")
        assert fields(options)["secret"] == ["s3cr3t"]

        # the message itself is kept offline for alice's return
        alice = await login(push_server, "alice@localhost/phone")
        got: asyncio.Future = asyncio.get_running_loop().create_future()
        alice.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        alice.send_presence()
        message = await asyncio.wait_for(got, 10)
        assert message["body"] == "meet at noon"
        for client in (alice, bob, app):
            await logout(client)

    asyncio.run(scenario())
