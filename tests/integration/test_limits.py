"""The [limits] over real sockets against a real twistd xmppd: connection caps per IP, the
negotiation deadline against a slowloris, stanza and byte shapers, the password guesser's
back-off, pings for silent sessions, XEP-0478 stream limits, and an s2s peer that floods.

Loopback addresses other than 127.0.0.1 (127.0.0.x) stand for other hosts: 127.0.0.1 is
exempt from the per-IP cap by default, the attackers here come from elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import selectors
import socket
import ssl
import time

import pytest

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.rawclient import HEADER
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def limits_server(tmp_path, limits: str, users=("alice", "bob", "carol", "dave"), **kwargs):
    """A running server with the [limits] text ``limits``; stopped and its log checked after
    (conftest.serve)."""
    return serve(XmppdProcess(tmp_path, extra=limits, **kwargs), users)


@contextlib.contextmanager
def running(tmp_path, limits: str, users=("alice", "bob", "carol", "dave"), **kwargs):
    """``limits_server`` for a with block: on a failure inside, the server is stopped too."""
    steps = limits_server(tmp_path, limits, users, **kwargs)
    proc = next(steps)
    try:
        yield proc
    except BaseException:
        proc.stop()
        raise
    next(steps, None)  # stop with SIGTERM, exit 0, a log fit for admins


def connect_from(source: str, port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))
    return sock


def read_until(sock, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until ``marker`` or the close; what was read."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {marker!r} in {data[-400:]!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def tls_stream(proc: XmppdProcess, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A stream from ``source`` through STARTTLS, its new header sent, features read."""
    sock = connect_from(source, proc.c2s_port)
    sock.sendall(HEADER.format(to=proc.domain).encode())
    read_until(sock, b"</stream:features>")
    sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(sock, b"<proceed")
    sock = ssl.create_default_context(cafile=str(proc.cert)).wrap_socket(
        sock, server_hostname=proc.domain)
    return sock


def features_after_tls(sock, proc) -> bytes:
    sock.sendall(HEADER.format(to=proc.domain).encode())
    return read_until(sock, b"</stream:features>")


def plain(user: str, password: str) -> str:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>"


def bound_raw_session(proc, user: str, resource: str, source: str = "127.0.0.1"):
    """A raw client stream logged in with PLAIN and bound to ``resource``."""
    sock = tls_stream(proc, source)
    features_after_tls(sock, proc)
    sock.sendall(plain(user, PASSWORD).encode())
    assert b"<success" in read_until(sock, b"<success")
    features_after_tls(sock, proc)
    sock.sendall(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 f"<resource>{resource}</resource></bind></iq>".encode())
    assert b"</jid>" in read_until(sock, b"</jid>")
    return sock


# -- connection caps


@pytest.fixture
def capped(tmp_path):
    yield from limits_server(tmp_path, """
[limits.c2s]
unauthenticated_per_ip = 20
unauthenticated_total = 5000
""", auth_timeout=60.0)


def test_a_thousand_idle_connections_from_one_ip_are_cut_at_the_cap(capped):
    """1,000 connections from 127.0.0.2 that never speak: 20 are kept (until the auth
    deadline), 980 are refused at once with policy-violation; a real client from another
    address still logs in and chats meanwhile."""
    sockets = [connect_from("127.0.0.2", capped.c2s_port) for _ in range(1000)]
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, bytearray())
    refused = 0
    deadline = time.monotonic() + 30
    while refused < 980 and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            try:
                chunk = key.fileobj.recv(65536)
            except ConnectionResetError:
                chunk = b""
            key.data.extend(chunk)
            if not chunk:
                selector.unregister(key.fileobj)
                assert b"<policy-violation" in key.data, bytes(key.data)
                assert b"too many unauthenticated connections from 127.0.0.2" in key.data
                refused += 1
    assert refused == 980
    assert len(selector.get_map()) == 20  # still open: they wait for the auth deadline
    assert not selector.select(timeout=0.5)  # and were told nothing
    refusals = [line for line in capped.log().splitlines() if "listener refused" in line]
    assert refusals and len(refusals) <= 5, refusals  # not 980 lines: the log is not flooded
    assert "c2s listener refused 1 connection(s), the last from 127.0.0.2:" in refusals[0]

    async def chat():
        alice = await login(capped, "alice@localhost/home")
        bob = await login(capped, "bob@localhost/work")
        inbox = Inbox(bob, "message")
        alice.send_message(mto="bob@localhost/work", mbody="still here", mtype="chat")
        await inbox.wait_for(lambda m: m["body"] == "still here")
        await logout(alice)
        await logout(bob)

    asyncio.run(chat())
    # direct TLS is a listener of its own: its cap counts separately, and a refused
    # connection is dropped before any TLS handshake
    direct = [connect_from("127.0.0.2", capped.direct_tls_port) for _ in range(21)]
    dropped = direct[-1]
    assert read_until(dropped, b"never") == b""
    for sock in sockets + direct:
        sock.close()


