"""XEP-0363 upload: slot tokens, request checks, and the plugin on a real server with a
fake clock: slot answers and errors, the PUT/GET resource (through twisted.web's request
helper), expiry of unused slots and old files, clean-up of orphans, and a stop that leaves
neither the service nor the mount behind."""

from __future__ import annotations

import io
from urllib.parse import unquote_to_bytes

from twisted.trial.unittest import TestCase
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest
from twisted.words.xish import domish

from tests.plugin_case import PluginServerCase
from tests.unit.test_pep_plugin import iq_answer, wait_for
from xmppd import events
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.upload import NS
from xmppd.upload.protocol import UploadError, parse_request, type_allowed
from xmppd.upload.tokens import SlotSigner
from xmppd.upload.web import MAX_AGE, cache_control

SERVICE = "upload.localhost"


class CacheControlTest(TestCase):
    def test_never_shared_never_beyond_the_expiry_at_most_a_year(self):
        self.assertEqual(cache_control(None), b"private, max-age=31536000, immutable")
        self.assertEqual(MAX_AGE, 31536000)
        self.assertEqual(cache_control(90.9), b"private, max-age=90, immutable")
        self.assertEqual(cache_control(10 * MAX_AGE), cache_control(None))
        self.assertEqual(cache_control(-5), b"private, max-age=0, immutable")


class TokenTest(TestCase):
    def test_a_token_holds_for_its_slot_only(self):
        signer = SlotSigner(b"k" * 32)
        token = signer.sign("a" * 24, 10, "image/png", 100.0)
        self.assertTrue(signer.verify(token, "a" * 24, 10, "image/png", 100.0))
        for other in (("b" * 24, 10, "image/png", 100.0), ("a" * 24, 11, "image/png", 100.0),
                      ("a" * 24, 10, "text/html", 100.0), ("a" * 24, 10, "image/png", 101.0)):
            self.assertFalse(signer.verify(token, *other))
        self.assertFalse(SlotSigner(b"j" * 32).verify(token, "a" * 24, 10, "image/png", 100.0))
        self.assertFalse(signer.verify("ünïcode", "a" * 24, 10, "image/png", 100.0))
        with self.assertRaises(ValueError):
            SlotSigner(b"short")


def request(**attributes) -> domish.Element:
    element = domish.Element((NS, "request"))
    for key, value in attributes.items():
        element[key.replace("_", "-")] = value
    return element


class RequestTest(TestCase):
    def test_checks(self):
        parsed = parse_request(request(filename="a b.png", size="12", content_type="Image/PNG"))
        self.assertEqual((parsed.name, parsed.size, parsed.type), ("a b.png", 12, "image/png"))
        self.assertEqual(parse_request(request(filename="x", size="1")).type,
                         "application/octet-stream")
        for bad in ({"filename": "../x", "size": "1"}, {"filename": "a/b", "size": "1"},
                    {"filename": "..", "size": "1"}, {"filename": "a\\b", "size": "1"},
                    {"size": "1"}, {"filename": "x" * 256, "size": "1"},
                    {"filename": "x", "size": "0"}, {"filename": "x", "size": "-1"},
                    {"filename": "x", "size": "1e3"}, {"filename": "x"},
                    {"filename": "x", "size": "1", "content_type": "nonsense"}):
            with self.assertRaises(StanzaError) as caught:
                parse_request(request(**bad))
            self.assertEqual(caught.exception.condition, "bad-request")

    def test_types(self):
        self.assertTrue(type_allowed("text/plain", ()))
        self.assertTrue(type_allowed("image/png", ("image/*",)))
        self.assertTrue(type_allowed("text/plain", ("image/*", "text/plain")))
        self.assertFalse(type_allowed("text/html", ("image/*", "text/plain")))

    def test_file_too_large_names_the_limit(self):
        xml = UploadError("not-acceptable", "too big", max_size=99).to_element().toXml()
        self.assertIn("<file-too-large xmlns='urn:xmpp:http:upload:0'>"
                      "<max-file-size>99</max-file-size></file-too-large>", xml)
        retry = UploadError("resource-constraint", "full", retry_at=0).to_element()
        self.assertEqual(next(c for c in retry.elements() if c.name == "retry")["stamp"],
                         "1970-01-01T00:00:00Z")
        self.assertEqual(retry["type"], "wait")


def slot_iq(id: str, size: int, name: str = "f.txt", ctype: str = "text/plain") -> str:
    return (f"<iq type='get' id='{id}' to='{SERVICE}'><request xmlns='{NS}' filename='{name}' "
            f"size='{size}' content-type='{ctype}'/></iq>")


