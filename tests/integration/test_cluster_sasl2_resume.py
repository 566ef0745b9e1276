"""XEP-0198 resumption inline in SASL2 (XEP-0388) on another node: the two real nodes of
test_cluster_resumption (twistd, one PostgreSQL, one Redis), raw SASL2 clients over real
TLS (test_sasl2's). A client logs in with SASL2 and Bind 2 on node a, enabling stream
management inline; its TCP connection is reset while messages are in flight, and its next
<authenticate/> on node b carries <resume/>: the <success/> says <resumed/>, every message
arrives exactly once. Then what fails as for an unknown id, the client binding at once in
the same <success/>: another account's id, an unknown one, a dead holder, a holder that
does not answer within the bounded wait."""

from __future__ import annotations

import signal
import time
import xml.etree.ElementTree as ET

import psycopg
import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.test_cluster import registry
from tests.integration.test_cluster_resumption import two_nodes, wait_for
from tests.integration.test_sasl2 import BIND2, SASL2, SM, Sasl2Client, bind2, q
from tests.integration.test_session_hibernation import wait_for_log
from tests.integration.test_stream_management import online, send_messages
from tests.scramclient import ScramClient

DELAY = "urn:xmpp:delay"
OTHER_AGENT = "0b9e7a51-6c2d-4f8e-8a31-7d5c4b3a2f10"


@pytest.fixture
def nodes(tmp_path):
    """The two nodes, with time to log in beyond the cluster's bounded wait (5 s; the
    harness gives 5 s, the default is 30)."""
    with two_nodes(tmp_path, auth_timeout=20.0) as (redis, a, b, dsn):
        yield redis, a, b, dsn


