"""XEP-0198 counts: the unacknowledged queue, acks across the 2^32 wrap, 'h' too high."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppd import ns
from xmppd.sm.counter import MODULUS, HandledCountTooHigh, OutboundQueue, increment, parse_uint32


def message(n: int) -> domish.Element:
    element = domish.Element((ns.CLIENT, "message"))
    element["id"] = str(n)
    return element


def ids(queue: OutboundQueue) -> list[str]:
    return [element["id"] for element, _when in queue]


class CounterTests(SynchronousTestCase):
    def test_increment_wraps_at_2_to_the_32(self):
        self.assertEqual(increment(0), 1)
        self.assertEqual(increment(MODULUS - 1), 0)

    def test_parse_h_takes_only_unsigned_32_bit_integers(self):
        self.assertEqual([parse_uint32(v) for v in ("0", "42", str(MODULUS - 1))],
                         [0, 42, MODULUS - 1])
        for bad in (None, "", "-1", "1.5", "x", str(MODULUS), "+3"):
            self.assertIsNone(parse_uint32(bad), bad)


class QueueTests(SynchronousTestCase):
    def filled(self, count: int, start: int = 0) -> OutboundQueue:
        queue = OutboundQueue()
        queue.sent = start
        for n in range(count):
            queue.push(message(n), float(n))
        return queue

    def test_an_ack_drops_what_it_covers_and_keeps_the_rest_in_order(self):
        queue = self.filled(5)
        self.assertEqual(queue.acknowledge(2), 2)
        self.assertEqual(ids(queue), ["2", "3", "4"])
        self.assertEqual(queue.acknowledge(2), 0)  # the same ack again: nothing more
        self.assertEqual(queue.acknowledge(5), 3)
        self.assertEqual((len(queue), queue.sent, queue.acknowledged), (0, 5, 5))

    def test_acks_go_on_across_the_wrap(self):
        queue = self.filled(4, start=MODULUS - 2)  # sequence numbers 2^32-1, 0, 1, 2
        self.assertEqual((queue.sent, queue.acknowledged), (2, MODULUS - 2))
        self.assertEqual(queue.acknowledge(MODULUS - 1), 1)
        self.assertEqual(queue.acknowledge(1), 2)
        self.assertEqual(ids(queue), ["3"])

    def test_an_h_past_what_was_sent_is_the_stream_error_of_section_4(self):
        queue = self.filled(3)
        queue.acknowledge(1)
        error = self.assertRaises(HandledCountTooHigh, queue.acknowledge, 4)
        self.assertEqual((error.h, error.sent), (4, 3))
        self.assertEqual(len(queue), 2)  # nothing dropped
        element = error.to_element()
        conditions = [(child.uri, child.name, dict(child.attributes))
                      for child in element.elements()]
        self.assertEqual(conditions[0], (ns.STREAM_ERRORS, "undefined-condition", {}))
        self.assertIn((ns.SM, "handled-count-too-high", {"h": "4", "send-count": "3"}),
                      conditions)

    def test_too_high_also_across_the_wrap(self):
        queue = self.filled(2, start=MODULUS - 1)  # stanzas numbered 0 and 1, after the wrap
        self.assertRaises(HandledCountTooHigh, queue.acknowledge, 2)

    def test_an_ack_older_than_the_last_is_ignored_not_read_as_billions(self):
        queue = self.filled(5)
        queue.acknowledge(4)
        self.assertEqual(queue.acknowledge(2), 0)
        self.assertEqual(ids(queue), ["4"])

    def test_drain_takes_everything_with_its_first_send_time(self):
        queue = self.filled(3)
        queue.acknowledge(1)
        self.assertEqual([(e["id"], when) for e, when in queue.drain()],
                         [("1", 1.0), ("2", 2.0)])
        self.assertEqual((len(queue), queue.acknowledged), (0, 3))
