"""A service on a subdomain, over real sockets: the echo drop-in (tests/integration/dropins)
on echo.DOMAIN, reached by a local slixmpp client and by a client of a second xmppd over
federation; the host's disco#items lists it, and it answers its own disco#info."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD, assert_log_for_admins, login
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_federation import A, B, close, s2s_section, user
from tests.integration.test_im import Inbox

ECHO = Path(__file__).parent / "dropins" / "echo_service.py"
PLUGINS = '[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", "echo"]\n'


def with_echo(proc: XmppdProcess, plugins_dir: Path) -> None:
    """Copy the echo drop-in where ``proc`` looks for plugins, and enable it."""
    plugins_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ECHO, plugins_dir)
    text = proc.config.read_text().replace(
        "[server]\n", f'[server]\nplugin_dirs = ["{plugins_dir}"]\n', 1)
    proc.config.write_text(text + PLUGINS)


def stop(*procs: XmppdProcess) -> None:
    for proc in procs:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


def test_a_local_client_reaches_the_echo_service_and_discovers_it(tmp_path):
    proc = XmppdProcess(tmp_path / "server")
    with_echo(proc, tmp_path / "plugins")
    assert proc.ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
    proc.start()

    async def scenario():
        alice = await login(proc, "alice@localhost/phone")
        messages = Inbox(alice, "message")
        alice.send_message(mto="room@echo.localhost", mbody="anyone?", mtype="chat")
        echoed = await messages.wait_for(lambda m: m["body"] == "anyone?")
        assert (echoed["type"], str(echoed["from"])) == ("chat", "room@echo.localhost")
        items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
        assert [item[0] for item in items["disco_items"]["items"]] == ["echo.localhost"]
        info = await alice.plugin["xep_0030"].get_info(jid="echo.localhost", timeout=10)
        assert "urn:example:echo" in info["disco_info"]["features"]
        assert ("component", "generic", None, "Echo") in info["disco_info"]["identities"]
        await close(alice)

    try:
        asyncio.run(scenario())
    finally:
        stop(proc)
    assert_log_for_admins(proc.log())


def test_a_client_of_another_server_reaches_the_echo_service_over_federation(tmp_path):
    pki = make_test_pki(tmp_path / "pki", [A, B])  # a.example's covers *.a.example
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    with_echo(a, tmp_path / "plugins")
    a.config.write_text(a.config.read_text() + s2s_section(a, b, pki.ca.ca_path, "secure"))
    b.config.write_text(b.config.read_text() + PLUGINS.replace(', "echo"', "")
                        + s2s_section(b, a, pki.ca.ca_path, "secure")
                        + f'"echo.{A}" = "127.0.0.1:{a.s2s_port}"\n')
    for proc in (a, b):
        proc.ca = pki.ca.ca_path
        proc.client_hostname_check = True
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()

    async def scenario():
        bob, messages, _ = await user(b, f"bob@{B}/work")
        bob.send_message(mto=f"room@echo.{A}", mbody="across?", mtype="chat")
        answer = await messages.wait_for(lambda m: m["body"] == "across?", timeout=20)
        assert (answer["type"], str(answer["from"])) == ("chat", f"room@echo.{A}"), answer
        await close(bob)

    try:
        asyncio.run(scenario())
    finally:
        stop(a, b)
    for proc in (a, b):
        assert_log_for_admins(proc.log())
