"""The shared web server (xmppd.http.server): mounts on one path segment each, no port
until something is mounted, a mount made after the start opens the listeners, URLs for
clients, and request bodies above the largest mount's bound refused on their headers; the
per-address connection cap and the idle timeout over real sockets."""

from __future__ import annotations

import http.client
import ipaddress
import socket
from dataclasses import replace

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from xmppd.config import HttpConfig
from xmppd.http.server import HttpServer, listener_port


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request) -> bytes:  # noqa: N802
        return b"hello " + b"/".join(request.postpath)

    def render_PUT(self, request) -> bytes:  # noqa: N802
        return str(len(request.content.read())).encode()


def plain(port: str = "0") -> HttpConfig:
    return HttpConfig((f"tcp:{port}:interface=127.0.0.1",), (), None)


def fetch(port: int, method: str, path: str, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked="Transfer-Encoding" in (headers or {}))
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


class MountTest(TestCase):
    def test_mount_names_and_undo(self):
        web = HttpServer(plain(), reactor)
        for bad in ("", "a/b", "../x", "/upload", "é"):
            self.assertRaises(ValueError, web.mount, bad, Hello())
        undo = web.mount("upload", Hello(), max_body=10)
        self.assertRaises(ValueError, web.mount, "upload", Hello())
        web.mount("metrics", Hello(), max_body=3)
        self.assertEqual(web.site.max_body, 10)
        undo()
        self.assertNotIn(b"upload", web.root.mounts)
        self.assertEqual(web.site.max_body, 3)

    def test_urls(self):
        both = HttpConfig(("tcp:5280",), ("tcp:port=5281:interface=::1",), None)
        self.assertEqual(HttpServer(both, reactor).url("example.org", "upload/x"),
                         "https://example.org:5281/upload/x")
        self.assertEqual(HttpServer(plain("8080"), reactor).url("a.example", "m"),
                         "http://a.example:8080/m")
        proxied = HttpConfig((), (), "https://files.example/x")
        self.assertEqual(HttpServer(proxied, reactor).url("a.example", "upload/y"),
                         "https://files.example/x/upload/y")
        self.assertRaises(ValueError, HttpServer(HttpConfig((), (), None), reactor).url,
                          "a", "b")
        self.assertEqual(listener_port("unix:/tmp/s"), None)
        standard = HttpConfig((), ("tcp:443",), None)
        self.assertEqual(HttpServer(standard, reactor).url("a.example", "u"), "https://a.example/u")


class ServeTest(TestCase):
    async def _served(self, web: HttpServer) -> int:
        self.addCleanup(web.stop)
        return web.ports[0].getHost().port

    async def test_nothing_mounted_nothing_listens_until_a_mount(self):
        web = HttpServer(plain(), reactor)
        await web.start(None)
        self.assertEqual(web.ports, [])
        web.mount("hello", Hello(), max_body=5)
        await web._listening
        port = await self._served(web)
        self.assertEqual(await threads.deferToThread(fetch, port, "GET", "/hello/a/b"),
                         (200, b"hello a/b"))
        status, _ = await threads.deferToThread(fetch, port, "GET", "/other/")
        self.assertEqual(status, 404)
        self.assertEqual(await threads.deferToThread(fetch, port, "PUT", "/hello/", b"12345"),
                         (200, b"5"))
        status, _ = await threads.deferToThread(fetch, port, "PUT", "/hello/", b"123456")
        self.assertEqual(status, 413)
        # chunked: no length in the headers, refused once the body grows past the bound
        status, _ = await threads.deferToThread(
            fetch, port, "PUT", "/hello/", iter([b"1234", b"5678"]),
            {"Transfer-Encoding": "chunked"})
        self.assertEqual(status, 413)

    async def test_a_mount_before_the_start_listens_at_the_start(self):
        web = HttpServer(plain(), reactor)
        web.mount("hello", Hello())
        await web.start(None)
        port = await self._served(web)
        self.assertEqual((await threads.deferToThread(fetch, port, "GET", "/hello/"))[0], 200)
        await web.stop()
        self.assertEqual(web.ports, [])

    async def test_each_mount_has_its_own_body_bound(self):
        """A large bound of one mount (upload's file size) is not every mount's: a body for
        a mount with a small bound (BOSH), for one with none, or for no mount at all is
        refused on its headers, not read into a file and then into memory."""
        web = HttpServer(plain(), reactor)
        web.mount("big", Hello(), max_body=1000)
        web.mount("small", Hello(), max_body=5)
        web.mount("none", Hello())
        await web.start(None)
        port = await self._served(web)
        body = b"x" * 100
        self.assertEqual(await threads.deferToThread(fetch, port, "PUT", "/big/", body),
                         (200, b"100"))
        for path in ("/small/", "/none/", "/other/", "/%73mall/x?y=1"):
            status, _ = await threads.deferToThread(fetch, port, "PUT", path, body)
            self.assertEqual(status, 413, path)
        status, _ = await threads.deferToThread(
            fetch, port, "PUT", "/small/", iter([b"1234", b"5678"]),
            {"Transfer-Encoding": "chunked"})
        self.assertEqual(status, 413)
        self.assertEqual(await threads.deferToThread(fetch, port, "PUT", "/small/", b"12345"),
                         (200, b"5"))