def offline_count(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        [(count,)] = connection.execute("SELECT COUNT(*) FROM offline_messages").fetchall()
    return count


def resume(previd: str, h: int) -> str:
    return f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>"


def phone_on(node) -> tuple[Sasl2Client, str, str]:
    """alice's phone: SASL2, Bind 2 with stream management inline; its JID and SM-ID."""
    phone = Sasl2Client(node)
    success = phone.scram(bind2("phone", f"<enable xmlns='{SM}' resume='true'/>"))
    assert success.tag == q(SASL2, "success"), ET.tostring(success)
    jid = success.find(q(SASL2, "authorization-identifier")).text
    enabled = success.find(q(BIND2, "bound")).find(q(SM, "enabled"))
    assert enabled.get("resume") == "true", ET.tostring(success)
    phone.element("features")
    return phone, jid, enabled.get("id")


def body(message: ET.Element) -> str:
    return message.find("{jabber:client}body").text


def read_bodies(client: Sasl2Client, last: str) -> list[ET.Element]:
    """The messages ``client`` reads up to the one whose body is ``last``."""
    messages = [client.element("message")]
    while body(messages[-1]) != last:
        messages.append(client.element("message"))
    return messages


def refused_then_bound(success: ET.Element, account: str) -> str:
    """<success/> with <failed><item-not-found/></failed> (no 'h': nothing known) and a
    session Bind 2 bound, as for an unknown id on one node; its JID."""
    assert success.tag == q(SASL2, "success"), ET.tostring(success)
    failed = success.find(q(SM, "failed"))
    assert failed is not None and failed.get("h") is None, ET.tostring(success)
    assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    assert success.find(q(SM, "resumed")) is None
    assert success.find(q(BIND2, "bound")) is not None, ET.tostring(success)
    jid = success.find(q(SASL2, "authorization-identifier")).text
    assert jid.startswith(f"{account}/"), jid
    return jid


def close(*clients) -> None:
    for client in clients:
        client.send("</stream:stream>")
        client.close()


def test_a_session_cut_on_one_node_resumes_inline_on_the_other_each_message_once(nodes):
    redis, a, b, dsn = nodes
    phone, jid, sm_id = phone_on(a)
    bob = online(a, "bob", "desk")  # on the holder's node: after the move, his mail crosses
    first = [f"m{n}" for n in range(1, 13)]
    send_messages(bob, first, to=jid)
    handled = [body(m) for m in read_bodies(phone, "m4")]  # her client processed these
    assert handled == ["m1", "m2", "m3", "m4"]
    phone.drop()  # a TCP reset with m5..m12 in flight: no close, no ack of anything
    wait_for_log(a, f"session {jid} hibernated after")
    later = ["m13", "m14"]
    send_messages(bob, later, to=jid)  # queued by the hibernating session on a

    again = Sasl2Client(b)  # the load balancer sent her to node b
    success = again.scram(resume(sm_id, len(handled)) + bind2("phone"))
    assert success.tag == q(SASL2, "success"), ET.tostring(success)
    resumed = success.find(q(SM, "resumed"))
    assert resumed is not None, ET.tostring(success)
    assert (resumed.get("previd"), resumed.get("h")) == (sm_id, "0")  # she sent nothing
    assert success.find(q(SM, "failed")) is None
    assert success.find(q(BIND2, "bound")) is None  # no bind once resumed
    assert success.find(q(SASL2, "authorization-identifier")).text == jid
    replayed = read_bodies(again, "m14")
    resent = [body(m) for m in replayed]
    assert handled + resent == first + later, (handled, resent)  # each once, in order
    assert all(m.find(q(DELAY, "delay")) is not None for m in replayed)
    after = again.seen[again.seen.index("success") + 1:]
    assert "features" not in after, after  # none after a resumption (XEP-0198 §7)

    # the registry routes her to node b now, for both nodes; node a moved, not ended, it
    wait_for(lambda: jid in registry(redis, "b") and jid not in registry(redis, "a"),
             "alice in b's registry", b)
    assert "handed over with" in a.log()
    assert f"session {jid} arrived from another node" in b.log()
    # new mail from node a crosses to b, and her acks and counts go on there
    time.sleep(0.3)  # the registry channel reached node a (as test_cluster settles)
    send_messages(bob, ["m15"], to=jid)
    assert [body(m) for m in read_bodies(again, "m15")] == ["m15"]
    again.send(f"<a xmlns='{SM}' h='{len(first + later) + 1}'/><r xmlns='{SM}'/>")
    assert again.element("a").get("h") == "0"
    close(again, bob)
    wait_for_log(b, f"session {jid} ended")
    assert f"session {jid} ended" not in a.log(), a.log()
    assert f"session {jid} moved away after" in a.log()
    assert "unacknowledged:" not in a.log() and "unacknowledged:" not in b.log()
    assert "offline storage" not in a.log()


def test_another_accounts_id_and_an_unknown_id_fail_inline_and_bind(nodes):
    redis, a, b, dsn = nodes
    phone, jid, sm_id = phone_on(a)
    mallory = Sasl2Client(b)
    success = mallory.scram(resume(sm_id, 0) + bind2("x"), agent=OTHER_AGENT,
                            scram=ScramClient("sha-256", "mallory", PASSWORD))
    mallory_jid = refused_then_bound(success, "mallory@localhost")
    mallory.element("features")  # a new session, so the features follow
    unknown = Sasl2Client(b)
    success = unknown.scram(resume("not-an-id-anyone-made", 0) + bind2("laptop"),
                            agent=OTHER_AGENT)
    laptop = refused_then_bound(success, "alice@localhost")
    unknown.element("features")
    wait_for(lambda: {mallory_jid, laptop} <= set(registry(redis, "b")), "the new sessions", b)
    # alice's phone never moved: still on node a, still hers
    phone.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert phone.element("iq").get("id") == "still"
    assert jid in registry(redis, "a")
    assert "handed over" not in a.log()
    close(phone, mallory, unknown)


def test_a_dead_holder_fails_inline_and_the_new_session_gets_the_mail(nodes):
    redis, a, b, dsn = nodes
    phone, jid, sm_id = phone_on(a)
    phone.drop()
    wait_for_log(a, f"session {jid} hibernated after")
    a.stop(signal.SIGKILL)  # its hibernated session dies with it
    wait_for(lambda: jid not in registry(redis, "a"), "a's sessions gone", b)
    bob = online(b, "bob", "desk")
    send_messages(bob, ["while you were away"], to=jid)  # kept offline
    again = Sasl2Client(b)
    success = again.scram(resume(sm_id, 0) + bind2("phone"))
    assert refused_then_bound(success, "alice@localhost") == jid  # the same device's JID
    again.element("features")
    again.send("<presence/>")
    assert [body(m) for m in read_bodies(again, "while you were away")] == [
        "while you were away"]
    close(again, bob)
    a.start()  # the fixture stops both nodes cleanly


def test_a_holder_silent_beyond_the_wait_fails_inline_and_the_late_session_yields(nodes):
    redis, a, b, dsn = nodes
    phone, jid, sm_id = phone_on(a)
    bob = online(a, "bob", "desk")
    send_messages(bob, ["queued"], to=jid)
    assert [body(m) for m in read_bodies(phone, "queued")] == ["queued"]
    phone.drop()
    wait_for_log(a, f"session {jid} hibernated after")
    a.process.send_signal(signal.SIGSTOP)  # subscribed, so awaited, but answering nothing
    try:
        again = Sasl2Client(b)
        success = again.scram(resume(sm_id, 0) + bind2("phone"))  # waits for the bound
        assert refused_then_bound(success, "alice@localhost") == jid
        again.element("features")
    finally:
        a.process.send_signal(signal.SIGCONT)
    # node a hears the question late and hands the session over; b keeps the one its
    # client bound meanwhile and the late one's unacknowledged message goes offline
    wait_for_log(b, f"session {jid} came from another node after its client bound again")
    assert f"session {jid} moved away after" in a.log()
    wait_for(lambda: offline_count(dsn) == 1, "the late session's message offline", b)
    again.send("<presence/>")
    assert [body(m) for m in read_bodies(again, "queued")] == ["queued"]
    close(again, bob)
