"""A real xmppd (twistd) on PostgreSQL (tests.storage_engines' server, a database of its own):
accounts made by xmppdctl, a slixmpp client's roster, offline messages kept across a restart
and across a SIGKILL, everything in PostgreSQL and nothing in an SQLite file; the dsn's
password never in the log. And ``xmppdctl migrate-storage`` moving a server's SQLite database
to PostgreSQL: refused while the server runs or into a database with data, then the server
started on PostgreSQL has the accounts, the roster and the offline message."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.integration import test_mam
from tests.integration.conftest import PASSWORD, assert_log_for_admins, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import (
    IM_PLUGINS,
    body_is,
    online,
    settle,
    sigkill_after_accepted_messages,
)
from tests.storage_engines import postgresql

SECRET = "pg-password-never-logged"


@pytest.fixture
def on_postgresql(tmp_path):
    dsn = postgresql().fresh_database()
    proc = XmppdProcess(tmp_path, extra=postgresql_config(dsn) + IM_PLUGINS)
    proc.dsn = dsn
    yield from serve(proc, ("alice", "bob"))
    assert SECRET not in proc.log()
    assert not list(tmp_path.rglob("*.sqlite*")), "an SQLite file was made"


@pytest.fixture
def archive_on_postgresql(tmp_path):
    dsn = postgresql().fresh_database()
    yield from serve(XmppdProcess(tmp_path, extra=postgresql_config(dsn) + test_mam.PLUGINS))
    # Each message in its sender's and its recipient's archive (and the scenario's few more).
    [(archived,)] = rows(dsn, "SELECT SUM(entries) FROM store_archive_pack")
    assert archived >= 4 * test_mam.EACH_WAY
    assert not list(tmp_path.rglob("*.sqlite*")), "an SQLite file was made"


def postgresql_config(dsn: str) -> str:
    return f'[storage]\nbackend = "postgresql"\ndsn = "{dsn} password={SECRET}"\n'


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
    backup = server.ctl("backup", str(server.directory / "copy.sqlite"))  # pg_dump's job
    assert backup.returncode == 1
    assert "cannot make backups (use its own tools)" in backup.stderr, backup.stderr
    assert server.stop() == 0
    server.start()
    asyncio.run(receive())
    assert rows(server.dsn, "SELECT COUNT(*) FROM offline_messages") == [(0,)]


def test_sigkill_loses_no_accepted_message(on_postgresql):
    """What the server accepted (a later ping answered on the same stream) was committed."""
    sigkill_after_accepted_messages(on_postgresql, 30)


def test_message_archive_on_postgresql(archive_on_postgresql):
    """test_mam's scenario (hundreds of messages paged both ways, a forged id stripped, a
    restart) on PostgreSQL: the message archives' batched writes and queries."""
    test_mam.test_hundreds_of_messages_paged_both_ways_forged_id_stripped_after_restart(
        archive_on_postgresql)


def test_migrate_storage_moves_a_server_from_sqlite_to_postgresql(tmp_path):
    on_sqlite = XmppdProcess(tmp_path / "sqlite", extra=IM_PLUGINS)
    dsn = postgresql().fresh_database()
    on_pg = XmppdProcess(tmp_path / "pg", extra=postgresql_config(dsn) + IM_PLUGINS,
                         certificate=(on_sqlite.cert, on_sqlite.key))

    def migrate(source, destination):
        return on_sqlite.ctl("migrate-storage", "--from", str(source.config),
                             "--to", str(destination.config))

    for user in ("alice", "bob"):
        assert on_sqlite.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    on_sqlite.start()

    async def before():
        alice, _, _ = await online(on_sqlite, "alice@localhost/phone")
        await alice.update_roster("bob@localhost", name="Bob", groups=["Friends"])
        alice.send_message(mto="bob@localhost", mbody="kept while moving", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        alice.disconnect()
        await asyncio.wait_for(alice.disconnected, 10)

    asyncio.run(before())
    running = migrate(on_sqlite, on_pg)
    assert running.returncode == 1
    assert "xmppd is running on the source" in running.stderr, running.stderr
    assert on_sqlite.stop() == 0

    moved = migrate(on_sqlite, on_pg)
    assert moved.returncode == 0, moved.stderr
    assert "offline_messages: 1 rows" in moved.stdout
    assert "counts verified" in moved.stdout
    assert SECRET not in moved.stdout + moved.stderr
    again = migrate(on_sqlite, on_pg)
    assert again.returncode == 1
    assert "already holds data" in again.stderr
    assert rows(dsn, "SELECT localpart FROM users ORDER BY localpart") == [("alice",), ("bob",)]

    on_pg.start()
    busy = migrate(on_sqlite, on_pg)
    assert busy.returncode == 1
    assert "xmppd is running on the destination" in busy.stderr, busy.stderr

    async def after():
        alice, _, _ = await online(on_pg, "alice@localhost/laptop")
        assert alice.client_roster["bob@localhost"]["name"] == "Bob"
        bob, bob_msgs, _ = await online(on_pg, "bob@localhost/desk")
        await bob_msgs.wait_for(body_is("kept while moving"))
        for client in (alice, bob):
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 10)

    asyncio.run(after())
    assert on_pg.stop() == 0
    assert "Traceback" not in on_pg.log(), on_pg.log()
    assert_log_for_admins(on_pg.log())
