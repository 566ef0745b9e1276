"""Real clients of two generations against a real xmppd: SCRAM on the first connection, a ping
without a 'to', and a chat with another account.

- today's slixmpp (the venv's), in this process;
- Debian's slixmpp 1.8.x (what poezio uses), in a subprocess under /usr/bin/python3
  (tests/integration/slixmpp18_client.py). It asks for SCRAM-*-PLUS with tls-unique, which a
  TLS 1.3 stream cannot give, then for plain SCRAM with the 'y' flag: xmppd.sasl.scram explains
  why that now logs in with SCRAM and why the refused -PLUS attempts are not counted failures.

Each over STARTTLS and direct TLS with TLS 1.3, and over STARTTLS with TLS 1.2. The other side of
the chat is bob, logged in with today's slixmpp, who answers every message.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD

SYSTEM_PYTHON = "/usr/bin/python3"
LEGACY_CLIENT = Path(__file__).with_name("slixmpp18_client.py")
TIMEOUT = 15.0
AUTHENTICATED = re.compile(r"alice@localhost authenticated with (\S+) from")

TRANSPORTS = [
    pytest.param(False, "1.3", id="starttls-tls1.3"),
    pytest.param(True, "1.3", id="direct-tls-tls1.3"),
    pytest.param(False, "1.2", id="starttls-tls1.2"),
]


def legacy_slixmpp_version() -> str | None:
    """The slixmpp version /usr/bin/python3 imports, or None when it has none."""
    if not os.path.exists(SYSTEM_PYTHON):
        return None
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import slixmpp; print(slixmpp.__version__)"],
        capture_output=True, text=True, timeout=60, cwd="/")
    return result.stdout.strip() if result.returncode == 0 else None


def client_context(cafile: Path, max_tls: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    if max_tls == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


async def connect(server, jid: str, direct_tls: bool, max_tls: str):
    """Today's slixmpp, free to pick its mechanism; returns (client, failed SASL conditions)
    once the session started."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD)
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.enable_plaintext = False
    client.ssl_context = client_context(server.cert, max_tls)
    failures: list[str] = []
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("failed_auth", lambda stanza: failures.append(stanza["condition"]))
    client.add_event_handler(
        "session_start", lambda _event: started.done() or started.set_result(None))
    client.connect("127.0.0.1", server.direct_tls_port if direct_tls else server.c2s_port)
    try:
        await asyncio.wait_for(started, TIMEOUT)
        # Available, so that messages to the bare JID reach this session: presence first,
        # and the roster's answer proves the server has handled it.
        client.send_presence()
        await client.get_roster(timeout=TIMEOUT)
    except BaseException:
        client.disconnect()
        raise
    return client, failures


async def echo_bob(server, direct_tls: bool, max_tls: str):
    """bob, who answers every chat message with 'echo: ' and its body."""
    bob, _ = await connect(server, "bob@localhost/echo", direct_tls, max_tls)

    def answer(message) -> None:
        if message["type"] in ("chat", "normal") and message["body"]:
            message.reply(f"echo: {message['body']}").send()

    bob.add_event_handler("message", answer)
    return bob


async def ping_without_to(client) -> str:
    iq = client.make_iq_get()
    iq.xml.append(ET.Element("{urn:xmpp:ping}ping"))
    assert iq.xml.get("to") is None
    result = await iq.send(timeout=TIMEOUT)
    return result["type"]


async def disconnect(*clients) -> None:
    for client in clients:
        client.disconnect()
    await asyncio.wait_for(asyncio.gather(*(c.disconnected for c in clients)), TIMEOUT)


def sasl_lines(server) -> tuple[list[str], list[str]]:
    """(mechanisms alice authenticated with, alice's SASL failure lines) from the server's log."""
    log = server.log()
    failures = [line for line in log.splitlines()
                if "SASL failure" in line and " for alice@localhost " in line]
    return AUTHENTICATED.findall(log), failures