def test_the_total_cap_counts_every_address(tmp_path):
    with running(tmp_path, """
[limits.c2s]
unauthenticated_per_ip = 5
unauthenticated_total = 8
""", users=()) as proc:
        held = [connect_from(f"127.0.0.{3 + i // 4}", proc.c2s_port) for i in range(8)]
        time.sleep(0.3)
        late = connect_from("127.0.0.9", proc.c2s_port)
        answer = read_until(late, b"</stream:stream>")
        assert b"too many unauthenticated connections to this server (8)" in answer
        for sock in held:  # a connection that goes frees its place
            sock.close()
        time.sleep(0.3)
        again = connect_from("127.0.0.9", proc.c2s_port)
        again.sendall(HEADER.format(to=proc.domain).encode())
        assert b"<starttls" in read_until(again, b"</stream:features>")
        again.close()
        late.close()


# -- the negotiation deadline


def test_slowloris_is_cut_by_the_negotiation_deadline(tmp_path):
    """A byte every 0.3 s is never idle, but the whole negotiation has auth_timeout (2 s)."""
    with running(tmp_path, "", users=(), auth_timeout=2.0) as proc:
        sock = connect_from("127.0.0.5", proc.c2s_port)
        started = time.monotonic()
        received = b""
        for byte in HEADER.format(to=proc.domain).encode() * 10:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.3)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
        assert b"<connection-timeout" in received, received
        assert elapsed < 10  # well before the 10 × header the drip would take
        sock.close()


# -- shapers


@pytest.fixture
def shaped(tmp_path):
    yield from limits_server(tmp_path, """
[limits.c2s]
stanzas_per_second = 20
burst_stanzas = 20
""")


def test_a_flooding_session_is_throttled_while_others_go_on(shaped):
    """Alice sends 200 messages at once (10 s at 20/s); Carol's message to Dave, sent after
    the flood started, arrives while Bob still waits for Alice's; every flooded message
    arrives, in order."""
    async def scenario():
        alice = await login(shaped, "alice@localhost/flood")
        bob = await login(shaped, "bob@localhost/victim")
        carol = await login(shaped, "carol@localhost/calm")
        dave = await login(shaped, "dave@localhost/calm")
        bob_inbox, dave_inbox = Inbox(bob, "message"), Inbox(dave, "message")
        for number in range(200):
            alice.send_message(mto="bob@localhost/victim", mbody=f"flood {number}", mtype="chat")
        await bob_inbox.wait_for(lambda m: m["body"] == "flood 25")
        carol.send_message(mto="dave@localhost/calm", mbody="hello", mtype="chat")
        await dave_inbox.wait_for(lambda m: m["body"] == "hello", timeout=5)
        assert len(bob_inbox.items) < 200  # the flood is still being paced
        await bob_inbox.wait_for(lambda m: m["body"] == "flood 199", timeout=30)
        assert [m["body"] for m in bob_inbox.items] == [f"flood {n}" for n in range(200)]
        for client in (alice, bob, carol, dave):
            await logout(client)

    asyncio.run(scenario())
    assert "throttling c2s stream from" in shaped.log()
    assert shaped.log().count("throttling c2s stream from") == 1  # once per stream


