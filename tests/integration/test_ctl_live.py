"""xmppdctl against a real running server, through its control socket: sessions, kick, deluser
that ends the account's sessions, s2s with federation off; and with the server stopped, the
commands that need it say so while the account commands still work on the database."""

from __future__ import annotations

import asyncio
import stat
import time

import pytest

from tests.integration.conftest import PASSWORD, LoginFailed, login
from tests.integration.serverproc import XmppdProcess


def control_socket(proc: XmppdProcess):
    return proc.directory / "data" / "control.sock"


def wait_for_control_socket(proc: XmppdProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not control_socket(proc).exists():
        assert time.monotonic() < deadline, f"no control socket:\n{proc.log()}"
        time.sleep(0.05)


async def ctl(proc: XmppdProcess, *args: str):
    """Run xmppdctl without blocking the clients' event loop."""
    return await asyncio.to_thread(proc.ctl, *args)


def watch_disconnect(client) -> asyncio.Future:
    gone = asyncio.get_running_loop().create_future()
    client.add_event_handler("disconnected", lambda *_: gone.done() or gone.set_result(True))
    return gone


def test_the_control_socket_is_private(server):
    wait_for_control_socket(server)
    mode = control_socket(server).stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_sessions_shows_a_client_and_kick_ends_it(server):
    wait_for_control_socket(server)

    async def scenario():
        client = await login(server, "alice@localhost/desk")
        gone = watch_disconnect(client)
        listing = await ctl(server, "sessions")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split() == ["JID", "PEER", "SECURE", "MECHANISM", "SINCE"]
        assert len(lines) == 2 and lines[1].startswith("alice@localhost/desk ")
        assert " yes " in lines[1] and "SCRAM-SHA-256" in lines[1]

        kicked = await ctl(server, "kick", "alice@localhost/desk")
        assert (kicked.returncode, kicked.stdout) == (
            0, "closed 1 session of alice@localhost/desk\n"), kicked.stderr
        await asyncio.wait_for(gone, 10)
        after = await ctl(server, "sessions")
        assert (after.returncode, after.stdout) == (0, "")

        again = await ctl(server, "kick", "alice@localhost/desk")
        assert again.returncode == 1
        assert again.stderr == "xmppdctl: no session of alice@localhost/desk\n"

    asyncio.run(scenario())


def test_deluser_while_running_ends_the_session_and_the_account(server):
    wait_for_control_socket(server)

    async def scenario():
        client = await login(server, "bob@localhost/phone")
        gone = watch_disconnect(client)
        deleted = await ctl(server, "deluser", "bob@localhost")
        assert (deleted.returncode, deleted.stdout) == (
            0, "deleted bob@localhost, ended 1 session\n"), deleted.stderr
        await asyncio.wait_for(gone, 10)
        with pytest.raises(LoginFailed):
            await login(server, "bob@localhost")

    asyncio.run(scenario())
    assert server.ctl("users").stdout.split() == ["alice@localhost"]


def test_account_commands_go_through_the_server_and_keep_passwords_out_of_its_log(server):
    wait_for_control_socket(server)
    secret = "a very particular passphrase"
    created = server.ctl("adduser", "carol@localhost", input=secret + "\n")
    assert (created.returncode, created.stdout) == (0, "created carol@localhost\n")

    async def scenario():
        carol = await login(server, "carol@localhost", secret)
        carol.disconnect()

    asyncio.run(scenario())
    duplicate = server.ctl("adduser", "carol@localhost", "x")
    assert duplicate.returncode == 1
    assert duplicate.stderr == "xmppdctl: user carol@localhost already exists\n"
    assert secret not in server.log()


def test_s2s_with_federation_off_is_an_empty_list(server):
    wait_for_control_socket(server)
    links = server.ctl("s2s")
    assert (links.returncode, links.stdout, links.stderr) == (0, "", "")
    closed = server.ctl("s2s-close", "example.net")
    assert closed.returncode == 1
    assert closed.stderr == "xmppdctl: no s2s link with example.net\n"


def test_with_the_server_stopped_only_the_database_commands_work(tmp_path):
    proc = XmppdProcess(tmp_path)
    assert proc.ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
    proc.start()
    wait_for_control_socket(proc)
    assert proc.ctl("sessions").returncode == 0
    assert proc.stop() == 0
    assert not control_socket(proc).exists()  # a clean stop removes it

    sessions = proc.ctl("sessions")
    assert sessions.returncode == 1 and sessions.stdout == ""
    assert sessions.stderr == (
        f"xmppdctl: xmppd is not running (no control socket at {control_socket(proc)})\n")
    users = proc.ctl("users")
    assert (users.returncode, users.stdout, users.stderr) == (0, "alice@localhost\n", "")
    assert proc.ctl("adduser", "dave@localhost", PASSWORD).returncode == 0
    assert proc.ctl("users").stdout == "alice@localhost\ndave@localhost\n"
    assert "Traceback" not in proc.log()


def test_a_second_server_on_the_same_socket_refuses_to_start(server):
    wait_for_control_socket(server)
    twin = XmppdProcess(server.directory / "twin")
    text = twin.config.read_text().replace(
        'data_dir = "data"', f'data_dir = "data"\ncontrol_socket = "{control_socket(server)}"')
    twin.config.write_text(text)
    with pytest.raises(RuntimeError, match="another xmppd is running with this control socket"):
        twin.start()
    assert server.ctl("sessions").returncode == 0  # the first one still has its socket
