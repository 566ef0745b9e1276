"""XEP-0012 last activity and XEP-0202 entity time with slixmpp's own plugins (xep_0012,
xep_0202) against a real server with the default plugins: the server's uptime and clock, a
contact's last logout with its status, and forbidden for someone outside the roster."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from slixmpp.exceptions import IqError

from tests.integration.conftest import PASSWORD, login, logout
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import befriend

USERS = ("alice", "bob", "mallory")


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path)
    for user in USERS:
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def test_uptime_time_and_a_contacts_last_logout(server):
    async def scenario():
        await befriend(server, "alice", "bob")
        alice = await login(server, "alice@localhost/phone")
        alice.send_presence()
        await asyncio.sleep(0.3)
        alice.send_presence(ptype="unavailable", pstatus="off to bed")
        await asyncio.sleep(0.3)
        await logout(alice)

        bob = await login(server, "bob@localhost/desk")
        bob.register_plugin("xep_0012")
        bob.register_plugin("xep_0202")
        uptime = await bob.plugin["xep_0012"].get_last_activity("localhost")
        assert uptime["last_activity"]["seconds"] >= 0
        last = await bob.plugin["xep_0012"].get_last_activity("alice@localhost")
        assert last["last_activity"]["status"] == "off to bed"
        assert 0 <= last["last_activity"]["seconds"] < 60
        answer = await bob.plugin["xep_0202"].get_entity_time("localhost")
        # slixmpp's get_utc() appends a second 'Z' to the text XEP-0202 §3 says ends in 'Z':
        # the text itself is read
        text = answer["entity_time"].xml.find("{urn:xmpp:time}utc").text
        assert text.endswith("Z") and answer["entity_time"].xml.find("{urn:xmpp:time}tzo").text \
            == "+00:00"
        utc = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        now = datetime.datetime.now(datetime.UTC)
        assert abs((now - utc).total_seconds()) < 60
        await logout(bob)

        mallory = await login(server, "mallory@localhost/lair")
        mallory.register_plugin("xep_0012")
        with pytest.raises(IqError) as caught:
            await mallory.plugin["xep_0012"].get_last_activity("alice@localhost")
        assert caught.value.condition == "forbidden"
        await logout(mallory)

    asyncio.run(scenario())
