"""XEP-0198 over real TLS with the smacks plugin: no message lost when a connection drops
(resumed on a new connection, or kept offline when the resumption times out), nothing
acknowledged lost to a SIGKILL, slixmpp's xep_0198 resuming, and the error paths."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl

from tests.integration.conftest import PASSWORD, login, stop_cleanly
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_session_hibernation import authenticated, bound, drop, wait_for_log

SM = "urn:xmpp:sm:3"
PLUGINS = '"disco", "ping", "roster", "presence", "offline", "smacks"'
ALICE = "alice@localhost/laptop"


def start(tmp_path, smacks: str = "") -> XmppdProcess:
    proc = XmppdProcess(tmp_path, extra=f"[plugins]\nenabled = [{PLUGINS}]\n"
                                         f"[plugins.smacks]\n{smacks}\n")
    for user in ("alice", "bob", "mallory"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    return proc


def online(proc: XmppdProcess, user: str, resource: str) -> RawClient:
    """Bound and available (its own presence echoed back and read)."""
    client = bound(proc, user, resource)
    client.send("<presence/><iq type='get' id='ready' to='localhost'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>")
    client.read_until(b"id='ready'")
    client.received = b""
    return client


def enable(client: RawClient) -> str:
    """SM with resumption on; its id."""
    client.send(f"<enable xmlns='{SM}' resume='true'/>")
    answer = client.read_until(b"<enabled").decode()
    while not re.search(r"<enabled[^>]*>", answer):
        answer = client.read_until(b">", timeout=5).decode()
    client.received = b""
    sm_id = re.search(r"<enabled[^>]*\bid=[\"']([^\"']+)[\"']", answer)
    assert sm_id, answer
    return sm_id.group(1)


def bodies(data: bytes) -> list[str]:
    """The bodies of the complete messages in ``data``."""
    return re.findall(r"<message\b.*?<body>([^<]*)</body>.*?</message>", data.decode(), re.S)


def send_messages(bob: RawClient, names: list[str], to: str = ALICE) -> None:
    """Bob's messages, and a ping whose answer proves every one was handled."""
    bob.send("".join(f"<message to='{to}' type='chat' id='{name}'><body>{name}</body>"
                     "</message>" for name in names)
             + f"<iq type='get' id='p-{names[-1]}' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
             "</iq>")
    answered = bob.read_until(f"id='p-{names[-1]}'".encode())
    assert b"type='error'" not in answered and b'type="error"' not in answered, answered
    bob.received = b""


def test_a_dropped_connection_resumes_and_receives_each_message_exactly_once(tmp_path):
    proc = start(tmp_path)
    try:
        alice = online(proc, "alice", "laptop")
        sm_id = enable(alice)
        bob = online(proc, "bob", "phone")
        first = [f"m{n}" for n in range(1, 7)]
        send_messages(bob, first)
        got = alice.read_until(b"<body>m3</body>")
        handled = bodies(got)  # what alice's client processed: all she read in full
        assert handled[:3] == ["m1", "m2", "m3"], got
        drop(alice)  # no ack sent for any of them: the server cannot know what she read
        wait_for_log(proc, f"session {ALICE} hibernated after")

        later = ["m7", "m8"]
        send_messages(bob, later)  # taken by the hibernated session, no error

        again = authenticated(proc, "alice")
        again.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='{len(handled)}'/>")
        replayed = again.read_until(b"<body>m8</body>")
        assert re.search(rb"<resumed[^>]*\bh=[\"']0[\"']", replayed), replayed
        resent = bodies(replayed)
        assert handled + resent == first + later, (handled, resent)
        assert b"urn:xmpp:delay" in replayed  # sent late: stamped with when it was sent

        send_messages(bob, ["m9"])
        assert bodies(again.read_until(b"<body>m9</body>")) == resent + ["m9"]
        again.send(f"<a xmlns='{SM}' h='{len(first + later) + 1}'/></stream:stream>")
        again.read_until_closed()
        bob.close()
    finally:
        log = stop_cleanly(proc)
    assert re.search(rf"session {ALICE} resumed from 127\.0\.0\.1:\d+ after hibernating", log)
    assert "unacknowledged" not in log, log  # everything was acknowledged in the end


