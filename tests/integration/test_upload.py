"""XEP-0363 HTTP file upload against a real server: slixmpp's xep_0363 finds the service and
asks for slots; the file goes up and comes back over HTTPS (urllib, checking the server's
certificate); oversize and over-quota requests get the XEP's errors; a PUT with a wrong
token, a wrong size, a second PUT and a too large body are refused; the CORS preflight is
answered; files are cached privately, never beyond their expiry, and not served after it."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from slixmpp.exceptions import IqError

from tests.integration.conftest import assert_log_for_admins, login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port

NS = "urn:xmpp:http:upload:0"
MAX = 2000
QUOTA = 3000


def upload_server(tmp_path, upload_extra: str = ""):
    """For fixtures: a server with the upload plugin on HTTPS, ``upload_extra`` added to
    [plugins.upload]; its log checked after."""
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[http]
https = ["tcp:{port}:interface=127.0.0.1"]

[plugins]
enabled = ["disco", "ping", "roster", "presence", "upload"]

[plugins.upload]
max_file_size = {MAX}
quota = {QUOTA}
{upload_extra}
""")
    proc.http_port = port
    yield from serve(proc)
    log = proc.log()
    assert "Bearer" not in log and "/upload/" not in log, log
    assert_log_for_admins(log)


@pytest.fixture
def server(tmp_path):
    yield from upload_server(tmp_path)


@pytest.fixture
def short_lived(tmp_path):
    """Files expire 3 s after their slot; the clean-up runs only at the start."""
    yield from upload_server(tmp_path, "expire_after = 3\ncleanup_interval = 3600\n")


def cache_directives(headers: dict) -> dict[str, str]:
    """Cache-Control as {directive: value}."""
    parts = (part.strip().partition("=") for part in headers["Cache-Control"].split(","))
    return {name.lower(): value for name, _, value in parts}


