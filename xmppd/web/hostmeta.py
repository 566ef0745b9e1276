# -*- test-case-name: tests.integration.test_websocket -*-
"""XEP-0156 discovery over HTTP: ``/.well-known/host-meta`` (XRD, RFC 6415) and
``/.well-known/host-meta.json`` name the web endpoints of the domain the request is for.

Any page may read them (``Access-Control-Allow-Origin: *``): a web client on another origin
finds its connection method here before it knows anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.web import pages, resource

from xmppd.xml.serializer import escape_attribute

WEBSOCKET = "urn:xmpp:alt-connections:websocket"
BOSH = "urn:xmpp:alt-connections:xbosh"
XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


class WellKnown(resource.Resource):
    """``/.well-known/``: host-meta and host-meta.json; ``links(host)`` gives (rel, href)
    pairs for a request whose Host is ``host`` (None when it is none of ours)."""

    def __init__(self, links: Callable[[str | None], list[tuple[str, str]]]) -> None:
        super().__init__()
        self.links = links

    def getChild(self, path: bytes, request) -> resource.Resource:  # noqa: N802
        if path == b"host-meta":
            return _Document(self.links, as_json=False)
        if path == b"host-meta.json":
            return _Document(self.links, as_json=True)
        return pages.notFound()

    def render(self, request) -> bytes:
        return pages.notFound().render(request)


class _Document(resource.Resource):
    isLeaf = True

    def __init__(self, links, as_json: bool) -> None:
        super().__init__()
        self.links = links
        self.as_json = as_json

    def render_GET(self, request) -> bytes:  # noqa: N802
        host = request.getRequestHostname().decode("ascii", "replace").lower()
        links = self.links(host)
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        if self.as_json:
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps({"links": [{"rel": rel, "href": href}
                                         for rel, href in links]}).encode("utf-8")
        request.setHeader(b"Content-Type", b"application/xrd+xml")
        body = [f"<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='{XRD}'>\n"]
        body += [f"  <Link rel='{escape_attribute(rel)}' href='{escape_attribute(href)}'/>\n"
                 for rel, href in links]
        body.append("</XRD>\n")
        return "".join(body).encode("utf-8")

    def render_OPTIONS(self, request) -> bytes:  # noqa: N802
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, OPTIONS")
        return b""

    render_HEAD = render_GET  # noqa: N815


def websocket_url(http_url: str) -> str:
    """The ws:// or wss:// URL of an http(s):// one."""
    return "ws" + http_url[4:] if http_url.startswith("http") else http_url
