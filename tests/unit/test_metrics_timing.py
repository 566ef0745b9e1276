"""The timing probes (xmppd.probes) and the metrics plugin's cheap histograms
(xmppd.metrics.timing), checked against prometheus_client's own OpenMetrics parser."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from twisted.internet import defer

from xmppd.metrics.timing import Buckets, RoutingTimer, StorageTimer
from xmppd.probes import Probe


def samples(registry) -> dict:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_buckets_count_a_value_on_a_bound_in_that_bound_and_are_cumulative():
    buckets = Buckets((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        buckets.observe(seconds)
    assert buckets.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert buckets.sum == pytest.approx(3.65)


def test_a_probe_samples_one_call_in_every_and_is_given_back():
    probe = Probe("test")
    assert probe.observe is None
    unset = probe.set(print, every=4)
    assert [next(probe.ticks) for _ in range(8)] == [False, False, False, True] * 2
    with pytest.raises(ValueError):
        probe.set(print)
    unset()
    assert probe.observe is None
    with pytest.raises(ValueError):
        probe.set(print, every=0)


def test_routing_is_timed_until_a_deferred_route_fires():
    registry = CollectorRegistry()
    timer = RoutingTimer(registry)
    assert timer("presence", lambda stanza, origin: True, None, None) is True
    waiting: defer.Deferred = defer.Deferred()
    result = timer("message", lambda stanza, origin: waiting, None, None)
    assert samples(registry)[("xmppd_routing_seconds_count", (("kind", "message"),))] == 0
    waiting.callback(True)
    assert result.result is True  # the route's result goes on, untouched
    got = samples(registry)
    assert got[("xmppd_routing_seconds_count", (("kind", "message"),))] == 1
    assert got[("xmppd_routing_seconds_count", (("kind", "presence"),))] == 1
    assert got[("xmppd_routing_seconds_count", (("kind", "iq"),))] == 0


def test_storage_calls_are_timed_failures_included_and_passed_on():
    registry = CollectorRegistry()
    timer = StorageTimer(registry)
    ok = timer("read", lambda function, *args: defer.succeed(function(*args)), len, "abc")
    assert ok.result == 3
    failed = timer("write", lambda function: defer.fail(ValueError("no")), None)
    with pytest.raises(ValueError):
        failed.result.raiseException()
    failed.addErrback(lambda failure: None)
    got = samples(registry)
    assert got[("xmppd_storage_seconds_count", (("operation", "read"),))] == 1
    assert got[("xmppd_storage_seconds_count", (("operation", "write"),))] == 1
