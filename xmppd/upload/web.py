# -*- test-case-name: tests.unit.test_upload -*-
"""``/upload/SLOT/NAME`` on the server's web server: PUT once with the slot's token, exact
size and type; then GET (and HEAD) for anyone with the URL, with the slot's type, length and
a ``Content-Disposition``. CORS headers on every answer, and OPTIONS answered for the
preflight a browser client sends before its PUT. Served files cannot run as a page of our
origin (``nosniff``, a ``Content-Security-Policy`` that allows nothing).

Caching (``cache_control``): the URL is the only secret (XEP-0363 §Security: long random
parts) and a file goes when it expires or its account is deleted, so no shared cache (a
proxy, a CDN) may keep a copy we could no longer remove: ``private``. The downloader's own
cache may keep it until the file expires (``max-age`` never beyond that), and need not
revalidate meanwhile (``immutable``: a slot takes one PUT, the bytes at a URL never change).
A file past its age is not served, even before the clean-up removes it."""

from __future__ import annotations

from urllib.parse import quote

from twisted.web import pages, resource, server, static

from xmppd.logs import get_logger
from xmppd.upload.slots import Slot, SlotBusy, Slots
from xmppd.upload.tokens import SlotSigner

log = get_logger(__name__)

CORS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, PUT, OPTIONS",
    b"Access-Control-Allow-Headers": b"Authorization, Content-Type",
    b"Access-Control-Max-Age": b"86400",
}
SAFE = {
    b"X-Content-Type-Options": b"nosniff",
    b"Content-Security-Policy": b"default-src 'none'; frame-ancestors 'none'",
}
INLINE = ("image/", "audio/", "video/")
MAX_AGE = 365 * 86400  # the longest a downloader's cache keeps a file that does not expire


class UploadResource(resource.Resource):
    isLeaf = True

    def __init__(self, slots: Slots, signer: SlotSigner, clock) -> None:
        super().__init__()
        self.slots = slots
        self.signer = signer
        self.clock = clock

    def render(self, request):
        for name, value in CORS.items():
            request.setHeader(name, value)
        return super().render(request)

    def render_OPTIONS(self, request) -> bytes:  # noqa: N802 (twisted.web's names)
        request.setResponseCode(204)
        return b""

    # -- PUT

    def render_PUT(self, request):  # noqa: N802
        slot = self._slot(request)
        if slot is None:
            return _fail(request, 404, "no such slot")
        if slot.done:
            return _fail(request, 409, "this slot was used already")
        if slot.deadline < self.clock():
            return _fail(request, 410, "this slot expired")
        token = _header(request, b"authorization").removeprefix("Bearer ").strip()
        if not self.signer.verify(token, slot.id, slot.size, slot.type, slot.deadline):
            return _fail(request, 403, "a wrong or missing token")
        length = _header(request, b"content-length")
        if not length:
            return _fail(request, 411, "Content-Length is required")
        if length.strip() != str(slot.size) or _body_size(request) != slot.size:
            return _fail(request, 400, f"the slot is for exactly {slot.size} bytes")
        content_type = _header(request, b"content-type")
        if content_type and content_type.split(";")[0].strip().lower() != slot.type:
            return _fail(request, 400, f"the slot is for {slot.type}")
        try:
            d = self.slots.complete(slot, request.content)
        except SlotBusy:
            return _fail(request, 409, "this slot is being used")
        lost: list = []  # the client went away while its file was being written
        request.notifyFinish().addErrback(lost.append)
        d.addCallbacks(self._stored, self._not_stored, (request, lost), None, (request, lost))
        return server.NOT_DONE_YET

    def _stored(self, _result, request, lost: list) -> None:
        if lost:
            return
        request.setResponseCode(201)
        request.setHeader(b"content-length", b"0")
        request.finish()

    def _not_stored(self, failure, request, lost: list) -> None:
        log.failure("upload: cannot store a file", failure)
        if not lost:
            request.write(_fail(request, 500, "the file could not be stored"))
            request.finish()

    # -- GET, HEAD

    def render_GET(self, request):  # noqa: N802
        """The file through twisted.web's static.File (ranges, Last-Modified), with the
        slot's type and our headers."""
        slot = self._slot(request)
        lifetime = self.slots.lifetime(slot) if slot is not None else None
        if slot is None or not slot.done or (lifetime is not None and lifetime <= 0):
            return _fail(request, 404, "no such file")
        _describe(request, slot, lifetime)
        stored = static.File(str(self.slots.path(slot)))
        stored.type, stored.encoding = slot.type, None
        stored.childNotFound = pages.notFound()
        return stored.render(request)

    def render_HEAD(self, request):  # noqa: N802
        """GET's headers; an error's text is no body here (twisted.web would log a HEAD
        answer with a body, and its line names the URL, which is the file's only secret)."""
        result = self.render_GET(request)
        return b"" if isinstance(result, bytes) else result

    def _slot(self, request) -> Slot | None:
        """The slot of /SLOT/NAME, where NAME must be the name it was asked for."""
        if len(request.postpath) != 2:
            return None
        slot_id, name = request.postpath
        slot = self.slots.get(slot_id.decode("ascii", "replace"))
        if slot is None or name.decode("utf-8", "replace") != slot.name:
            return None
        return slot


def _describe(request, slot: Slot, lifetime: float | None) -> None:
    disposition = "inline" if slot.type.startswith(INLINE) else "attachment"
    request.setHeader(b"content-disposition",
                      f"{disposition}; filename*=UTF-8''{quote(slot.name, safe='')}")
    request.setHeader(b"cache-control", cache_control(lifetime))
    for name, value in SAFE.items():
        request.setHeader(name, value)


def cache_control(lifetime: float | None) -> bytes:
    """The ``Cache-Control`` of a served file with ``lifetime`` seconds left (None: kept
    until its account goes): the downloader's cache only, never beyond the file's expiry
    (see the module docstring)."""
    max_age = MAX_AGE if lifetime is None else max(0, min(MAX_AGE, int(lifetime)))
    return f"private, max-age={max_age}, immutable".encode("ascii")


def _header(request, name: bytes) -> str:
    value = request.getHeader(name)
    return "" if value is None else value.decode("latin-1")


def _body_size(request) -> int:
    content = request.content
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    return size


def _fail(request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode("utf-8") + b"\n"