def test_the_byte_shaper_pauses_reading_and_loses_nothing(tmp_path):
    with running(tmp_path, """
[limits.c2s]
bytes_per_second = 8192
burst_bytes = 16384
""") as proc:
        bob = bound_raw_session(proc, "bob", "r")
        alice = bound_raw_session(proc, "alice", "r")
        padding = "x" * 900
        alice.sendall("".join(f"<message to='bob@localhost/r' type='chat' id='m{n}'>"
                              f"<body>{n} {padding}</body></message>"
                              for n in range(60)).encode())  # ~60 KB: several seconds
        received = read_until(bob, b"<body>59 ", timeout=20)
        numbers = [int(n) for n in re.findall(rb"<body>(\d+) ", received)]
        assert numbers == list(range(60))
        assert "throttling c2s stream from" in proc.log()
        assert "bytes/s" in proc.log()
        alice.close()
        bob.close()


def test_subscription_requests_per_hour(tmp_path):
    """Three requests pass; the fourth is refused to the sender, not silently dropped."""
    with running(tmp_path, "[limits]\nsubscriptions_per_hour = 3\n") as proc:
        alice = bound_raw_session(proc, "alice", "r")
        for n, contact in enumerate(("bob", "carol", "dave", "bob")):
            alice.sendall(f"<presence type='subscribe' to='{contact}@localhost' "
                          f"id='s{n}'/>".encode())
        answer = read_until(alice, b"subscription requests an hour").replace(b'"', b"'")
        errors = re.findall(rb"<presence[^>]*type='error'[^>]*>", answer)
        assert len(errors) == 1 and b"id='s3'" in errors[0], answer
        assert b"<policy-violation" in answer and b"<error type='wait'" in answer
        alice.close()


# -- authentication abuse


def test_a_password_guesser_is_slowed_then_closed(tmp_path):
    """Failures from 127.0.0.6 answered after 0, 0.5, 1 s, then the stream ends (3 per
    stream); on a new stream the back-off goes on (2 s, then the cap, 4 s). Alice herself,
    who knows her password, logs in meanwhile faster than a failure would be answered."""
    with running(tmp_path, """
[limits]
auth_delay = 0.5
auth_max_delay = 4.0
sasl_failures_per_stream = 3
""") as proc:
        sock = tls_stream(proc, "127.0.0.6")
        features_after_tls(sock, proc)
        waits = []
        for guess in ("guess1", "guess2", "guess3"):
            started = time.monotonic()
            sock.sendall(plain("alice", guess).encode())
            answer = read_until(sock, b"</failure>")
            waits.append(time.monotonic() - started)
            assert b"<not-authorized" in answer
        assert waits[0] < waits[2]
        assert waits[1] >= 0.5 and waits[2] >= 1.0
        assert b"too many failed authentications" in read_until(sock, b"</stream:stream>")
        sock.close()

        sock = tls_stream(proc, "127.0.0.6")
        features_after_tls(sock, proc)
        started = time.monotonic()
        sock.sendall(plain("alice", "guess4").encode())
        read_until(sock, b"</failure>")
        assert time.monotonic() - started >= 2.0  # the doubling goes on across streams
        # an impatient guesser that does not wait for the answer is ended
        sock.sendall(plain("alice", "guess5").encode())
        sock.sendall(plain("alice", "guess6").encode())
        assert b"<policy-violation" in read_until(sock, b"</stream:stream>", timeout=10)
        sock.close()

        async def owner(proc):
            # a failure now would wait 4 s: the owner's success does not
            alice = await login(proc, "alice@localhost/home", mechanism="PLAIN", timeout=3.0)
            await logout(alice)

        asyncio.run(owner(proc))
        log = proc.log()
        # one line per failure answered: guesses 1-4, and guess 5 unless the stream ended
        # (guess 6) while its check was still running
        assert log.count("SASL failure with PLAIN for alice@localhost from 127.0.0.6") in (4, 5)
        for guess in ("guess1", "guess4", "guess5"):
            assert guess not in log


# -- liveness


def try_bind(proc, user: str, resource: str) -> bytes:
    """Log ``user`` in on a new stream and ask for ``resource``; the answer to the bind."""
    sock = tls_stream(proc)
    features_after_tls(sock, proc)
    sock.sendall(plain(user, PASSWORD).encode())
    read_until(sock, b"<success")
    features_after_tls(sock, proc)
    sock.sendall(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 f"<resource>{resource}</resource></bind></iq>".encode())
    answer = read_until(sock, b"</iq>")
    sock.close()
    return answer


