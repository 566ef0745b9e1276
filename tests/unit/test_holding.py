"""xmppd.im.holding: which accounts may hold offline messages (or requests), in memory."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from xmppd.im.holding import Holding
from xmppd.jid import parse_jid

ALICE = parse_jid("alice@example.org")
BOB = parse_jid("bob@example.org")


class HoldingTests(TestCase):
    def setUp(self):
        self.exact = True
        self.holders = Holding("offline messages", lambda: self.exact)

    def test_everyone_may_hold_until_the_first_read_is_back(self):
        read = defer.Deferred()
        self.holders.load(lambda: read)
        self.assertTrue(self.holders.may_hold(ALICE))
        read.callback([("bob", "example.org")])
        self.assertFalse(self.holders.may_hold(ALICE))
        self.assertTrue(self.holders.may_hold(BOB))

    def test_a_message_stored_while_the_read_runs_counts(self):
        read = defer.Deferred()
        self.holders.load(lambda: read)
        self.holders.adding(ALICE)
        read.callback([])
        self.assertTrue(self.holders.may_hold(ALICE))
        self.assertFalse(self.holders.may_hold(BOB))

    def test_delivery_clears_and_what_comes_after_marks_again(self):
        self.holders.load(lambda: [("alice", "example.org")])
        self.holders.taking(ALICE)
        self.assertFalse(self.holders.may_hold(ALICE))
        self.holders.adding(ALICE)  # a message while the delivery reads
        self.assertTrue(self.holders.may_hold(ALICE))
        self.holders.taking(ALICE)
        self.holders.left(ALICE)  # the session went away: the rest is kept
        self.assertTrue(self.holders.may_hold(ALICE))

    def test_not_exact_means_always_read(self):
        self.holders.load(lambda: [])
        self.assertFalse(self.holders.may_hold(ALICE))
        self.exact = False  # a cluster: other nodes store messages too
        self.assertTrue(self.holders.may_hold(ALICE))

    def test_a_failed_read_leaves_everyone_possible(self):
        self.holders.load(lambda: defer.fail(RuntimeError("disk on fire")))
        self.assertTrue(self.holders.may_hold(ALICE))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
