"""xmppd.handlers: priority order, and the registration a caller keeps to remove one handler."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from xmppd.handlers import PrioritizedHandlers


def handler(name: str):
    def fn() -> str:
        return name
    fn.__name__ = name
    return fn


class PrioritizedHandlersTests(SynchronousTestCase):
    def test_highest_priority_first_then_registration_order(self):
        handlers = PrioritizedHandlers()
        low, first, second = handler("low"), handler("first"), handler("second")
        handlers.add(low, -1)
        handlers.add(first, 5)
        handlers.add(second, 5)
        self.assertEqual(handlers.handlers, (first, second, low))

    def test_a_registration_removes_exactly_its_own_entry_once(self):
        handlers = PrioritizedHandlers()
        fn, other = handler("fn"), handler("other")
        one = handlers.add(fn)
        handlers.add(other)
        two = handlers.add(fn)  # the same handler again: a registration of its own
        one()
        self.assertEqual(handlers.handlers, (other, fn))
        one()  # again: nothing more goes
        self.assertEqual(handlers.handlers, (other, fn))
        two()
        self.assertEqual(handlers.handlers, (other,))
        self.assertTrue(handlers)
