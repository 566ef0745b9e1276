"""A client that drops its TCP connection keeps its session when a plugin says so: messages
sent to it meanwhile wait, and a new connection that resumes the session receives them."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import time
from pathlib import Path

from tests.integration.conftest import PASSWORD, stop_cleanly
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_c2s_security import scram_login, starttls
from tests.scramclient import ScramClient

DROPIN = Path(__file__).parent / "dropins" / "session_keeper.py"
TEST_NS = "urn:example:sm"


def authenticated(proc: XmppdProcess, user: str) -> RawClient:
    """A raw client past STARTTLS and SCRAM, its restarted stream's features read."""
    client = RawClient(proc.c2s_port)
    starttls(proc, client)
    assert b"<success" in scram_login(client, "SCRAM-SHA-256", ScramClient("sha-256", user,
                                                                            PASSWORD))
    client.header()
    client.read_until(b"</stream:features>")
    client.received = b""
    return client


def bound(proc: XmppdProcess, user: str, resource: str) -> RawClient:
    client = authenticated(proc, user)
    client.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                f"<resource>{resource}</resource></bind></iq>")
    client.read_until(b"</iq>")
    client.received = b""
    return client


def drop(client: RawClient) -> None:
    """Gone without a word: no </stream:stream>, no TLS close_notify, a TCP reset."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


def wait_for_log(proc: XmppdProcess, line: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in proc.log():
        assert time.monotonic() < deadline, f"no {line!r} in:\n{proc.log()}"
        time.sleep(0.05)


def test_a_dropped_connection_keeps_its_session_for_a_resume(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(DROPIN, plugins)
    proc = XmppdProcess(tmp_path, extra='[plugins]\nenabled = ["disco", "ping", "roster", '
                                         '"presence", "offline", "session_keeper"]\n')
    proc.config.write_text(proc.config.read_text().replace(
        "[server]\n", f'[server]\nplugin_dirs = ["{plugins}"]\n', 1))
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    try:
        alice = bound(proc, "alice", "laptop")
        drop(alice)
        wait_for_log(proc, "session alice@localhost/laptop hibernated after")

        bob = bound(proc, "bob", "phone")
        bob.send("<message to='alice@localhost/laptop' type='chat' id='m1'>"
                 "<body>are you there?</body></message>"
                 "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        answered = bob.read_until(b"id='p1'").decode()
        assert "<message" not in answered, answered  # taken by the kept session, no error

        again = authenticated(proc, "alice")
        again.send(f"<resume xmlns='{TEST_NS}' previd='alice@localhost/laptop'/>")
        replayed = again.read_until(b"</message>").decode()
        assert "<resumed" in replayed and "are you there?" in replayed, replayed

        bob.send("<message to='alice@localhost/laptop' type='chat' id='m2'>"
                 "<body>welcome back</body></message>")
        assert b"welcome back" in again.read_until(b"welcome back")
        again.send("</stream:stream>")
        again.read_until_closed()
        bob.close()
    finally:
        log = stop_cleanly(proc)
    assert re.search(r"session alice@localhost/laptop resumed from 127\.0\.0\.1:\d+ after "
                     r"hibernating \d+ s", log), log
    assert "session alice@localhost/laptop ended after" in log and "logout" in log, log
