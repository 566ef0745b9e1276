"""Keep ``make bench`` from rotting: its quick mode against xmppd alone, the modern profile
against xmppd and ejabberd, and its arithmetic.

Not a performance test: nothing here is timed against a threshold. The quick run only has to
finish and produce sane numbers (positive rates, no lost messages, every contact reached).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.ejabberd import piefxis
from bench.loadgen import SM_REQUEST, StreamAcks
from bench.profile import summarize_collapsed
from bench.stats import percentile, summarize

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_against_xmppd_produces_sane_numbers(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--servers", "xmppd", "--no-pin", "--no-profile",
         "--output", str(output)],
        cwd=ROOT, env={**os.environ, "BENCH_QUICK": "1"}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report["quick"] is True
    assert report["problems"] == {"xmppd": []}
    xmppd = report["results"]["xmppd"]

    def median(workload: str, metric: str) -> float:
        return xmppd[workload][metric]["median"]

    for workload in ("login_scram", "login_plain", "login_scram_notls", "ws_login_scram"):
        assert median(workload, "logins_per_s") > 0
        assert 0 < median(workload, "login_p50_ms") <= median(workload, "login_p99_ms")
        assert median(workload, "errors") == 0
    for workload in ("messages", "ws_messages"):  # over TCP, over WebSocket
        assert median(workload, "msgs_per_s") > 0
        assert median(workload, "latency_p99_ms") > 0
        assert median(workload, "latency_lost") == 0
    assert median("memory", "rss_idle_kib") > 0
    assert median("memory", "rss_20_kib") >= median("memory", "rss_idle_kib")
    assert median("fanout", "deliveries_per_s") > 0
    assert median("fanout", "missing") == 0
    assert median("muc", "room_copies_per_s") >= median("muc", "room_msgs_per_s") > 0
    assert median("muc", "room_missing") == 0
    # The table names every headline row, with xmppd's median and no Prosody column.
    labels = [row["label"] for row in report["table"]]
    assert "Logins/s, SCRAM-SHA-256 over STARTTLS" in labels
    assert all("prosody" not in row for row in report["table"])
    assert "| Logins/s, SCRAM-SHA-256 over STARTTLS" in result.stdout


def test_quick_bench_modern_profile_with_ejabberd(tmp_path):
    """The modern profile (SM acks, carbons, CSI, MAM) against xmppd and ejabberd, on the two
    workloads that move stanzas (ejabberd takes some 10 s per fresh start: the full quick run
    stays xmppd-only)."""
    from tests.interop import ejabberd

    assert ejabberd.available(), ejabberd.SKIP_REASON
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--servers", "xmppd,ejabberd", "--profile", "modern",
         "--workloads", "messages,fanout", "--no-pin", "--no-profile", "--output", str(output)],
        cwd=ROOT, env={**os.environ, "BENCH_QUICK": "1"}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report["server_profiles"] == ["modern"]
    assert report["problems"] == {"xmppd": [], "ejabberd": []}
    for server in ("xmppd", "ejabberd"):
        results = report["by_profile"]["modern"]["results"][server]
        assert results["messages"]["msgs_per_s"]["median"] > 0
        assert results["messages"]["latency_lost"]["median"] == 0
        assert results["fanout"]["missing"]["median"] == 0
    assert "xmppd/ejabberd" in result.stdout


def test_quick_scaling_workloads_against_xmppd(tmp_path):
    """bench/scaling.py's idle sessions (several devices per account, keepalive rounds that
    must all be answered) and the presence broadcast, tiny; and they refuse company."""
    output = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench.run", "--servers", "xmppd", "--no-pin",
               "--no-profile", "--output", str(output), "--workloads"]
    env = {**os.environ, "BENCH_QUICK": "1"}
    result = subprocess.run([*command, "idle_sessions,broadcast"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report["problems"] == {"xmppd": []}
    xmppd = report["results"]["xmppd"]
    idle = xmppd["idle_sessions"]
    for level in report["plan"]["memory_levels"]:
        assert idle[f"kib_per_session_{level}"]["median"] > 0
        assert idle[f"keepalive_missing_{level}"]["median"] == 0
        assert idle[f"keepalive_us_{level}"]["median"] >= 0
    assert xmppd["broadcast"]["missing"]["median"] == 0
    assert "| RSS with 40 idle sessions (KiB)" in result.stdout
    mixed = subprocess.run([*command, "memory,idle_sessions"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert mixed.returncode != 0 and "run on their own" in mixed.stderr


def test_percentile_interpolates_between_ranks():
    assert percentile([], 99) == 0.0
    assert percentile([5.0], 50) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99.0
    assert summarize([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                    "values": [3.0, 1.0, 2.0]}


def test_profile_summary_attributes_self_time_to_the_innermost_known_layer():
    collapsed = "\n".join([
        "<module> (twistd:8);doRead (twisted/internet/tcp.py:250);"
        "dataReceived (twisted/protocols/tls.py:300);recv (OpenSSL/SSL.py:2000) 6",
        "<module> (twistd:8);_parse (xmppd/xml/parser.py:217);"
        "__init__ (twisted/words/xish/domish.py:500) 3",
        "<module> (twistd:8);select (unknown.py:1) 1",
        "<module> (twistd:8);doPoll (twisted/internet/epollreactor.py:10);"
        "untilConcludes (twisted/python/util.py:5) 7",
        "_bootstrap (threading.py:1);Condition.wait (threading.py:320) 2",
        "garbage line",
    ])
    summary = summarize_collapsed(collapsed)
    assert summary["samples"] == 10
    assert summary["idle_samples"] == 9
    assert dict(summary["layers"]) == {"TLS (pyOpenSSL, Twisted's TLS protocol)": 0.6,
                                       "XML parsing (expat, building elements)": 0.3,
                                       "other": 0.1}
    assert summary["functions"][0] == ("recv (OpenSSL/SSL.py)", 0.6)
    assert ("__init__ (twisted/words/xish/domish.py)", 0.3) in summary["functions"]


def test_stream_acks_count_stanzas_across_chunks_and_answer_requests():
    acks = StreamAcks()
    # a message split inside its opening tag, a self-closing presence, an iq
    assert acks.received(b"<mess") == b""
    assert acks.received(b"age to='a'><body>hi</body></message><presence/><iq type='result' "
                         b"id='x'/>") == b""
    assert acks.handled == 3
    # a carbon: one stanza though two <message> openings; the server's <r/> split in two
    assert acks.received(b"<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:"
                         b"xmpp:forward:0'><message to='b'/></forwarded></sent></message><r") == b""
    assert acks.handled == 4
    assert acks.received(b" xmlns='urn:xmpp:sm:3'/>") == b"<a xmlns='urn:xmpp:sm:3' h='4'/>"
    # our own <r/> after every 5 stanzas sent, counted across sends
    assert acks.sent(b"<message to='a'/>" * 3) == b""
    assert acks.sent(b"<message to='a'/><presence/>") == SM_REQUEST
    assert acks.sent(b"<iq type='get' id='p'/>") == b""


def test_ejabberd_accounts_carry_the_same_scram_keys_and_the_hub_roster():
    import base64
    import xml.etree.ElementTree as ET

    from bench.accounts import _SALT

    root = ET.fromstring(piefxis("localhost", 3, 2))
    pie = "{urn:xmpp:pie:0}"
    users = root.findall(f"{pie}host/{pie}user")
    assert [user.get("name") for user in users] == ["u0", "u1", "u2", "hub"]
    scram = users[0].find("{urn:xmpp:pie:0#scram}scram-credentials")
    assert scram.get("mechanism") == "SCRAM-SHA-256"
    assert scram.findtext("{urn:xmpp:pie:0#scram}iter-count") == "10000"
    salt = scram.findtext("{urn:xmpp:pie:0#scram}salt")
    assert base64.b64decode(base64.b64decode(salt)) == _SALT  # ejabberd's double base64

    def contacts(user):
        return [item.get("jid") for item in user.iter("{jabber:iq:roster}item")]

    assert contacts(users[0]) == contacts(users[1]) == ["hub@localhost"]
    assert contacts(users[2]) == []
    assert contacts(users[3]) == ["u0@localhost", "u1@localhost"]
