"""Fixtures that start a real xmppd process and log real clients in to it."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Iterable, Iterator

import pytest

from tests.integration.serverproc import XmppdProcess

PASSWORD = "correct horse battery staple"


def serve(proc: XmppdProcess, users: Iterable[str] = ("alice", "bob")) -> Iterator[XmppdProcess]:
    """For fixtures (``yield from serve(...)``): the users created, the server started and
    handed over; afterwards stopped with SIGTERM, exit 0, and a log fit for admins."""
    for user in users:
        assert proc.ctl("adduser", f"{user}@{proc.domain}", PASSWORD).returncode == 0
    proc.start()
    yield proc
    assert proc.stop(signal.SIGTERM) == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    assert_log_for_admins(proc.log())


@pytest.fixture
def server(tmp_path):
    """A running xmppd with alice@localhost and bob@localhost; stopped with SIGTERM after."""
    yield from serve(XmppdProcess(tmp_path))


def assert_log_for_admins(log: str) -> None:
    """What an admin reads: no secret, no Twisted factory noise, no stream error that ends
    without its reason."""
    assert PASSWORD not in log
    assert "Starting factory" not in log and "Stopping factory" not in log, log
    assert not [line for line in log.splitlines() if line.rstrip().endswith(":")], log


def stop_cleanly(proc: XmppdProcess) -> str:
    """Stop a server a test started itself: exit 0, no traceback, a log fit for admins,
    which is returned for the test's own checks."""
    assert proc.stop() == 0
    log = proc.log()
    assert "Traceback" not in log, log
    assert_log_for_admins(log)
    return log


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
