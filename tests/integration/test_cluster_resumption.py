"""XEP-0198 resumption on another node: two real xmppd nodes (twistd) on one PostgreSQL and
one Redis, raw clients over real TLS. A client on node a enables stream management, its TCP
connection is reset while messages are in flight, and it resumes on node b: every message
exactly once, the registry then routes to b (also from a), and node a told nobody the
session ended. Then the refusals: another account's id and an unknown one."""

from __future__ import annotations

import re
import signal
import time
from contextlib import contextmanager

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_cluster import HEARTBEAT, registry, stop_cleanly
from tests.integration.test_session_hibernation import authenticated, drop, wait_for_log
from tests.integration.test_stream_management import SM, bodies, enable, online, send_messages
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql

ALICE = "alice@localhost/phone"
PLUGINS = '"disco", "ping", "roster", "presence", "offline", "carbons", "csi", "smacks"'


def node_config(dsn: str, redis_url: str, node: str) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{node}"\nheartbeat = {HEARTBEAT}\n'
            f"[plugins]\nenabled = [{PLUGINS}]\n")


@contextmanager
def two_nodes(tmp_path, auth_timeout: float = 5.0):
    """Redis, node a, node b and the database's DSN; alice, bob and mallory exist."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    dsn = postgresql().fresh_database()
    a, b = (XmppdProcess(tmp_path / node, extra=node_config(dsn, redis.url, node),
                         auth_timeout=auth_timeout) for node in "ab")
    for user in ("alice", "bob", "mallory"):
        assert a.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    a.start()
    b.start()
    try:
        yield redis, a, b, dsn
        stop_cleanly((a, b))
    finally:
        for node in (a, b):
            node.stop(signal.SIGKILL)
        redis.stop()


@pytest.fixture
def nodes(tmp_path):
    with two_nodes(tmp_path) as (redis, a, b, _dsn):
        yield redis, a, b


def wait_for(predicate, what: str, proc: XmppdProcess) -> None:
    """Poll ``predicate`` for up to 10 s (the registry crossing Redis)."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"never {what}:\n{proc.log()}"
        time.sleep(0.05)


def test_a_session_cut_on_one_node_resumes_on_the_other_with_each_message_once(nodes):
    redis, a, b = nodes
    alice = online(a, "alice", "phone")
    sm_id = enable(alice)
    bob = online(a, "bob", "desk")  # on the holder's node: after the move, his mail crosses
    first = [f"m{n}" for n in range(1, 13)]
    send_messages(bob, first)
    got = alice.read_until(b"<body>m4</body>")
    handled = bodies(got)  # what her client processed; the rest is in flight
    assert handled[:4] == ["m1", "m2", "m3", "m4"], got
    drop(alice)  # a TCP reset: no </stream:stream>, no ack of anything
    wait_for_log(a, f"session {ALICE} hibernated after")
    later = ["m13", "m14"]
    send_messages(bob, later)  # queued by the hibernating session on a

    again = authenticated(b, "alice")  # the load balancer sent her to node b
    again.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='{len(handled)}'/>")
    replayed = again.read_until(b"<body>m14</body>", timeout=10)
    assert re.search(rb"<resumed[^>]*\bh=[\"']0[\"']", replayed), replayed
    assert re.search(rf"<resumed[^>]*\bprevid=[\"']{re.escape(sm_id)}[\"']".encode(),
                     replayed), replayed
    resent = bodies(replayed)
    assert handled + resent == first + later, (handled, resent)  # each once, in order
    assert b"urn:xmpp:delay" in replayed

    # the registry routes alice/phone to node b now, for both nodes
    wait_for(lambda: ALICE in registry(redis, "b") and ALICE not in registry(redis, "a"),
             "alice in b's registry", b)
    assert "handed over with" in a.log()
    assert f"session {ALICE} arrived from another node" in b.log()
    assert re.search(rf"session {ALICE} resumed from 127\.0\.0\.1:\d+ after hibernating",
                     b.log())
    # new mail from node a crosses to b, and her acks and counts go on there
    time.sleep(0.3)  # the registry channel reached node a (as test_cluster settles)
    send_messages(bob, ["m15"])
    assert bodies(again.read_until(b"<body>m15</body>")) == resent + ["m15"]
    again.send(f"<a xmlns='{SM}' h='{len(first + later) + 1}'/><r xmlns='{SM}'/>")
    assert re.search(rb"<a [^>]*\bh=[\"']0[\"']", again.read_until(b"<a ")), again.received
    again.send("</stream:stream>")
    again.read_until_closed()
    bob.send("</stream:stream>")
    bob.read_until_closed()
    # node a told nobody she left and kept nothing offline; nothing was left unacknowledged
    assert f"session {ALICE} ended" not in a.log(), a.log()
    assert f"session {ALICE} moved away after" in a.log()
    assert "unacknowledged:" not in a.log() and "unacknowledged:" not in b.log()
    assert "offline storage" not in a.log()


def test_another_accounts_id_and_an_unknown_id_fail_on_the_other_node(nodes):
    redis, a, b = nodes
    alice = online(a, "alice", "phone")
    sm_id = enable(alice)
    mallory = authenticated(b, "mallory")
    mallory.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
    refused = mallory.read_until(b"</failed>", timeout=10)
    assert b"item-not-found" in refused and b" h=" not in refused, refused
    mallory.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>x</resource></bind></iq>")
    assert b"mallory@localhost/x" in mallory.read_until(b"</iq>")  # she may still bind
    unknown = authenticated(b, "alice")
    unknown.send(f"<resume xmlns='{SM}' previd='not-an-id-anyone-made' h='0'/>")
    refused = unknown.read_until(b"</failed>", timeout=10)
    assert b"item-not-found" in refused, refused
    # alice's session never moved: still on node a, still hers
    alice.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert b"id='still'" in alice.read_until(b"id='still'")
    assert ALICE in registry(redis, "a")
    assert "handed over" not in a.log()
    for client in (alice, mallory, unknown):
        client.send("</stream:stream>")
        client.read_until_closed()


def test_a_dead_holder_means_item_not_found_and_the_client_binds_anew(nodes):
    redis, a, b = nodes
    alice = online(a, "alice", "phone")
    sm_id = enable(alice)
    drop(alice)
    wait_for_log(a, f"session {ALICE} hibernated after")
    a.stop(signal.SIGKILL)  # its hibernated session dies with it
    again = authenticated(b, "alice")
    again.send(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>")
    refused = again.read_until(b"</failed>", timeout=10)
    assert b"item-not-found" in refused, refused
    # what is sent to her full JID meanwhile is kept offline (a's inbox, rescued, or b at
    # once for a node seen dead), and reaches her new session on b
    wait_for(lambda: ALICE not in registry(redis, "a"), "a's sessions gone", b)
    bob = online(b, "bob", "desk")
    send_messages(bob, ["while you were away"], to=ALICE)
    again.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>phone</resource></bind></iq><presence/>")
    assert bodies(again.read_until(b"<body>while you were away</body>", timeout=10)) == [
        "while you were away"]
    for client in (again, bob):
        client.send("</stream:stream>")
        client.read_until_closed()
    a.start()  # the fixture stops both nodes cleanly