def https(proc: XmppdProcess, method: str, url: str, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request with urllib, the server's certificate as the only CA."""
    context = ssl.create_default_context(cafile=str(proc.cert))
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def request_slot(client, size: int, name: str = "cat.png", ctype: str = "image/png"):
    answer = await client.plugin["xep_0363"].request_slot(
        "upload.localhost", name, size, ctype, timeout=10)
    slot = answer["http_upload_slot"]
    headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
    return slot["put"]["url"], headers, slot["get"]["url"]


def test_upload_a_file_and_get_it_back(server):
    data = bytes(range(256)) * 6  # 1536 bytes

    async def scenario():
        alice = await login(server, "alice@localhost/phone")
        alice.register_plugin("xep_0363")
        info = await alice.plugin["xep_0363"].find_upload_service(timeout=10)
        assert str(info["from"]) == "upload.localhost"
        form = [f for f in info["disco_info"].iterables
                if f["values"].get("FORM_TYPE") == [NS]][0]
        assert form["values"]["max-file-size"] == str(MAX)

        put, headers, get = await request_slot(alice, len(data), "a cat.png")
        assert put == get and put.startswith(f"https://localhost:{server.http_port}/upload/")
        assert put.endswith("/a%20cat.png") and list(headers) == ["Authorization"]
        status, _, _ = await asyncio.to_thread(
            https, server, "PUT", put, data, {**headers, "Content-Type": "image/png"})
        assert status == 201
        status, answer, body = await asyncio.to_thread(https, server, "GET", get)
        assert (status, body) == (200, data)
        assert answer["Content-Type"] == "image/png"
        assert answer["Content-Length"] == str(len(data))
        assert answer["Content-Disposition"] == "inline; filename*=UTF-8''a%20cat.png"
        assert answer["Access-Control-Allow-Origin"] == "*"
        assert answer["X-Content-Type-Options"] == "nosniff"
        # no shared cache keeps it; the downloader's at most until it expires (7 days)
        cache = cache_directives(answer)
        assert "private" in cache and "public" not in cache and "immutable" in cache, cache
        assert 604800 - 600 < int(cache["max-age"]) <= 604800, cache
        status, answer, body = await asyncio.to_thread(https, server, "GET", get, None,
                                                       {"Range": "bytes=10-19"})
        assert (status, body, answer["Content-Range"]) == (206, data[10:20],
                                                           f"bytes 10-19/{len(data)}")
        # one PUT per slot
        status, _, _ = await asyncio.to_thread(
            https, server, "PUT", put, b"x" * len(data), {**headers, "Content-Type": "image/png"})
        assert status == 409
        status, _, body = await asyncio.to_thread(https, server, "GET", get)
        assert (status, body) == (200, data)
        # another name on the same slot is nothing
        status, _, _ = await asyncio.to_thread(https, server, "GET", get + "x")
        assert status == 404
        await logout(alice)

    asyncio.run(scenario())


def test_a_file_is_cached_privately_until_it_expires_and_not_served_after(short_lived):
    """Cache-Control over real HTTPS: private, and a max-age within the file's 3 s; once
    they are over, GET and HEAD are 404 although the file is still on disk (the clean-up
    has not run)."""
    data = b"short-lived"

    async def scenario():
        alice = await login(short_lived, "alice@localhost/phone")
        alice.register_plugin("xep_0363")
        put, headers, get = await request_slot(alice, len(data), "note.txt", "text/plain")
        expires = time.monotonic() + 3  # the slot was made before this
        status, _, _ = await asyncio.to_thread(
            https, short_lived, "PUT", put, data, {**headers, "Content-Type": "text/plain"})
        assert status == 201
        status, answer, body = await asyncio.to_thread(https, short_lived, "GET", get)
        assert (status, body) == (200, data)
        cache = cache_directives(answer)
        assert "private" in cache and "public" not in cache, cache
        assert 0 <= int(cache["max-age"]) <= 3, cache
        await asyncio.sleep(max(0.0, expires - time.monotonic()) + 0.2)
        for method in ("GET", "HEAD"):
            status, _, _ = await asyncio.to_thread(https, short_lived, method, get)
            assert status == 404, method
        stored = short_lived.directory / "data" / "upload" / urlsplit(get).path.split("/")[2]
        assert stored.read_bytes() == data  # still there: refused for its age alone
        await logout(alice)

    asyncio.run(scenario())


def test_oversize_over_quota_and_bad_puts_are_refused(server):
    async def scenario():
        alice = await login(server, "alice@localhost/phone")
        alice.register_plugin("xep_0363")
        with pytest.raises(IqError) as too_large:
            await request_slot(alice, MAX + 1)
        error = too_large.value.iq["error"]
        assert (error["type"], error["condition"]) == ("modify", "not-acceptable")
        limit = error.xml.find(f"{{{NS}}}file-too-large/{{{NS}}}max-file-size")
        assert limit is not None and limit.text == str(MAX)

        put, headers, _ = await request_slot(alice, 1000, "notes.txt", "text/plain")
        body = b"n" * 1000
        plain = {"Content-Type": "text/plain"}
        for wrong in ({"Authorization": "Bearer " + "0" * 64}, {}):
            status, _, _ = await asyncio.to_thread(https, server, "PUT", put, body,
                                                   {**wrong, **plain})
            assert status == 403
        status, _, _ = await asyncio.to_thread(https, server, "PUT", put, body[:-1],
                                               {**headers, **plain})
        assert status == 400  # one byte short of the slot
        status, _, _ = await asyncio.to_thread(https, server, "PUT", put, body,
                                               {**headers, "Content-Type": "image/png"})
        assert status == 400  # not the type asked for
        status, _, _ = await asyncio.to_thread(https, server, "GET", put)
        assert status == 404  # nothing stored yet
        # a body larger than any slot is refused on its headers
        parts = urlsplit(put)
        connection = http.client.HTTPSConnection(
            "localhost", parts.port, context=ssl.create_default_context(cafile=str(server.cert)),
            timeout=10)
        connection.putrequest("PUT", parts.path)
        connection.putheader("Content-Length", str(10 * MAX))
        connection.endheaders()
        assert (await asyncio.to_thread(connection.getresponse)).status == 413
        connection.close()
        # the right PUT still works after all that
        status, _, _ = await asyncio.to_thread(https, server, "PUT", put, body,
                                               {**headers, **plain})
        assert status == 201

        await request_slot(alice, 1900)  # 2900 of 3000 taken (an unused slot counts)
        with pytest.raises(IqError) as over_quota:
            await request_slot(alice, 200)
        error = over_quota.value.iq["error"]
        assert (error["type"], error["condition"]) == ("wait", "resource-constraint")
        assert error.xml.find(f"{{{NS}}}retry") is not None
        # bob has his own quota
        bob = await login(server, "bob@localhost/desk")
        bob.register_plugin("xep_0363")
        await request_slot(bob, 200)
        await logout(bob)
        await logout(alice)

    asyncio.run(scenario())


def test_cors_preflight(server):
    async def scenario():
        alice = await login(server, "alice@localhost/phone")
        alice.register_plugin("xep_0363")
        put, _, _ = await request_slot(alice, 10)
        status, headers, _ = await asyncio.to_thread(
            https, server, "OPTIONS", put, None,
            {"Origin": "https://web.example", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "authorization, content-type"})
        assert status in (200, 204)
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "PUT" in headers["Access-Control-Allow-Methods"]
        allowed = headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        await logout(alice)

    asyncio.run(scenario())


def test_slixmpps_own_upload_client(server, tmp_path):
    """slixmpp's upload_file end to end: service discovery, max size, slot, aiohttp PUT with
    the slot's headers; then the file read back."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.integration.conftest import PASSWORD

    picture = tmp_path / "sunset.jpg"
    picture.write_bytes(b"\xff\xd8\xff" + bytes(range(200)) * 5)
    script = Path(__file__).with_name("upload_client.py")
    done = subprocess.run(
        [sys.executable, str(script), str(server.c2s_port), "alice@localhost/laptop", PASSWORD,
         str(picture)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SSL_CERT_FILE": str(server.cert)})
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith(f"https://localhost:{server.http_port}/upload/")
    assert url.endswith("/sunset.jpg")
    status, headers, body = https(server, "GET", url)
    assert (status, body) == (200, picture.read_bytes())
    assert headers["Content-Type"] == "image/jpeg"
