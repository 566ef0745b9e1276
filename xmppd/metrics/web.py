# -*- test-case-name: tests.integration.test_metrics -*-
"""``/metrics``: the registry in the format the scraper asks for (OpenMetrics when its
Accept header names it, else Prometheus text), rendered in the reactor thread, once what is
counted in storage when scraped (``prepare``) is fresh."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import exposition
from twisted.web import pages, resource, server


class MetricsRoot(resource.Resource):
    def __init__(self, registry, prepare: Callable | None = None) -> None:
        super().__init__()
        self.putChild(b"metrics", MetricsPage(registry, prepare))

    def getChild(self, path: bytes, request) -> resource.Resource:  # noqa: N802
        return pages.notFound()


class MetricsPage(resource.Resource):
    isLeaf = True

    def __init__(self, registry, prepare: Callable | None = None) -> None:
        """``prepare()``: None, or a Deferred to wait for before rendering (never errbacks)."""
        super().__init__()
        self.registry = registry
        self.prepare = prepare

    def render_GET(self, request) -> bytes | int:  # noqa: N802
        waiting = self.prepare() if self.prepare is not None else None
        if waiting is None:
            return self._render(request)
        gone: list = []
        request.notifyFinish().addErrback(gone.append)
        waiting.addCallback(lambda _: None if gone else self._finish(request))
        return server.NOT_DONE_YET

    def _finish(self, request) -> None:
        request.write(self._render(request))
        request.finish()

    def _render(self, request) -> bytes:
        accept = request.getHeader("accept")
        encoder, content_type = exposition.choose_encoder(accept)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return encoder(self.registry)
