# -*- test-case-name: tests.integration.test_metrics -*-
"""What the metrics plugin measures, in its own prometheus_client registry.

Sessions are counted when scraped, from the sessions bound and not yet ended (events), by
the transport of their stream (``transport_name`` of the stream class: tcp, websocket, bosh;
"hibernated" while a session waits for its client to resume it). Stanzas are counted by a
session filter in each direction, by kind (message, presence, iq, other). Logins are the
sessions bound, by the SASL mechanism of their stream; failed authentications come from the
AUTH_FAILED event, by mechanism and SASL condition. Federation links are counted when scraped
(``ctx.s2s_links()``), by direction and how the peer authenticated. The process's
CPU, memory and file descriptors come from prometheus_client's process collector.
Routing and storage latencies come through the probes of ``xmppd.probes`` (xmppd.metrics.timing);
the offline queues are counted in storage when scraped (xmppd.metrics.offline).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from xmppd.c2s import filters

KINDS = frozenset(("message", "presence", "iq"))
FILTER_PRIORITY = -1000  # closest to the wire: what the client really sent and gets


class SessionCollector(Collector):
    """``xmppd_c2s_sessions{transport}``: bound client sessions now."""

    def __init__(self) -> None:
        self.sessions: set = set()

    def collect(self):
        counts = {"tcp": 0, "websocket": 0, "bosh": 0, "hibernated": 0}
        for session in self.sessions:
            stream = getattr(session, "stream", None)
            name = "hibernated" if stream is None else getattr(stream, "transport_name", "tcp")
            counts[name] = counts.get(name, 0) + 1
        family = GaugeMetricFamily("xmppd_c2s_sessions", "bound client sessions",
                                   labels=["transport"])
        for transport, count in sorted(counts.items()):
            family.add_metric([transport], count)
        yield family


class LinkCollector(Collector):
    """``xmppd_s2s_links{direction,auth}``: authenticated federation links now, by how the
    peer proved its domain (certificate, dialback, or both)."""

    def __init__(self, links) -> None:
        self.links = links  # () -> the rows of ctx.s2s_links()

    def collect(self):
        counts: dict[tuple[str, str], int] = {}
        for row in self.links():
            key = (str(row.get("direction")), str(row.get("auth")))
            counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily("xmppd_s2s_links", "authenticated federation links",
                                   labels=["direction", "auth"])
        for (direction, auth), count in sorted(counts.items()):
            family.add_metric([direction, auth], count)
        yield family


class Metrics:
    """The registry and the hooks that feed it."""

    def __init__(self, s2s_links) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.sessions = SessionCollector()
        self.registry.register(self.sessions)
        self.registry.register(LinkCollector(s2s_links))
        self.stanzas = Counter("xmppd_c2s_stanzas", "stanzas from and to client sessions",
                               ["direction", "kind"], registry=self.registry)
        self.logins = Counter("xmppd_c2s_logins", "client sessions bound, by the SASL "
                              "mechanism their stream authenticated with",
                              ["mechanism"], registry=self.registry)
        self.auth_failures = Counter("xmppd_c2s_auth_failures", "failed SASL authentications, "
                                     "by mechanism and SASL condition",
                                     ["mechanism", "condition"], registry=self.registry)
        self._counters = {(direction, kind): self.stanzas.labels(direction, kind)
                          for direction in ("in", "out")
                          for kind in (*KINDS, "other")}

    # -- events

    def session_bound(self, session) -> None:
        self.sessions.sessions.add(session)
        mechanism = getattr(getattr(session, "stream", None), "mechanism", None)
        self.logins.labels(mechanism or "unknown").inc()

    def session_closed(self, session, *_args) -> None:
        self.sessions.sessions.discard(session)

    def auth_failed(self, mechanism: str, condition: str) -> None:
        self.auth_failures.labels(mechanism, condition).inc()

    # -- session filters

    def add_filters(self, session) -> None:
        session.filters.add(filters.IN, self._counter("in"), FILTER_PRIORITY)
        session.filters.add(filters.OUT, self._counter("out"), FILTER_PRIORITY)

    def _counter(self, direction: str):
        counters = self._counters

        def count(element, _session):
            name = element.name
            counters[(direction, name if name in KINDS else "other")].inc()
            return element

        return count