def test_a_resumption_that_times_out_leaves_every_message_in_offline_storage(tmp_path):
    proc = start(tmp_path, "resumption_timeout = 2\n")
    try:
        alice = online(proc, "alice", "laptop")
        sm_id = enable(alice)
        bob = online(proc, "bob", "phone")
        send_messages(bob, ["m1", "m2", "m3"])
        alice.read_until(b"<body>m3</body>")
        alice.send(f"<a xmlns='{SM}' h='1'/>")  # she acknowledges m1 only
        send_messages(bob, ["m4"])  # the <a/> is handled: bob's ping came after it
        drop(alice)
        wait_for_log(proc, f"session {ALICE} hibernated after")
        send_messages(bob, ["m5"])
        wait_for_log(proc, f"session {ALICE} ended after")
        assert "not resumed within 2 s" in proc.log()

        late = authenticated(proc, "alice")
        late.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='3'/>")
        failed = late.read_until(b"</failed>")
        assert b"item-not-found" in failed and re.search(rb"<failed[^>]*\bh=", failed), failed
        late.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>phone</resource></bind></iq><presence/>")
        offline = late.read_until(b"<body>m5</body>")
        assert bodies(offline) == ["m2", "m3", "m4", "m5"], offline
        assert offline.count(b"urn:xmpp:delay") >= 4
        late.send("</stream:stream>")
        late.read_until_closed()
        bob.close()
    finally:
        log = stop_cleanly(proc)
    assert (f"session {ALICE} ended with stanzas unacknowledged: 4, of which 4 messages go to "
            "offline storage") in log, log


def test_sigkill_after_an_acknowledgement_loses_nothing_acknowledged(tmp_path):
    proc = start(tmp_path)
    try:
        bob = online(proc, "bob", "phone")
        enable(bob)
        bob.send("".join(f"<message to='alice@localhost' type='chat' id='k{n}'>"
                         f"<body>k{n}</body></message>" for n in range(5))
                 + f"<r xmlns='{SM}'/>")
        acked = bob.read_until_any(b"h='5'", b'h="5"', timeout=10)
        assert re.search(rb"<a [^>]*\bh=[\"']5[\"']", acked), acked  # all five on disk
        proc.stop(signal.SIGKILL)

        proc.start()
        alice = bound(proc, "alice", "laptop")
        alice.send("<presence/>")
        received = alice.read_until(b"<body>k4</body>")
        assert bodies(received) == [f"k{n}" for n in range(5)], received
        alice.send("</stream:stream>")
        alice.read_until_closed()
    finally:
        stop_cleanly(proc)


def test_the_error_paths(tmp_path):
    proc = start(tmp_path)
    try:
        early = authenticated(proc, "alice")
        early.send(f"<enable xmlns='{SM}' resume='true'/>")
        assert b"unexpected-request" in early.read_until(b"</failed>")  # before bind

        alice = online(proc, "alice", "laptop")
        sm_id = enable(alice)
        mallory = authenticated(proc, "mallory")
        mallory.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
        refused = mallory.read_until(b"</failed>")
        assert b"item-not-found" in refused and b" h=" not in refused, refused
        alice.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert b"id='still'" in alice.read_until(b"id='still'")  # not taken over

        alice.send(f"<enable xmlns='{SM}'/>")
        assert b"unexpected-request" in alice.read_until(b"</failed>")  # twice
        alice.send(f"<a xmlns='{SM}' h='3'/>")  # nothing was sent to her since enable
        closed = alice.read_until_closed()
        assert b"undefined-condition" in closed and b"handled-count-too-high" in closed, closed
        for client in (early, mallory):
            client.close()
    finally:
        stop_cleanly(proc)


