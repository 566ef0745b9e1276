# -*- test-case-name: tests.integration.test_metrics -*-
"""OpenMetrics at ``http://LISTEN/metrics`` for Prometheus (xmppd.metrics).

Its own listener, not the ``[http]`` web server that web clients reach: metrics say who is
online how much, so they stay on loopback unless the operator opens them. ``[plugins.metrics]``:
``listen`` (a Twisted endpoint string, "tcp:5290:interface=127.0.0.1").
It counts through events and session filters, and times routing and storage through the
probes of ``xmppd.probes`` (xmppd.metrics.timing), set while it runs.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.web import server
from zope.interface import implementer

from xmppd import events, probes
from xmppd.config import ENDPOINT_TYPES
from xmppd.interfaces import IXmppdPlugin
from xmppd.metrics.collect import Metrics
from xmppd.metrics.offline import OfflineCollector
from xmppd.metrics.timing import ROUTING_SAMPLE, RoutingTimer, StorageTimer
from xmppd.metrics.web import MetricsRoot
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stream.listen import listen

DEFAULT_LISTEN = "tcp:5290:interface=127.0.0.1"


class _QuietSite(server.Site):
    def log(self, request) -> None:
        pass


@implementer(IXmppdPlugin)
class MetricsPlugin:
    name = "metrics"
    requires = ()

    def configure(self, options) -> str:
        reject_unknown_keys(options, ("listen",))
        description = options.option_str("listen", DEFAULT_LISTEN)
        if not description.startswith(ENDPOINT_TYPES):
            raise ValueError(f"[plugins.metrics] listen: expected a Twisted endpoint string "
                             f"such as {DEFAULT_LISTEN!r}, got {description!r}")
        return description

    def setup(self, ctx) -> defer.Deferred:
        description = ctx.settings or self.configure(ctx)
        self.port = None
        metrics = Metrics(ctx.s2s_links)
        ctx.on(events.SESSION_BOUND, metrics.session_bound)
        ctx.on(events.SESSION_CLOSED, metrics.session_closed)
        ctx.on(events.AUTH_FAILED, metrics.auth_failed)
        ctx.session_filters(metrics.add_filters)
        self.unprobe = [probes.ROUTING.set(RoutingTimer(metrics.registry), ROUTING_SAMPLE),
                        probes.STORAGE.set(StorageTimer(metrics.registry))]
        offline = OfflineCollector(ctx.storage, ctx.reactor.seconds)
        metrics.registry.register(offline)
        site = _QuietSite(MetricsRoot(metrics.registry, offline.refresh), reactor=ctx.reactor)
        d = listen(ctx.reactor, description, site)
        d.addCallbacks(lambda port: setattr(self, "port", port), self._unprobe)
        return d

    def _unprobe(self, failure=None):
        """Give the probes back (at teardown, or when the listener could not start)."""
        for unset in getattr(self, "unprobe", ()):
            unset()
        return failure

    def teardown(self) -> defer.Deferred | None:
        self._unprobe()
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening) if port is not None else None


metrics = MetricsPlugin()
