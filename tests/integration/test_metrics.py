"""OpenMetrics (the metrics plugin) scraped from a real server and parsed with
prometheus_client's OpenMetrics parser: sessions by transport (a slixmpp client on TCP, a
WebSocket client), stanzas by direction and kind, failed authentications, routing and
storage latency histograms, offline queues, the process's memory and CPU."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.integration.conftest import LoginFailed, login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_websocket import WsClient

DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana-dashboard.json"


@pytest.fixture
def server(tmp_path):
    yield from metrics_server(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request, tmp_path):
    """A server on each storage engine (the storage probe is in each)."""
    storage = ""
    if request.param == "postgresql":
        from tests.integration.test_postgresql import postgresql_config
        from tests.storage_engines import postgresql
        storage = postgresql_config(postgresql().fresh_database())
    yield from metrics_server(tmp_path, storage)


def metrics_server(tmp_path, storage: str = ""):
    metrics_port, http_port = free_port(), free_port()
    proc = XmppdProcess(tmp_path, extra=storage + f"""
[http]
listen = ["tcp:{http_port}:interface=127.0.0.1"]
https = []

[plugins]
enabled = ["disco", "ping", "roster", "presence", "offline", "websocket", "metrics"]

[plugins.metrics]
listen = "tcp:{metrics_port}:interface=127.0.0.1"
""")
    proc.metrics_port, proc.http_port = metrics_port, http_port
    yield from serve(proc)


def dashboard_series() -> set[str]:
    """The series etc/grafana-dashboard.json queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\b(?:xmppd|process)_\w+", target["expr"])}


