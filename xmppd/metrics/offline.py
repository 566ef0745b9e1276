# -*- test-case-name: tests.integration.test_metrics -*-
"""``xmppd_offline_messages`` and ``xmppd_offline_queues``: the offline store, counted in
storage when scraped.

Counting is a query over the whole table, so it runs at most once per ``CACHE_SECONDS``
however often Prometheus (or several) scrapes, and never per message; the page waits for a
count older than that to be refreshed (``refresh``), then renders what it has. A failed count
is logged and the last one kept.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.internet import defer

from xmppd.logs import get_logger

log = get_logger(__name__)

CACHE_SECONDS = 5.0


def _count(cursor) -> tuple[int, int]:
    cursor.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM offline_messages")
    messages, queues = cursor.fetchone()
    return int(messages), int(queues)


class OfflineCollector(Collector):
    def __init__(self, storage, seconds) -> None:
        """``storage``: the engine (its ``read``); ``seconds``: the reactor's clock."""
        self._storage = storage
        self._seconds = seconds
        self._counts: tuple[int, int] | None = None
        self._counted_at: float | None = None
        self._counting: defer.Deferred | None = None

    def refresh(self) -> defer.Deferred | None:
        """None when the counts are fresh, else a Deferred that fires once they are."""
        now = self._seconds()
        if self._counted_at is not None and now - self._counted_at < CACHE_SECONDS:
            return None
        counting = self._counting
        if counting is None:
            counting = self._storage.read(_count)
            counting.addCallbacks(self._counted, self._failed)
            if counting.called:  # an inline read (SQLite): counted already
                return None
            self._counting = counting
        waiting: defer.Deferred = defer.Deferred()
        counting.addBoth(lambda result: (waiting.callback(None), result)[1])
        return waiting

    def _counted(self, counts: tuple[int, int]) -> None:
        self._counts, self._counted_at, self._counting = counts, self._seconds(), None

    def _failed(self, failure) -> None:
        self._counting = None  # the next scrape tries again
        log.failure("counting the offline messages failed", failure)

    def collect(self):
        if self._counts is None:
            return
        messages, queues = self._counts
        yield GaugeMetricFamily("xmppd_offline_messages", "messages kept for offline "
                                "accounts", value=messages)
        yield GaugeMetricFamily("xmppd_offline_queues", "accounts with messages kept "
                                "offline", value=queues)
