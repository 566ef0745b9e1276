"""XEP-0215 with a real TURN server: Debian's coturn runs with ``use-auth-secret`` on loopback,
a slixmpp client asks xmppd for the external services, and the TURN credentials xmppd gives
allocate a relay on coturn (RFC 5766 Allocate with the long-term credential); credentials
made from another secret are refused by coturn."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.integration import turn_client
from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port

SECRET = "coturn and xmppd share this"
NS = "urn:xmpp:extdisco:2"


def udp_port_free() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_turn(port: int, process: subprocess.Popen, log, timeout: float = 15.0) -> None:
    """coturn answers a bare Allocate with 401 once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"turnserver exited:\n{log.read_text()}"
        try:
            challenge, _ = turn_client.allocate("127.0.0.1", port, "x", "y", timeout=0.5)
        except OSError:
            time.sleep(0.2)
            continue
        assert challenge.error_code == 401
        return
    raise AssertionError(f"turnserver did not answer in {timeout}s:\n{log.read_text()}")


@pytest.fixture
def coturn(tmp_path):
    """turnserver in the foreground from a temporary directory, loopback only, no TLS, no
    CLI, its own user database: nothing of the system's coturn."""
    binary = shutil.which("turnserver")
    assert binary, "coturn is not installed (apt-get install coturn; see .ci/run)"
    port = udp_port_free()
    relay = free_port()
    directory = tmp_path / "coturn"
    directory.mkdir()
    log = directory / "turnserver.log"
    process = subprocess.Popen(
        [binary, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
         "--relay-ip=127.0.0.1", f"--min-port={relay}", f"--max-port={relay + 20}",
         "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=localhost",
         "--no-tls", "--no-dtls", "--no-cli", "--no-software-attribute",
         "--log-file=stdout", "--simple-log", f"--userdb={directory / 'turndb'}",
         f"--pidfile={directory / 'turnserver.pid'}"],
        cwd=directory, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_turn(port, process, log)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def server(tmp_path, coturn):
    extra = (f'[plugins]\nenabled = ["disco", "ping", "extdisco"]\n'
             f'[plugins.extdisco]\nsecret = "{SECRET}"\ncredentials_ttl = 600\n'
             f'[[plugins.extdisco.services]]\ntype = "stun"\nhost = "127.0.0.1"\n'
             f'port = {coturn}\nrestricted = false\n'
             f'[[plugins.extdisco.services]]\ntype = "turn"\nhost = "127.0.0.1"\n'
             f'port = {coturn}\ntransport = "udp"\n')
    yield from serve(XmppdProcess(tmp_path / "xmppd", extra=extra))


async def ask(client, payload: str, to: str = "localhost"):
    iq = client.make_iq_get(ito=to)
    iq.append(ET.fromstring(payload))
    return await iq.send(timeout=10)


def services(answer) -> list[dict]:
    return [dict(child.attrib) for child in answer.xml.find(f"{{{NS}}}services")]


def test_turn_allocation_with_the_credentials_from_xmppd(server, coturn):
    async def scenario():
        client = await login(server, "alice@localhost/phone")
        info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
        assert NS in info["disco_info"]["features"]
        answer = await ask(client, f"<services xmlns='{NS}'/>")
        stun, turn = services(answer)
        assert (stun["type"], stun["port"], "username" in stun) == ("stun", str(coturn), False)
        assert turn["type"] == "turn" and turn["restricted"] == "true"
        assert turn["username"].endswith(":alice@localhost")
        expiry = int(turn["username"].split(":")[0])
        assert 590 <= expiry - time.time() <= 610

        challenge, allocated = await asyncio.to_thread(
            turn_client.allocate, turn["host"], int(turn["port"]), turn["username"],
            turn["password"])
        assert challenge.error_code == 401
        assert allocated.type == turn_client.ALLOCATE_SUCCESS, allocated.error_code
        assert allocated.relayed_port is not None

        asked = await ask(client, f"<credentials xmlns='{NS}'><service host='127.0.0.1' "
                                  f"type='turn'/></credentials>")
        (again,) = [dict(c.attrib) for c in asked.xml.find(f"{{{NS}}}credentials")]
        _, allocated = await asyncio.to_thread(
            turn_client.allocate, "127.0.0.1", coturn, again["username"], again["password"])
        assert allocated.type == turn_client.ALLOCATE_SUCCESS

        with pytest.raises(IqError) as refused:
            await ask(client, f"<credentials xmlns='{NS}'><service host='127.0.0.1' "
                              f"type='stun'/></credentials>")
        assert refused.value.condition == "item-not-found"
        await logout(client)

    asyncio.run(scenario())


def test_coturn_refuses_credentials_from_another_secret(coturn):
    from xmppd.plugins.extdisco import turn_credentials

    username, password = turn_credentials("not the secret", "alice@localhost",
                                          int(time.time()) + 600)
    challenge, answer = turn_client.allocate("127.0.0.1", coturn, username, password)
    assert challenge.error_code == 401
    assert answer.type == turn_client.ALLOCATE_ERROR and answer.error_code == 401
    username, password = turn_credentials(SECRET, "alice@localhost", int(time.time()) - 10)
    _, expired = turn_client.allocate("127.0.0.1", coturn, username, password)
    assert expired.type == turn_client.ALLOCATE_ERROR and expired.error_code == 401
