"""Fixtures that start a real xmppd process and log real clients in to it."""

from __future__ import annotations

import asyncio
import signal
import ssl

import pytest

from tests.integration.serverproc import XmppdProcess

PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(tmp_path):
    """A running xmppd with alice@localhost and bob@localhost; stopped with SIGTERM after."""
    proc = XmppdProcess(tmp_path)
    for user in ("alice", "bob"):
        result = proc.ctl("adduser", f"{user}@localhost", PASSWORD)
        assert result.returncode == 0, result.stderr
    proc.start()
    yield proc
    code = proc.stop(signal.SIGTERM)
    log = proc.log()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert_log_for_admins(log)


def assert_log_for_admins(log: str) -> None:
    """What an admin reads: no secret, no Twisted factory noise, no stream error that ends
    without its reason."""
    assert PASSWORD not in log
    assert "Starting factory" not in log and "Stopping factory" not in log, log
    assert not [line for line in log.splitlines() if line.rstrip().endswith(":")], log


class LoginFailed(Exception):
    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


async def login(proc: XmppdProcess, jid: str, password: str = PASSWORD, *,
                direct_tls: bool = False, mechanism: str = "SCRAM-SHA-256",
                timeout: float = 15.0):
    """Log a slixmpp client in over STARTTLS (or direct TLS); returns it once bound."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, password, sasl_mech=mechanism)
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.enable_plaintext = False
    client.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0199")
    client.register_plugin("xep_0203")
    outcome = asyncio.get_running_loop().create_future()

    def started(_event) -> None:
        if not outcome.done():
            outcome.set_result(client)

    def failed(stanza) -> None:
        if not outcome.done():
            outcome.set_exception(LoginFailed(stanza["condition"]))

    client.add_event_handler("session_start", started)
    client.add_event_handler("failed_auth", failed)
    port = proc.direct_tls_port if direct_tls else proc.c2s_port
    client.connect("127.0.0.1", port)
    try:
        return await asyncio.wait_for(outcome, timeout)
    except BaseException:
        client.disconnect()
        raise


async def logout(client) -> None:
    client.disconnect()
    await asyncio.wait_for(client.disconnected, 10)
