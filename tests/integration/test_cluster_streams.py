"""xmppd.cluster.streams and xmppd.cluster.rescue on a real Redis (tests.redis_server), in
this process: what an inbox holds, when it is emptied, and by whom."""

from __future__ import annotations

from pathlib import Path
from tempfile import mkdtemp

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.redis_server import RedisServer
from tests.unit.test_cluster import Local, directory, local_session, message
from xmppd.cluster import redis as cluster_redis
from xmppd.cluster.address import parse_redis_url
from xmppd.cluster.delivery import Arrivals
from xmppd.cluster.rescue import Rescue, lock_key
from xmppd.cluster.streams import INBOXES, StanzaStreams, inbox_key
from xmppd.jid import parse_jid


def pause(seconds: float = 0.05) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


class StreamsTests(TestCase):
    def setUp(self):
        self.server = RedisServer(Path(mkdtemp(prefix="clfed-redis-")))
        self.server.start()
        self.addCleanup(self.server.stop)
        address = parse_redis_url(self.server.url)
        self.redis = cluster_redis.connect(address)
        self.reader = cluster_redis.connect(address)
        self.arrived, self.undelivered = [], []
        self.streams = StanzaStreams(
            self.redis, self.reader, "b",
            lambda stanza, full: self.arrived.append((full.full(), stanza.element["id"])),
            self.undelivered.append, reactor)

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.streams.stop()
        yield self.reader.disconnect()
        yield self.redis.disconnect()

    def command(self, *args):
        return self.server.command(*args)

    @defer.inlineCallbacks
    def wait_for(self, predicate, timeout: float = 5.0):
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return
            yield pause()
        self.fail("timed out")

    def stanza(self, n: int):
        element = message("bob@localhost/desk").element
        element["id"] = str(n)
        return element

    @defer.inlineCallbacks
    def test_an_inbox_holds_what_is_not_handed_over_yet(self):
        self.command("SET", "xmppd:alive:b", "1")
        bob = parse_jid("bob@localhost/desk")
        for n in range(3):  # before the node reads: an earlier life's leftovers
            self.streams.send("b", bob, self.stanza(n))
        yield self.wait_for(lambda: self.command("XLEN", inbox_key("b")) == 3)
        self.assertEqual(self.arrived, [])
        self.streams.start()
        yield self.wait_for(lambda: len(self.arrived) == 3)
        self.assertEqual(self.arrived, [("bob@localhost/desk", str(n)) for n in range(3)])
        yield self.wait_for(lambda: self.command("XLEN", inbox_key("b")) == 0)
        self.streams.send("b", bob, self.stanza(3))  # while reading: at once
        yield self.wait_for(lambda: len(self.arrived) == 4)
        self.assertEqual(self.undelivered, [])

    @defer.inlineCallbacks
    def test_nothing_is_put_in_the_inbox_of_a_node_that_is_not_alive(self):
        element = self.stanza(1)
        self.streams.send("b", parse_jid("bob@localhost/desk"), element)
        yield self.wait_for(lambda: self.undelivered)
        self.assertEqual(self.undelivered, [element])
        self.assertEqual(self.command("EXISTS", inbox_key("b")), 0)

    @defer.inlineCallbacks
    def test_a_dead_nodes_inbox_is_emptied_once_by_one_live_node(self):
        here = local_session("bob@localhost/here")
        remote, _ = directory(Local(here))
        stored = []
        offline = type("Offline", (), {"store": lambda self, stanza: stored.append(stanza)
                                       or True})()
        arrivals = Arrivals(Local(here), lambda interface: offline, lambda *a: None, False)
        rescue = Rescue(self.redis, "a", 60.0, Local(here), remote, arrivals, False, reactor)
        self.command("SET", "xmppd:alive:b", "1")
        self.command("SADD", INBOXES, "b")
        for n in range(300):  # more than one batch
            self.streams.send("b", parse_jid(f"user{n % 2}@localhost/x"), self.stanza(n))
        yield self.wait_for(lambda: self.command("XLEN", inbox_key("b")) == 300)
        # alive: left alone
        yield rescue.sweep()
        self.assertEqual(self.command("XLEN", inbox_key("b")), 300)
        self.command("DEL", "xmppd:alive:b")
        # another node holds the lock: left to it
        self.command("SET", lock_key("b"), "c")
        self.assertEqual((yield rescue.empty("b")), 0)
        self.command("DEL", lock_key("b"))
        yield rescue.sweep()
        # every stanza was for bob/desk: his account's session here got each one
        self.assertEqual(len(here.got), 300)
        self.assertEqual(self.command("EXISTS", inbox_key("b")), 0)
        self.assertEqual(self.command("SMEMBERS", INBOXES), ["a"])
        self.assertEqual(self.command("EXISTS", lock_key("b")), 0)
        self.assertEqual(stored, [])

    @defer.inlineCallbacks
    def test_the_inbox_of_a_node_alive_again_is_kept(self):
        remote, _ = directory(Local())
        arrivals = Arrivals(Local(), lambda interface: None, lambda *a: None, False)
        rescue = Rescue(self.redis, "a", 60.0, Local(), remote, arrivals, False, reactor)
        self.command("SADD", INBOXES, "b")
        self.command("XADD", inbox_key("b"), "*", "m", "bob@localhost/desk\n<junk")
        self.command("SET", "xmppd:alive:b", "1")  # back before the rescue removed it
        yield rescue.empty("b")
        self.assertEqual(self.command("EXISTS", inbox_key("b")), 1)
        self.assertEqual(self.command("XLEN", inbox_key("b")), 0)  # junk: skipped, removed
        self.assertEqual(self.command("SMEMBERS", INBOXES), ["b"])
