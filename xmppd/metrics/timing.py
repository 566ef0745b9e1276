# -*- test-case-name: tests.integration.test_metrics -*-
"""Latency histograms fed by the probes of ``xmppd.probes``: stanza routing and storage calls.

Routing is the message path, so it is sampled: one stanza in ``ROUTING_SAMPLE`` is timed
(``time.perf_counter`` at the router's entry and when its route returns, or when the
Deferred it returned fires: an offline message is timed until it is stored). The stanzas not
sampled pay one Python call and a countdown, well under a microsecond against the tens of
microseconds a route takes (parsing, the chain, delivery); the sampled ones add two clock
reads and one histogram observation (a few microseconds), so the metrics plugin costs the
message path well under 1 % (``make bench``'s messages workload is the place to check it).
Stanzas from clients are timed from the router's entry for them, their 'outgoing' chain
(carbons, archive, blocking) included; stanzas from other servers and the server's own from
``Router.route``.

Storage calls are fewer and slower (a commit waits for fsync): every read and write is
timed, from the call to its Deferred firing, queueing behind other writes included, which is
the wait the caller sees.
"""

from __future__ import annotations

from time import perf_counter

from prometheus_client import Histogram
from twisted.internet import defer

ROUTING_SAMPLE = 16
ROUTING_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0)
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)
ROUTED_KINDS = ("message", "presence", "iq")


def _observed(result, child, start: float):
    child.observe(perf_counter() - start)
    return result


class RoutingTimer:
    """The routing probe's observer: ``xmppd_routing_seconds{kind}``, one stanza in N."""

    def __init__(self, registry, every: int = ROUTING_SAMPLE) -> None:
        histogram = Histogram("xmppd_routing_seconds", f"time to route a stanza, one in "
                              f"{every} sampled", ["kind"], registry=registry,
                              buckets=ROUTING_BUCKETS)
        self._children = {kind: histogram.labels(kind) for kind in ROUTED_KINDS}
        self._every = self._countdown = every

    def __call__(self, kind: str, route, stanza, origin):
        self._countdown -= 1
        if self._countdown:
            return route(stanza, origin)
        self._countdown = self._every
        child = self._children.get(kind)
        if child is None:
            return route(stanza, origin)
        start = perf_counter()
        result = route(stanza, origin)
        if isinstance(result, defer.Deferred):
            return result.addBoth(_observed, child, start)
        child.observe(perf_counter() - start)
        return result


class StorageTimer:
    """The storage probe's observer: ``xmppd_storage_seconds{operation}``, every call."""

    def __init__(self, registry) -> None:
        histogram = Histogram("xmppd_storage_seconds", "time from a storage call to its "
                              "result", ["operation"], registry=registry,
                              buckets=STORAGE_BUCKETS)
        self._children = {operation: histogram.labels(operation)
                          for operation in ("read", "write")}

    def __call__(self, operation: str, call, function, *args):
        start = perf_counter()
        return call(function, *args).addBoth(_observed, self._children[operation], start)
