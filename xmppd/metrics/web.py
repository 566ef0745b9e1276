# -*- test-case-name: tests.integration.test_metrics -*-
"""``/metrics``: the registry in the format the scraper asks for (OpenMetrics when its
Accept header names it, else Prometheus text), rendered in the reactor thread."""

from __future__ import annotations

from prometheus_client import exposition
from twisted.web import pages, resource


class MetricsRoot(resource.Resource):
    def __init__(self, registry) -> None:
        super().__init__()
        self.putChild(b"metrics", MetricsPage(registry))

    def getChild(self, path: bytes, request) -> resource.Resource:  # noqa: N802
        return pages.notFound()


class MetricsPage(resource.Resource):
    isLeaf = True

    def __init__(self, registry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request) -> bytes:  # noqa: N802
        accept = request.getHeader("accept")
        encoder, content_type = exposition.choose_encoder(accept)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return encoder(self.registry)