class PluginTest(PluginServerCase):
    enabled = ("upload",)
    sections = {"upload": {"max_file_size": 100, "quota": 150, "slot_timeout": 60,
                           "expire_after": 3600, "cleanup_interval": 600,
                           "allowed_types": ["text/plain", "image/*"]}}
    users = ("alice", "bob")

    async def slot(self, client, id: str, size: int, **kw) -> tuple[str, str]:
        client.feed(slot_iq(id, size, **kw))
        answer = await wait_for(client, iq_answer(id))
        self.assertEqual(answer["type"], "result", answer.toXml())
        slot = answer.firstChildElement()
        put = next(slot.elements(NS, "put"))
        return put["url"], str(next(put.elements(NS, "header")))

    async def error(self, client, id: str, size: int, **kw):
        client.feed(slot_iq(id, size, **kw))
        answer = await wait_for(client, iq_answer(id))
        self.assertEqual(answer["type"], "error")
        return [child for child in answer.elements() if child.name == "error"][0]

    def web(self, method: bytes, url: str, body: bytes = b"", headers: dict | None = None):
        path = url.split("/upload/", 1)[1].encode()
        request = DummyRequest([unquote_to_bytes(part) for part in path.split(b"/")])
        request.method = method
        request.content = io.BytesIO(body)
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        root = self.server.http.root.getChild(b"upload", request)
        result = root.render(request)
        if result is not server.NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request

    async def finished(self, request):
        await wait_for_true(lambda: request.finished)
        return request

    async def test_slot_put_get_and_errors(self):
        alice = await self.client("alice", "phone")
        url, token = await self.slot(alice, "s1", 5, name="ä b.txt")
        self.assertTrue(url.startswith("https://localhost:5281/upload/"), url)
        self.assertTrue(url.endswith("/%C3%A4%20b.txt"), url)
        put = {"Authorization": token, "Content-Length": "5", "Content-Type": "text/plain"}
        self.assertEqual(self.web(b"PUT", url, b"12345", {**put, "Authorization": "Bearer x"})
                         .responseCode, 403)
        self.assertEqual(self.web(b"PUT", url, b"1234", {**put, "Content-Length": "4"})
                         .responseCode, 400)
        self.assertEqual(self.web(b"GET", url).responseCode, 404)
        done = await self.finished(self.web(b"PUT", url, b"12345", put))
        self.assertEqual(done.responseCode, 201)
        self.assertEqual(self.web(b"PUT", url, b"12345", put).responseCode, 409)
        got = self.web(b"HEAD", url)
        self.assertEqual(got.responseHeaders.getRawHeaders(b"content-disposition"),
                         [b"attachment; filename*=UTF-8''%C3%A4%20b.txt"])
        self.assertEqual(got.responseHeaders.getRawHeaders(b"content-length"), [b"5"])
        self.assertEqual(self.web(b"OPTIONS", url).responseCode, 204)

        too_big = await self.error(alice, "s2", 101)
        self.assertIn("<max-file-size>100</max-file-size>", too_big.toXml())
        wrong_type = await self.error(alice, "s3", 5, name="x.html", ctype="text/html")
        self.assertEqual(wrong_type.firstChildElement().name, "not-acceptable")
        await self.slot(alice, "s4", 100, name="p.png", ctype="image/png")  # 105 of 150
        full = await self.error(alice, "s5", 50)
        self.assertEqual((full["type"], full.firstChildElement().name),
                         ("wait", "resource-constraint"))
        bob = await self.client("bob", "pc")
        await self.slot(bob, "b1", 50)  # his own quota

    async def test_unused_slots_and_old_files_expire(self):
        alice = await self.client("alice", "phone")
        await self.slot(alice, "big", 100)
        url, token = await self.slot(alice, "s1", 3)
        put = {"Authorization": token, "Content-Length": "3", "Content-Type": "text/plain"}
        await self.error(alice, "full", 50)  # 103 + 50 > 150
        self.clock.advance(61)
        await self.slot(alice, "again", 50)  # the unused slots no longer count
        self.assertEqual(self.web(b"PUT", url, b"abc", put).responseCode, 410)
        url, token = await self.slot(alice, "s2", 3)
        put["Authorization"] = token
        self.assertEqual((await self.finished(self.web(b"PUT", url, b"abc", put))).responseCode,
                         201)
        plugin = self.fixture.registry._plugins["upload"]
        files = plugin.slots.directory
        (files / ("A" * 24)).write_bytes(b"orphan")
        (files / "stray.part").write_bytes(b"partial")
        await wait_for_true(lambda: plugin.cleaner.call is not None)
        self.clock.advance(600)  # the clean-up: the expired slot goes, orphans too
        await wait_for_true(lambda: sorted(p.name for p in files.iterdir()) ==
                            [url.split("/")[-2]])
        self.assertEqual(len(plugin.slots.slots), 1)
        got = await self.finished(self.web(b"GET", url))
        self.assertEqual(b"".join(got.written), b"abc")
        for _ in range(7):  # each clean-up waits for the last one's writes
            await wait_for_true(lambda: plugin.cleaner.call is not None)
            self.clock.advance(600)
        await wait_for_true(lambda: not list(files.iterdir()))
        self.assertEqual(self.web(b"GET", url).responseCode, 404)
        self.assertEqual(plugin.slots.slots, {})

    async def test_files_are_cached_privately_and_never_beyond_their_expiry(self):
        alice = await self.client("alice", "phone")
        url, token = await self.slot(alice, "s1", 3)
        put = {"Authorization": token, "Content-Length": "3", "Content-Type": "text/plain"}
        self.assertEqual((await self.finished(self.web(b"PUT", url, b"abc", put))).responseCode,
                         201)

        def cache_control() -> list:
            return self.web(b"HEAD", url).responseHeaders.getRawHeaders(b"cache-control")

        self.assertEqual(cache_control(), [b"private, max-age=3600, immutable"])
        self.clock.advance(3000)
        self.assertEqual(cache_control(), [b"private, max-age=600, immutable"])
        self.clock.advance(600)  # expired: not served, though the clean-up has not removed it
        plugin = self.fixture.registry._plugins["upload"]
        self.assertTrue(plugin.slots.path(plugin.slots.get(url.split("/")[-2])).exists())
        self.assertEqual(self.web(b"GET", url).responseCode, 404)
        self.assertEqual(self.web(b"HEAD", url).responseCode, 404)

    async def test_one_put_at_a_time_a_failed_write_and_a_deleted_account(self):
        alice = await self.client("alice", "phone")
        url, token = await self.slot(alice, "s1", 3)
        put = {"Authorization": token, "Content-Length": "3", "Content-Type": "text/plain"}
        first = self.web(b"PUT", url, b"abc", put)
        self.assertEqual(self.web(b"PUT", url, b"abc", put).responseCode, 409)  # still writing
        self.assertEqual((await self.finished(first)).responseCode, 201)
        plugin = self.fixture.registry._plugins["upload"]
        files = plugin.slots.directory

        url, token = await self.slot(alice, "s2", 3)
        put["Authorization"] = token
        blocker = files / (url.split("/")[-2] + ".part")
        blocker.mkdir()  # the write fails: 500, and the slot can take a PUT again
        failed = await self.finished(self.web(b"PUT", url, b"abc", put))
        self.assertEqual(failed.responseCode, 500)
        self.assertEqual(len(self.flushLoggedErrors(IsADirectoryError)), 1)
        blocker.rmdir()
        self.assertEqual((await self.finished(self.web(b"PUT", url, b"abc", put))).responseCode,
                         201)

        bob = await self.client("bob", "pc")
        await self.slot(bob, "b1", 3)
        await self.server.emit(events.USER_DELETED, JID("alice", "localhost"))
        self.assertEqual([s.owner for s in plugin.slots.slots.values()], ["bob@localhost"])
        self.assertEqual(list(files.iterdir()), [])

    async def test_no_path_from_a_request_reaches_the_disk(self):
        for url in ("/upload/../../etc/passwd", "/upload/" + "." * 24 + "/x",
                    "/upload/%2e%2e/x", "/upload/a"):
            self.assertEqual(self.web(b"GET", url).responseCode, 404)

    async def test_stop_leaves_no_service_or_mount(self):
        self.assertIn(b"upload", self.server.http.root.mounts)
        self.assertIn(SERVICE, self.server.router.services)
        self.fixture.registry.stop("upload")
        self.assertNotIn(b"upload", self.server.http.root.mounts)
        self.assertNotIn(SERVICE, self.server.router.services)
        await self.fixture.registry.start("upload")
        self.assertIn(b"upload", self.server.http.root.mounts)


async def wait_for_true(check, timeout: float = 5.0) -> None:
    from twisted.internet import reactor, task

    waited = 0.0
    while not check():
        if waited > timeout:
            raise AssertionError("never true")
        await task.deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


class OptionsTest(TestCase):
    def test_bad_options_are_named_and_the_secret_never_shown(self):
        from xmppd.options import PluginOptions
        from xmppd.plugins.upload import upload

        for options, words in (({"secret": "short"}, "secret"), ({"secret": 1234567}, "secret"),
                               ({"quota": 0}, "quota"), ({"allowed_types": ["png"]}, "allowed"),
                               ({"allowed_types": "image/png"}, "allowed"),
                               ({"max_size": 1}, "max_size")):
            with self.assertRaises(ValueError) as caught:
                upload.configure(PluginOptions("upload", options))
            self.assertIn(words, str(caught.exception))
            self.assertNotIn("short", str(caught.exception))
            self.assertNotIn("1234567", str(caught.exception))
        settings = upload.configure(PluginOptions("upload", {"allowed_types": ["Image/*"]}))
        self.assertEqual(settings.allowed_types, ("image/*",))
