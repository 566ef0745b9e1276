"""OpenMetrics (the metrics plugin) scraped from a real server and parsed with
prometheus_client's OpenMetrics parser: sessions by transport (a slixmpp client on TCP, a
WebSocket client), stanzas by direction and kind, the process's memory and CPU."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_websocket import WsClient

DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana-dashboard.json"


@pytest.fixture
def server(tmp_path):
    metrics_port, http_port = free_port(), free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[http]
listen = ["tcp:{http_port}:interface=127.0.0.1"]
https = []

[plugins]
enabled = ["disco", "ping", "roster", "presence", "websocket", "metrics"]

[plugins.metrics]
listen = "tcp:{metrics_port}:interface=127.0.0.1"
""")
    proc.metrics_port, proc.http_port = metrics_port, http_port
    yield from serve(proc)


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
            alice.send_message(mto="bob@localhost/web", mbody="counted", mtype="chat")
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
            assert samples[("process_resident_memory_bytes", ())] > 10_000_000
            assert samples[("process_cpu_seconds_total", ())] > 0
            # every series the sample Grafana dashboard asks for exists
            dashboard = json.loads(DASHBOARD.read_text())
            asked = {name for panel in dashboard["panels"] for target in panel["targets"]
                     for name in re.findall(r"\b(?:xmppd|process)_\w+", target["expr"])}
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
