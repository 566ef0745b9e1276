"""XEP-0455 against a real server: slixmpp's xep_0455 finds the status address in the
server's disco#info and fetches the status file over HTTP (a web server beside xmppd serves
the file xmppd writes); ``xmppdctl outage set|clear`` through the control socket changes
it, and the outage survives a restart."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import threading

import pytest

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_ctl_live import ctl, wait_for_control_socket


@pytest.fixture
def web(tmp_path):
    """A plain HTTP server for the directory xmppd writes the status file in."""
    directory = tmp_path / "www"
    directory.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield directory, f"http://127.0.0.1:{httpd.server_address[1]}/status.json"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(tmp_path, web):
    directory, url = web
    extra = (f'[plugins]\nenabled = ["disco", "ping", "outage"]\n[plugins.outage]\n'
             f'addresses = ["{url}"]\nstatus_file = "{directory / "status.json"}"\n')
    yield from serve(XmppdProcess(tmp_path / "xmppd", extra=extra))


def test_slixmpp_finds_and_reads_the_status(server, web):
    from slixmpp.plugins.xep_0455 import XEP_0455

    directory, url = web
    wait_for_control_socket(server)

    async def scenario():
        client = await login(server, "alice@localhost/phone")
        client.register_plugin("xep_0128")
        client.register_plugin("xep_0455")
        addresses = await client.plugin["xep_0455"].get_external_status_addresses(timeout=10)
        assert addresses == [url]
        assert await XEP_0455.fetch_status(addresses) is None  # {}: no outage

        done = await ctl(server, "outage", "set", "planned", "Upgrade, back soon",
                         "2026-12-06T08:00:00Z", "2026-12-06T09:00:00Z")
        assert done.returncode == 0, done.stderr
        assert "planned: yes" in done.stdout
        status = await XEP_0455.fetch_status(addresses)
        assert status.planned is True
        assert status.beginning.isoformat() == "2026-12-06T08:00:00+00:00"
        assert status.expected_end.isoformat() == "2026-12-06T09:00:00+00:00"
        assert status.message == {"default": "Upgrade, back soon"}

        refused = await ctl(server, "outage", "set", "someday", "x")
        assert refused.returncode != 0 and "KIND" in refused.stderr
        assert (await XEP_0455.fetch_status(addresses)).planned is True  # unchanged

        cleared = await ctl(server, "outage", "clear")
        assert cleared.returncode == 0, cleared.stderr
        assert json.loads((directory / "status.json").read_text()) == {}
        assert await XEP_0455.fetch_status(addresses) is None
        await logout(client)

    asyncio.run(scenario())


def test_the_outage_survives_a_restart(server, web):
    directory, _ = web
    wait_for_control_socket(server)
    assert server.ctl("outage", "set", "unplanned", "Disk full").returncode == 0
    published = json.loads((directory / "status.json").read_text())
    assert published["planned"] is False and published["message"] == {"default": "Disk full"}
    assert server.stop() == 0
    (directory / "status.json").unlink()
    server.start()
    assert json.loads((directory / "status.json").read_text()) == published
    wait_for_control_socket(server)
    shown = server.ctl("outage", "show")
    assert shown.returncode == 0 and "Disk full" in shown.stdout, shown.stderr
