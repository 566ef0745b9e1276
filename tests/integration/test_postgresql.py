"""A real xmppd (twistd) on PostgreSQL (tests.storage_engines' server, a database of its own):
accounts made by xmppdctl, a slixmpp client's roster, offline messages kept across a restart
and across a SIGKILL, everything in PostgreSQL and nothing in an SQLite file; the dsn's
password never in the log."""

from __future__ import annotations

import asyncio
import signal

import psycopg
import pytest

from tests.integration.conftest import serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import IM_PLUGINS, body_is, online, settle
from tests.storage_engines import postgresql

SECRET = "pg-password-never-logged"


@pytest.fixture
def on_postgresql(tmp_path):
    dsn = postgresql().fresh_database()
    storage = f'[storage]\nbackend = "postgresql"\ndsn = "{dsn} password={SECRET}"\n'
    proc = XmppdProcess(tmp_path, extra=storage + IM_PLUGINS)
    proc.dsn = dsn
    yield from serve(proc, ("alice", "bob"))
    assert SECRET not in proc.log()
    assert not list(tmp_path.rglob("*.sqlite*")), "an SQLite file was made"


def rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as connection:
        return connection.execute(query).fetchall()


def test_roster_and_offline_messages_across_a_restart(on_postgresql):
    server = on_postgresql
    assert "storage postgresql://xmppd_test@127.0.0.1:" in server.log()
    assert rows(server.dsn, "SELECT localpart FROM users ORDER BY localpart") == [
        ("alice",), ("bob",)]

    async def send():
        alice, _, _ = await online(server, "alice@localhost/phone")
        await alice.update_roster("bob@localhost", name="Bob", groups=["Friends", "Work"])
        for n in range(3):
            alice.send_message(mto="bob@localhost", mbody=f"offline {n}", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        alice.disconnect()
        await asyncio.wait_for(alice.disconnected, 10)

    async def receive():
        alice, _, _ = await online(server, "alice@localhost/laptop")
        item = alice.client_roster["bob@localhost"]
        assert (item["name"], sorted(item["groups"])) == ("Bob", ["Friends", "Work"])
        bob, bob_msgs, _ = await online(server, "bob@localhost/desk")
        for n in range(3):
            message = await bob_msgs.wait_for(body_is(f"offline {n}"))
            assert str(message["from"]) == "alice@localhost/phone"
            assert message["delay"]["stamp"] is not None
        order = [m["body"] for m in bob_msgs.items if m["body"].startswith("offline")]
        assert order == ["offline 0", "offline 1", "offline 2"]
        bob.disconnect()
        await asyncio.wait_for(bob.disconnected, 10)
        bob, bob_msgs, _ = await online(server, "bob@localhost/desk")  # delivered once
        await settle(1)
        assert not bob_msgs.matching(lambda m: m["body"].startswith("offline"))
        for client in (alice, bob):
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 10)

    asyncio.run(send())
    assert rows(server.dsn, "SELECT COUNT(*) FROM offline_messages") == [(3,)]
    assert server.stop() == 0
    server.start()
    asyncio.run(receive())
    assert rows(server.dsn, "SELECT COUNT(*) FROM offline_messages") == [(0,)]


def test_sigkill_loses_no_accepted_message(on_postgresql):
    """What the server accepted (a later ping answered on the same stream) was committed."""
    server, count = on_postgresql, 30

    async def send():
        alice, _, _ = await online(server, "alice@localhost/phone")
        for n in range(count):
            alice.send_message(mto="bob@localhost", mbody=f"durable {n}", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        server.stop(signal.SIGKILL)

    async def receive():
        bob, bob_msgs, _ = await online(server, "bob@localhost/desk")
        for n in range(count):
            await bob_msgs.wait_for(body_is(f"durable {n}"))
        bob.disconnect()
        await asyncio.wait_for(bob.disconnected, 10)

    asyncio.run(send())
    server.start()
    asyncio.run(receive())