def test_a_silent_session_is_pinged_then_cut(tmp_path):
    """A client that vanished (it reads nothing and answers nothing, as a half-open
    connection) is pinged, then cut: its session and its resource are released, so with
    max_resources = 1 the account can bind again. A client that answers stays."""
    with running(tmp_path, "[limits]\nping_after = 1\nping_timeout = 1\n",
                 c2s_extra="max_resources = 1") as proc:
        # XEP-0478: before authentication, idle-seconds is the negotiation deadline
        # (auth_timeout, 5 s here); after, the silence before a ping
        sock = tls_stream(proc)
        features = features_after_tls(sock, proc).replace(b'"', b"'")
        assert (b"<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>262144</max-bytes>"
                b"<idle-seconds>5</idle-seconds></limits>") in features
        sock.sendall(plain("carol", PASSWORD).encode())
        read_until(sock, b"<success")
        features = features_after_tls(sock, proc).replace(b'"', b"'")
        assert (b"<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>262144</max-bytes>"
                b"<idle-seconds>1</idle-seconds></limits>") in features
        sock.close()

        async def scenario(proc):
            alive = await login(proc, "bob@localhost/answers")  # slixmpp answers pings
            dead = bound_raw_session(proc, "alice", "gone")
            assert b"<resource-constraint" in await asyncio.to_thread(try_bind, proc, "alice",
                                                                      "second")
            # blocking reads in a thread: slixmpp's loop must run to answer its pings
            received = await asyncio.to_thread(read_until, dead, b"urn:xmpp:ping", 12)
            assert b"<iq" in received
            # no answer: the server gives up on the connection
            ended = await asyncio.to_thread(read_until, dead, b"</stream:stream>", 8)
            assert b"<connection-timeout" in ended
            await asyncio.sleep(4)  # two more sweeps: bob answered his pings
            sessions = (await asyncio.to_thread(proc.ctl, "sessions")).stdout
            assert "alice@localhost/gone" not in sessions
            assert "bob@localhost/answers" in sessions
            assert b"</jid>" in await asyncio.to_thread(try_bind, proc, "alice", "second")
            await logout(alive)
            dead.close()

        asyncio.run(scenario(proc))
        assert "alice@localhost/gone did not answer a ping" in proc.log()


# -- federation


def test_a_flooding_peer_server_is_throttled(tmp_path):
    from tests.integration.test_federation import A, B, pair, user

    a, b = pair(tmp_path, "secure", "secure")
    b.config.write_text(b.config.read_text()
                        + "[limits.s2s]\nbytes_per_second = 4096\nburst_bytes = 8192\n")
    assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()
    try:
        async def scenario():
            alice, _, _ = await user(a, f"alice@{A}/flood")
            bob, bob_messages, _ = await user(b, f"bob@{B}/home")
            padding = "y" * 600
            for number in range(60):  # ~45 KB: ten seconds at 4 KiB/s
                alice.send_message(mto=f"bob@{B}/home", mbody=f"{number} {padding}",
                                   mtype="chat")
            await bob_messages.wait_for(lambda m: m["body"].startswith("59 "), timeout=30)
            got = [int(m["body"].split()[0]) for m in bob_messages.items]
            assert got == list(range(60))
            for client in (alice, bob):
                client.disconnect()
                await asyncio.wait_for(client.disconnected, 10)

        asyncio.run(scenario())
        assert "throttling s2s stream from" in b.log()
    finally:
        assert a.stop() == 0 and b.stop() == 0
    assert "Traceback" not in a.log() + b.log()


# -- bounded output


