"""xmppdctl backup against a real running server under traffic: the running server makes the
copy through its control socket while a slixmpp client keeps sending messages that are written
to the database; the copy is one consistent, owner-only SQLite file that passes its integrity
check and holds the accounts, and a second server started on it lets the users log in and
hands out the offline messages it held. With the server stopped xmppdctl makes the copy
itself; an existing file is kept unless --force."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat

import pytest

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_ctl_live import ctl, wait_for_control_socket

MAX_MESSAGES = 5000  # carol's offline store takes them all
OFFLINE = f"[plugins.offline]\nmax_messages = {MAX_MESSAGES}\n"


@pytest.fixture
def busy_server(tmp_path):
    yield from serve(XmppdProcess(tmp_path / "live", extra=OFFLINE),
                     users=("alice", "bob", "carol"))


def offline_count(path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM offline_messages").fetchone()[0]


def test_backup_of_a_running_server_under_traffic(busy_server, tmp_path):
    wait_for_control_socket(busy_server)
    copy = tmp_path / "copies" / "xmppd-backup.sqlite"
    copy.parent.mkdir()

    async def scenario() -> int:
        alice = await login(busy_server, "alice@localhost/desk")
        sent = 0
        done = asyncio.Event()

        async def chatter() -> None:
            nonlocal sent
            # carol is offline: each message is a database write, until the backup is made
            while not done.is_set() and sent < MAX_MESSAGES - 50:
                alice.send_message(mto="carol@localhost", mbody=f"message {sent}",
                                   mtype="chat")
                sent += 1
                await asyncio.sleep(0.01)
            for _ in range(50):  # and some more after it
                alice.send_message(mto="carol@localhost", mbody=f"message {sent}",
                                   mtype="chat")
                sent += 1
            await alice.plugin["xep_0199"].ping(timeout=20)  # all of them handled

        talking = asyncio.ensure_future(chatter())
        await asyncio.sleep(0.3)  # the writes are under way
        made = await ctl(busy_server, "backup", str(copy))
        done.set()
        await talking
        await logout(alice)
        assert made.returncode == 0, made.stderr + busy_server.log()[-3000:]
        assert made.stdout.startswith(f"wrote {copy}: ")
        assert "3 accounts, integrity check ok" in made.stdout
        return sent

    messages = asyncio.run(scenario())
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # it holds SCRAM keys
    assert not list(copy.parent.glob(".*partial"))  # no temporary file left
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        users = sorted(row[0] for row in db.execute("SELECT localpart FROM users"))
        assert users == ["alice", "bob", "carol"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    held = offline_count(copy)
    assert 0 < held < messages  # a state in the middle of the traffic, as it was committed

    again = busy_server.ctl("backup", str(copy))
    assert again.returncode == 1
    assert "exists: choose another name, or --force" in again.stderr
    assert offline_count(copy) == held  # untouched
    forced = busy_server.ctl("backup", "--force", str(copy))
    assert forced.returncode == 0, forced.stderr
    assert offline_count(copy) == messages  # every message was written by now

    # A second server on the (forced) copy: the users log in with their passwords, carol gets
    # the messages the copy holds, every one of them.
    restored = XmppdProcess(tmp_path / "restored", extra=OFFLINE)
    (restored.directory / "data").mkdir()
    shutil.copy(copy, restored.directory / "data" / "xmppd.sqlite")
    restored.start()
    try:
        async def on_the_copy() -> list[str]:
            bob = await login(restored, "bob@localhost/phone")
            await logout(bob)
            carol = await login(restored, "carol@localhost/phone")
            bodies: list[str] = []
            carol.add_event_handler("message", lambda m: bodies.append(str(m["body"])))
            carol.send_presence()
            for _ in range(200):
                if len(bodies) == messages:
                    break
                await asyncio.sleep(0.1)
            await logout(carol)
            return bodies

        bodies = asyncio.run(on_the_copy())
        assert bodies == [f"message {n}" for n in range(messages)]
    finally:
        assert restored.stop() == 0, restored.log()


def test_backup_with_the_server_stopped(tmp_path):
    proc = XmppdProcess(tmp_path / "stopped")
    missing = proc.ctl("backup", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 1
    assert "there is no database at" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()
    assert proc.ctl("adduser", "dave@localhost", "pw-of-dave").returncode == 0
    made = proc.ctl("backup", str(tmp_path / "offline.sqlite"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.endswith("1 account, integrity check ok\n")
    with sqlite3.connect(tmp_path / "offline.sqlite") as db:
        assert db.execute("SELECT localpart FROM users").fetchall() == [("dave",)]
    directory = proc.ctl("backup", str(tmp_path))
    assert directory.returncode == 1 and "is a directory" in directory.stderr


def test_export_from_a_running_server_into_another(tmp_path):
    """xmppdctl export beside the running server, xmppdctl import into a new one (refused
    while that one runs), and the user finds roster and vCard there with the same password."""
    from tests.interop.moving_in import (
        CONTACT_NAME,
        GROUP,
        VCARD_NAME,
        give_data,
        own_vcard,
        roster_of,
    )

    old = XmppdProcess(tmp_path / "old")
    export = tmp_path / "export.xml"
    for _ in serve(old):
        async def give() -> None:
            alice = await login(old, "alice@localhost/desk")
            alice.register_plugin("xep_0054")
            await give_data(alice, "bob@localhost")
            await logout(alice)

        asyncio.run(give())
        made = old.ctl("export", str(export))
        assert (made.returncode, made.stdout) == (0, f"wrote {export}: 2 accounts\n"), made.stderr
        assert stat.S_IMODE(export.stat().st_mode) == 0o600
        assert old.ctl("export", str(export)).returncode == 1  # not overwritten

    new = XmppdProcess(tmp_path / "new")
    assert new.ctl("adduser", "zed@localhost", "pw-of-zed").returncode == 0
    new.start()
    try:
        refused = new.ctl("import", str(export))
        assert refused.returncode == 1 and "xmppd is running: stop it" in refused.stderr
    finally:
        assert new.stop() == 0
    imported = new.ctl("import", str(export))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.endswith("imported 2 accounts, skipped 0\n")
    new.start()
    try:
        async def find() -> None:
            alice = await login(new, "alice@localhost/desk")  # SCRAM-SHA-256 keys came along
            alice.register_plugin("xep_0054")
            assert await roster_of(alice) == {
                "bob@localhost": (CONTACT_NAME, [GROUP], "none", "subscribe")}
            assert await own_vcard(alice) == VCARD_NAME
            await logout(alice)

        asyncio.run(find())
    finally:
        assert new.stop() == 0, new.log()
