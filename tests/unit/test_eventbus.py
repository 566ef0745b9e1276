"""xmppd.eventbus: every listener runs, by priority; a failing one never stops the rest; the
Deferred fires when all of them are done, whatever they return."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from xmppd import events
from xmppd.eventbus import EventBus


class EventBusTests(TestCase):
    def setUp(self):
        self.bus = EventBus()
        self.calls = []

    def test_no_listener_fires_at_once(self):
        self.assertEqual(self.successResultOf(self.bus.emit(events.SESSION_BOUND, 1)), [])

    def test_listeners_returning_at_once_fire_with_their_results_by_priority(self):
        self.bus.on(events.SESSION_BOUND, lambda x: self.calls.append(("low", x)) or "low", -1)
        self.bus.on(events.SESSION_BOUND, lambda x: self.calls.append(("high", x)) or "high", 5)
        result = self.successResultOf(self.bus.emit(events.SESSION_BOUND, 7))
        self.assertEqual(result, ["high", "low"])
        self.assertEqual(self.calls, [("high", 7), ("low", 7)])

    def test_fires_only_when_deferreds_and_coroutines_are_done(self):
        later, awaited = defer.Deferred(), defer.Deferred()
        self.bus.on(events.SESSION_BOUND, lambda: later)

        async def listener():
            return await awaited

        self.bus.on(events.SESSION_BOUND, listener)
        self.bus.on(events.SESSION_BOUND, lambda: "now")
        emitted = self.bus.emit(events.SESSION_BOUND)
        self.assertNoResult(emitted)
        later.callback("later")
        self.assertNoResult(emitted)
        awaited.callback("awaited")
        self.assertEqual(self.successResultOf(emitted), ["later", "awaited", "now"])

    def test_a_failing_listener_is_reported_and_the_others_run(self):
        def raises():
            raise ValueError("sync")

        async def fails():
            raise KeyError("async")

        self.bus.on(events.SESSION_BOUND, raises)
        self.bus.on(events.SESSION_BOUND, fails)
        self.bus.on(events.SESSION_BOUND, lambda: defer.fail(RuntimeError("deferred")))
        self.bus.on(events.SESSION_BOUND, lambda: self.calls.append("ran"))
        self.assertEqual(self.successResultOf(self.bus.emit(events.SESSION_BOUND)),
                         [None, None, None, None])
        self.assertEqual(self.calls, ["ran"])
        for error in (ValueError, KeyError, RuntimeError):
            self.assertEqual(len(self.flushLoggedErrors(error)), 1)