def test_slixmpp_enables_acks_and_resumes(tmp_path):
    proc = start(tmp_path)

    async def run() -> None:
        alice = await login_with_sm(proc, "alice@localhost/laptop")
        sm = alice.plugin["xep_0198"]
        assert sm.sm_id and sm.enabled_in
        bob = await login(proc, "bob@localhost/phone")
        received: list[str] = []
        alice.add_event_handler("message", lambda msg: received.append(msg["body"]))
        for n in range(8):
            bob.send_message(mto="alice@localhost/laptop", mbody=f"s{n}", mtype="chat")
        await until(lambda: len(received) == 8)
        assert sm.handled == 8  # and the server asked for that ack once, not per message
        thanked: list[str] = []
        bob.add_event_handler("message", lambda msg: thanked.append(msg["body"]))
        alice.send_message(mto="bob@localhost/phone", mbody="thanks", mtype="chat")
        await until(lambda: thanked == ["thanks"])
        sm.request_ack()
        await until(lambda: sm.last_ack == sm.seq == 1 and not sm.unacked_queue)
        alice.transport.abort()  # gone without a close, as a phone changing networks
        await until(lambda: f"session {ALICE} hibernated after" in proc.log())
        for n in range(8, 11):
            bob.send_message(mto="alice@localhost/laptop", mbody=f"s{n}", mtype="chat")
        resumed = asyncio.get_running_loop().create_future()
        alice.add_event_handler("session_resumed", lambda _: resumed.set_result(True))
        alice.connect("127.0.0.1", proc.c2s_port)
        await asyncio.wait_for(resumed, 15)
        await until(lambda: len(received) == 11)
        assert received == [f"s{n}" for n in range(11)]
        for client in (alice, bob):
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 10)

    try:
        asyncio.run(run())
    finally:
        log = stop_cleanly(proc)
    assert "handled-count-too-high" not in log and "stream error" not in log, log


async def login_with_sm(proc: XmppdProcess, jid: str):
    """A slixmpp client with xep_0198 (resumable), once SM is enabled after bind."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD)
    client.enable_plaintext = False
    client.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
    for plugin in ("xep_0030", "xep_0199", "xep_0198"):
        client.register_plugin(plugin)
    enabled = asyncio.get_running_loop().create_future()
    client.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(1))
    client.add_event_handler("session_start", lambda _: client.send_presence())
    client.connect("127.0.0.1", proc.c2s_port)
    await asyncio.wait_for(enabled, 15)
    return client


async def until(condition, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_a_resume_takes_the_session_from_a_stream_still_open(tmp_path):
    proc = start(tmp_path)
    try:
        old = online(proc, "alice", "laptop")
        sm_id = enable(old)
        bob = online(proc, "bob", "phone")
        send_messages(bob, ["o1"])
        old.read_until(b"<body>o1</body>")  # read but not acknowledged

        new = authenticated(proc, "alice")
        new.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
        assert bodies(new.read_until(b"<body>o1</body>")) == ["o1"]
        assert b"<conflict" in old.read_until_closed()
        send_messages(bob, ["o2"])
        assert bodies(new.read_until(b"<body>o2</body>")) == ["o1", "o2"]
        new.send(f"<a xmlns='{SM}' h='2'/></stream:stream>")
        new.read_until_closed()
        bob.close()
    finally:
        stop_cleanly(proc)


def test_a_server_shutdown_keeps_a_hibernated_sessions_messages(tmp_path):
    proc = start(tmp_path)
    try:
        alice = online(proc, "alice", "laptop")
        enable(alice)
        drop(alice)
        wait_for_log(proc, f"session {ALICE} hibernated after")
        bob = online(proc, "bob", "phone")
        send_messages(bob, ["h1", "h2"])
        bob.close()
        assert proc.stop() == 0  # SIGTERM: the hibernated session ends with the server

        proc.start()
        again = bound(proc, "alice", "laptop")
        again.send("<presence/>")
        assert bodies(again.read_until(b"<body>h2</body>")) == ["h1", "h2"]
        again.send("</stream:stream>")
        again.read_until_closed()
    finally:
        log = stop_cleanly(proc)
    assert "server shutdown" in log
