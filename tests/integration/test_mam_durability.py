"""The message archive and a SIGKILL, on a real server with SQLite files: what the server
acknowledged (an XEP-0198 <a/>, or the answer to a later IQ) is on disk twice, delivered
from offline storage exactly once and in both archives exactly once, although the archive
batches its writes (``batch_ms`` is ten seconds here, so nothing reaches the disk by the
timer: only the acknowledgement's own wait for the archive does)."""

from __future__ import annotations

import re
import signal

from tests.integration.conftest import PASSWORD, stop_cleanly
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_session_hibernation import bound
from tests.integration.test_stream_management import SM, bodies, enable, online

PLUGINS = '"disco", "ping", "roster", "presence", "offline", "smacks", "mam"'
MAM = "urn:xmpp:mam:2"


def start(tmp_path) -> XmppdProcess:
    proc = XmppdProcess(tmp_path, extra=f"[plugins]\nenabled = [{PLUGINS}]\n"
                                         "[plugins.mam]\nbatch_ms = 10000\n")
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    return proc


def messages(names: list[str]) -> str:
    return "".join(f"<message to='alice@localhost' type='chat' id='{name}'>"
                   f"<body>{name}</body></message>" for name in names)


def archived(client, user: str) -> list[str]:
    """The bodies in ``user``'s whole archive, in archive order, from one MAM query."""
    client.received = b""
    client.send(f"<iq type='set' id='mam-{user}'><query xmlns='{MAM}' queryid='all'/></iq>")
    answer = client.read_until_any(b"<fin", timeout=10).decode()
    results = re.findall(r"<message\b[^>]*>\s*<result\b.*?</result>\s*</message>", answer, re.S)
    assert "complete='true'" in answer or 'complete="true"' in answer, answer
    return [re.search(r"<body>([^<]*)</body>", each).group(1) for each in results]


def after_a_restart(proc: XmppdProcess, names: list[str]) -> None:
    """Alice gets ``names`` from offline storage exactly once; both archives hold them."""
    proc.start()
    alice = bound(proc, "alice", "laptop")
    alice.send("<presence/>")
    offline = alice.read_until(f"<body>{names[-1]}</body>".encode())
    assert bodies(offline) == names, offline
    assert archived(alice, "alice") == names
    bob = bound(proc, "bob", "phone")
    assert archived(bob, "bob") == names
    for client in (alice, bob):
        client.send("</stream:stream>")
        client.read_until_closed()


def test_sigkill_after_a_stream_management_ack_loses_no_archive_entry(tmp_path):
    proc = start(tmp_path)
    try:
        bob = online(proc, "bob", "phone")
        enable(bob)
        names = [f"k{n}" for n in range(5)]
        bob.send(messages(names) + f"<r xmlns='{SM}'/>")
        acked = bob.read_until_any(b"h='5'", b'h="5"', timeout=10)
        assert re.search(rb"<a [^>]*\bh=[\"']5[\"']", acked), acked
        proc.stop(signal.SIGKILL)
        after_a_restart(proc, names)
    finally:
        stop_cleanly(proc)


def test_sigkill_after_an_answer_loses_no_archive_entry(tmp_path):
    proc = start(tmp_path)
    try:
        bob = online(proc, "bob", "phone")
        names = [f"p{n}" for n in range(5)]
        bob.send(messages(names) + "<iq type='get' id='proof' to='localhost'>"
                                   "<ping xmlns='urn:xmpp:ping'/></iq>")
        answer = bob.read_until(b"id='proof'")
        assert b"type='result'" in answer or b'type="result"' in answer, answer
        proc.stop(signal.SIGKILL)
        after_a_restart(proc, names)
    finally:
        stop_cleanly(proc)