@pytest.mark.parametrize("direct_tls,max_tls", TRANSPORTS)
def test_todays_slixmpp(server, direct_tls, max_tls):
    async def scenario():
        bob = await echo_bob(server, direct_tls, max_tls)
        alice, failures = await connect(server, "alice@localhost/today", direct_tls, max_tls)
        try:
            assert alice.plugin["feature_mechanisms"].mech.name.startswith("SCRAM-SHA-")
            if max_tls == "1.3":  # it cannot bind there (no tls-exporter in CPython's ssl)
                assert failures == []
            assert await ping_without_to(alice) == "result"
            answered = asyncio.get_running_loop().create_future()
            alice.add_event_handler("message", lambda m: answered.done() or
                                    answered.set_result(str(m["body"])))
            alice.send_message(mto="bob@localhost", mbody="hello from today", mtype="chat")
            assert await asyncio.wait_for(answered, TIMEOUT) == "echo: hello from today"
            return alice.plugin["feature_mechanisms"].mech.name
        finally:
            await disconnect(alice, bob)

    mechanism = asyncio.run(scenario())
    mechanisms, failures = sasl_lines(server)
    assert mechanisms == [mechanism]  # the first connection, with SCRAM
    if max_tls == "1.3":
        assert failures == []
    else:  # tls-unique: refused -PLUS attempts with proofs, none counted; then 'n'
        assert all("not counted" in line for line in failures), failures


@pytest.mark.parametrize("direct_tls,max_tls", TRANSPORTS)
def test_debian_slixmpp_18(server, direct_tls, max_tls):
    version = legacy_slixmpp_version()
    if version is None:
        pytest.skip(f"{SYSTEM_PYTHON} cannot import slixmpp (Debian's python3-slixmpp)")
    if not version.startswith("1.8."):
        pytest.skip(f"{SYSTEM_PYTHON} has slixmpp {version}, not the 1.8.x this test is for")

    async def scenario():
        bob = await echo_bob(server, direct_tls, max_tls)
        try:
            port = server.direct_tls_port if direct_tls else server.c2s_port
            args = [SYSTEM_PYTHON, str(LEGACY_CLIENT), "--jid", "alice@localhost/poezio",
                    "--port", str(port), "--cafile", str(server.cert), "--peer", "bob@localhost",
                    "--body", "hello from 1.8", "--max-tls", max_tls, "--timeout", str(TIMEOUT)]
            if direct_tls:
                args.append("--direct-tls")
            process = await asyncio.create_subprocess_exec(
                *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                env={**os.environ, "XMPPD_TEST_PASSWORD": PASSWORD})
            out, err = await asyncio.wait_for(process.communicate(), 4 * TIMEOUT)
            return process.returncode, out.decode(), err.decode()
        finally:
            await disconnect(bob)

    code, out, err = asyncio.run(scenario())
    steps = {step["step"]: step for step in map(json.loads, out.splitlines())}
    assert code == 0, (out, err[-3000:])
    session = steps["session"]
    assert session["slixmpp"] == version
    assert session["tls"] == f"TLSv{max_tls}"
    assert session["mechanism"] == "SCRAM-SHA-256"
    # Its two -PLUS attempts (tls-unique) are refused, proven and not counted; nothing else.
    assert session["failures"] == ["malformed-request", "malformed-request"]
    assert (steps["ping"]["to"], steps["ping"]["type"]) == ("", "result")  # no 'to', answered
    assert steps["answer"]["body"] == "echo: hello from 1.8"

    mechanisms, failures = sasl_lines(server)
    assert mechanisms == ["SCRAM-SHA-256"]  # the first connection, with SCRAM
    assert len(failures) == 2, failures
    for line, plus in zip(failures, ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"), strict=True):
        assert (f"SASL failure with {plus} for alice@localhost from 127.0.0.1:" in line
                and "malformed-request (unsupported channel binding type); not counted" in line)
    assert "too many failed authentications" not in server.log()
    assert PASSWORD not in server.log()


def test_the_legacy_client_runs_outside_the_venv():
    """The subprocess must get Debian's slixmpp, not ours: nothing of the venv on its path."""
    if legacy_slixmpp_version() is None:
        pytest.skip(f"{SYSTEM_PYTHON} cannot import slixmpp (Debian's python3-slixmpp)")
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import slixmpp, sys; print(slixmpp.__file__)"],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert result.stdout.startswith("/usr/lib/python3/"), result.stdout
    assert sys.prefix not in result.stdout