def test_a_client_that_does_not_read_is_cut_and_the_sender_is_not_held_up(tmp_path):
    """Bob stops reading; Alice sends him ~20 MB. Once max_output_buffer (64 KiB) waits in
    the server for Bob beyond what the kernel holds, his stream ends; Alice's stream goes on
    and her later messages go to offline storage, none silently lost after the cut."""
    with running(tmp_path, """
[limits]
max_output_buffer = 65536
[limits.c2s]
bytes_per_second = 0
stanzas_per_second = 0
""") as proc:
        bob = tls_stream(proc)
        bob.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        features_after_tls(bob, proc)
        bob.sendall(plain("bob", PASSWORD).encode())
        read_until(bob, b"<success")
        features_after_tls(bob, proc)
        bob.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    b"<resource>slow</resource></bind></iq><presence/>")
        read_until(bob, b"</jid>")
        alice = bound_raw_session(proc, "alice", "r")
        body = "z" * 40_000
        deadline = time.monotonic() + 60
        sent = 0
        while "reads too slowly" not in proc.log() and time.monotonic() < deadline:
            alice.sendall("".join(f"<message to='bob@localhost' type='chat' id='m{sent + n}'>"
                                  f"<body>{body}</body></message>" for n in range(25)).encode())
            sent += 25
            alice.sendall(f"<iq type='get' id='p{sent}'><ping xmlns='urn:xmpp:ping'/></iq>"
                          .encode())
            read_until(alice, f"id='p{sent}'".encode())  # alice is answered all along
        assert "reads too slowly" in proc.log()
        assert "stream error policy-violation" in proc.log()
        time.sleep(0.5)
        sessions = proc.ctl("sessions").stdout
        assert "bob@localhost/slow" not in sessions and "alice@localhost/r" in sessions
        alice.sendall(b"<message to='bob@localhost' type='chat' id='after'>"
                      b"<body>after the cut</body></message>")
        alice.close()
        bob.close()
        time.sleep(0.5)
        sock = bound_raw_session(proc, "bob", "again")
        sock.sendall(b"<presence/>")
        assert b"after the cut" in read_until(sock, b"after the cut", timeout=10)
        sock.close()


def test_an_account_of_its_own_class_is_not_paced_like_the_others(tmp_path):
    with running(tmp_path, """
[limits.c2s]
stanzas_per_second = 5
burst_stanzas = 5
[limits.classes.bots]
stanzas_per_second = 0
[limits.accounts]
"alice@localhost" = "bots"
""") as proc:
        bob = bound_raw_session(proc, "bob", "r")
        alice = bound_raw_session(proc, "alice", "r")
        alice.sendall("".join(f"<message to='bob@localhost/r' type='chat'><body>bot {n}</body>"
                              "</message>" for n in range(60)).encode())
        received = read_until(bob, b"bot 59<", timeout=10)
        assert re.findall(rb"bot (\d+)<", received) == [str(n).encode() for n in range(60)]
        assert "throttling" not in proc.log()
        bob.sendall("".join(f"<message to='alice@localhost/r' type='chat'><body>person {n}"
                            "</body></message>" for n in range(8)).encode())
        read_until(alice, b"person 7<", timeout=10)
        assert "throttling c2s stream from" in proc.log()  # bob is a person: paced
        alice.close()
        bob.close()


def test_pings_keep_stream_management_counts_in_step(tmp_path):
    """The server's pings go through the session's filters like any stanza: a client with
    stream management counts them, and its acknowledgements match what the server sent."""
    from tests.integration.test_stream_management import login_with_sm

    with running(tmp_path, """
[limits]
ping_after = 1
ping_timeout = 2
[plugins.smacks]
request_after = 1
request_delay = 1
""") as proc:
        async def scenario(proc):
            client = await login_with_sm(proc, "alice@localhost/sm")
            pings = []

            def count(stanza):
                if stanza.xml.find("{urn:xmpp:ping}ping") is not None:
                    pings.append(stanza["id"])
                return stanza

            client.add_filter("in", count)
            await asyncio.sleep(6)
            assert pings, "no ping in 6 s"
            # stanzas the server counts: it asks for an acknowledgement, whose h includes
            # the pings the client handled (too high an h would end the stream)
            bob = await login(proc, "bob@localhost/talk")
            inbox = Inbox(client, "message")
            for number in range(3):
                bob.send_message(mto="alice@localhost/sm", mbody=f"after {number}", mtype="chat")
            await inbox.wait_for(lambda m: m["body"] == "after 2")
            await asyncio.sleep(3)
            await logout(bob)
            assert all(ping.startswith("xmppd-ping-") for ping in pings)
            sessions = (await asyncio.to_thread(proc.ctl, "sessions")).stdout
            assert "alice@localhost/sm" in sessions
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 10)

        asyncio.run(scenario(proc))
        assert "undefined-condition" not in proc.log()
        assert "did not answer a ping" not in proc.log()