class Held(resource.Resource):
    """Answers after ``delay`` seconds, as a held BOSH request does."""

    isLeaf = True

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def render_GET(self, request) -> int:  # noqa: N802
        reactor.callLater(self.delay, lambda: (request.write(b"late"), request.finish()))
        return server.NOT_DONE_YET


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True when the server closes (or resets) ``sock`` within ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


class ConnectionLimitTest(TestCase):
    """One address cannot hold every file descriptor with idle HTTP connections: at most
    ``max_connections_per_ip`` at once (trusted proxies and [limits] exempt: no cap), and
    an idle connection is closed after ``idle_timeout``; a request being answered is not."""

    async def _serve(self, config: HttpConfig, exempt=()) -> int:
        web = HttpServer(config, reactor, exempt=exempt)
        web.mount("hello", Hello())
        web.mount("held", Held(2.5))
        await web.start(None)
        self.addCleanup(web.stop)
        return web.ports[0].getHost().port

    async def test_one_address_is_capped_another_is_not(self):
        port = await self._serve(replace(plain(), max_connections_per_ip=2))
        held = [connect(port), connect(port)]
        third = connect(port)
        self.assertTrue(await threads.deferToThread(closed_by_server, third, 5))
        other = connect(port, "127.0.0.2")
        self.assertFalse(await threads.deferToThread(closed_by_server, other, 0.5))
        for sock in (*held, third, other):
            sock.close()
        await deferLater(reactor, 0.3)  # their slots are free again
        self.assertEqual(await threads.deferToThread(fetch, port, "GET", "/hello/"),
                         (200, b"hello "))

    async def test_trusted_proxies_and_exempt_addresses_are_not_capped(self):
        for config, exempt in (
                (replace(plain(), max_connections_per_ip=1, trusted_proxies=("127.0.0.1",)), ()),
                (replace(plain(), max_connections_per_ip=1),
                 (ipaddress.ip_network("127.0.0.0/8"),))):
            port = await self._serve(config, exempt)
            held = [connect(port) for _ in range(3)]
            self.assertFalse(await threads.deferToThread(closed_by_server, held[-1], 0.5))
            for sock in held:
                sock.close()

    async def test_idle_connections_are_closed_held_requests_are_not(self):
        port = await self._serve(replace(plain(), idle_timeout=1.0))
        idle = connect(port)
        self.assertTrue(await threads.deferToThread(closed_by_server, idle, 4))
        idle.close()
        # a held request outlives the idle timeout (twisted.web stops it while answering)
        self.assertEqual(await threads.deferToThread(fetch, port, "GET", "/held/"),
                         (200, b"late"))

    def test_defaults(self):
        self.assertEqual((plain().max_connections_per_ip, plain().idle_timeout), (100, 60.0))