def scrape(proc: XmppdProcess) -> dict:
    """The samples, as {(name, labels as a sorted tuple): value}, in OpenMetrics."""
    request = urllib.request.Request(f"http://127.0.0.1:{proc.metrics_port}/metrics",
                                     headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
        text = answer.read().decode()
    assert text.endswith("# EOF\n")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_scrape(server):
    async def scenario():
        before = scrape(server)
        assert before[("xmppd_c2s_sessions", (("transport", "tcp"),))] == 0
        alice = await login(server, "alice@localhost")
        async with connect(f"ws://127.0.0.1:{server.http_port}/xmpp-websocket",
                           subprotocols=["xmpp"]) as ws:
            bob = WsClient(ws)
            await bob.login("bob")
            with pytest.raises(LoginFailed):
                await login(server, "bob@localhost", "not bob's password")
            for n in range(40):  # one in 16 routed stanzas is timed
                alice.send_message(mto="bob@localhost/web", mbody=f"counted {n}", mtype="chat")
            for _ in range(40):
                await bob.recv()
            samples = scrape(server)
            assert samples[("xmppd_c2s_sessions", (("transport", "tcp"),))] == 1
            assert samples[("xmppd_c2s_sessions", (("transport", "websocket"),))] == 1
            sent = (("direction", "in"), ("kind", "message"))
            got = (("direction", "out"), ("kind", "message"))
            assert samples[("xmppd_c2s_stanzas_total", sent)] >= 1
            assert samples[("xmppd_c2s_stanzas_total", got)] >= 1
            logins = (("mechanism", "SCRAM-SHA-256"),)
            assert samples[("xmppd_c2s_logins_total", logins)] == 2
            failed = (("condition", "not-authorized"), ("mechanism", "SCRAM-SHA-256"))
            assert samples[("xmppd_c2s_auth_failures_total", failed)] == 1
            assert_histogram(samples, "xmppd_routing_seconds", ("kind", "message"))
            assert_histogram(samples, "xmppd_storage_seconds", ("operation", "read"))
            assert samples[("process_resident_memory_bytes", ())] > 10_000_000
            assert samples[("process_cpu_seconds_total", ())] > 0
            # every series the sample Grafana dashboard asks for exists (but federation's,
            # which needs two servers: test_federation_links)
            asked = dashboard_series() - {"xmppd_s2s_links"}
            assert asked and asked <= {name for name, _labels in samples}, asked
        await logout(alice)
        for _ in range(50):
            samples = scrape(server)
            if samples[("xmppd_c2s_sessions", (("transport", "tcp"),))] == 0:
                break
            await asyncio.sleep(0.1)
        assert samples[("xmppd_c2s_sessions", (("transport", "websocket"),))] == 0
        assert samples[("xmppd_c2s_sessions", (("transport", "tcp"),))] == 0

    asyncio.run(scenario())
    with pytest.raises(OSError):  # only the /metrics page
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/other", timeout=5)


def assert_histogram(samples: dict, name: str, label: tuple[str, str]) -> None:
    """At least one observation, every bucket cumulative, +Inf holding them all."""
    buckets = sorted((float(dict(labels)["le"]), value) for (series, labels), value
                     in samples.items() if series == f"{name}_bucket" and label in labels)
    count = samples[(f"{name}_count", (label,))]
    assert count >= 1, (name, label)
    assert buckets[-1] == (float("inf"), count)
    assert [value for _le, value in buckets] == sorted(value for _le, value in buckets)
    assert 0 < samples[(f"{name}_sum", (label,))] < count * 10


def test_offline_queues_are_counted_in_storage(any_storage):
    """Messages for an offline account show in the gauges (and the write latency), and
    leave them once delivered, within the few seconds the count is cached; on SQLite and
    on PostgreSQL (whose reads run on threads: the page waits for the count)."""
    server = any_storage

    async def scenario():
        alice = await login(server, "alice@localhost")
        for n in range(3):
            alice.send_message(mto="bob@localhost", mbody=f"kept {n}", mtype="chat")
        await alice.plugin["xep_0199"].ping("localhost")  # handled after the messages
        samples = scrape(server)
        assert samples[("xmppd_offline_messages", ())] == 3
        assert samples[("xmppd_offline_queues", ())] == 1
        assert_histogram(samples, "xmppd_storage_seconds", ("operation", "write"))
        bob = await login(server, "bob@localhost")
        bob.send_presence()  # offline messages come with the initial presence
        for _ in range(100):  # the count is cached a few seconds, then read again
            samples = scrape(server)
            if samples[("xmppd_offline_messages", ())] == 0:
                break
            await asyncio.sleep(0.1)
        assert samples[("xmppd_offline_messages", ())] == 0
        assert samples[("xmppd_offline_queues", ())] == 0
        await logout(alice)
        await logout(bob)

    asyncio.run(scenario())


def test_federation_links(tmp_path):
    """Two federating servers: A's page counts its authenticated links by direction and by
    how the peer proved its domain."""
    from tests.integration.test_federation import A, B, chat_across, close, pair

    a, b = pair(tmp_path, "secure", "secure")
    port = free_port()
    a.config.write_text(a.config.read_text().replace(
        'enabled = ["disco", "ping", "roster", "presence", "offline"]',
        'enabled = ["disco", "ping", "roster", "presence", "offline", "metrics"]\n'
        f'[plugins.metrics]\nlisten = "tcp:{port}:interface=127.0.0.1"'))
    a.metrics_port = port
    assert a.ctl("adduser", f"alice@{A}", "correct horse battery staple").returncode == 0
    assert b.ctl("adduser", f"bob@{B}", "correct horse battery staple").returncode == 0
    a.start()
    b.start()
    try:
        assert not any(name == "xmppd_s2s_links" for name, _ in scrape(a))
        asyncio.run(_chat(a, b, chat_across, close))
        samples = scrape(a)
        links = {labels: value for (name, labels), value in samples.items()
                 if name == "xmppd_s2s_links"}
        assert links[(("auth", "certificate"), ("direction", "outgoing"))] >= 1, links
        assert links[(("auth", "certificate"), ("direction", "incoming"))] >= 1, links
        assert "xmppd_s2s_links" in dashboard_series()
    finally:
        assert a.stop() == 0 and b.stop() == 0
    assert "Traceback" not in a.log() + b.log()


async def _chat(a, b, chat_across, close) -> None:
    await close(*await chat_across(a, b))
