"""xmppd.cluster.insist without Redis: news sent again at each heartbeat until as many
subscriptions heard it as needed it, the latest of each key only, a copy dropped by a node
that had it, and given up after TRIES."""

from __future__ import annotations

from twisted.internet import defer, task

from xmppd.cluster import insist
from xmppd.cluster.broadcast import Broadcast
from xmppd.cluster.insist import Insistent


class Redis:
    """PUBLISH handed to the listening nodes; answers how many heard it (``listening``)."""

    def __init__(self) -> None:
        self.nodes: dict[str, Broadcast] = {}
        self.listening: set[str] = set()
        self.published = 0

    def publish(self, channel: str, message: str) -> defer.Deferred:
        self.published += 1
        for name in sorted(self.listening):
            self.nodes[name].received(message)
        return defer.succeed(len(self.listening))


def cluster(clock: task.Clock, needed: int = 2):
    redis = Redis()
    heard: list[tuple[str, str]] = []
    news = {}
    for name in ("a", "b"):
        cast = redis.nodes[name] = Broadcast(redis, name)
        news[name] = Insistent(cast, "t", lambda node, text, name=name: heard.append(
            (name, text)), lambda: needed, lambda: True, clock, 1.0)
        news[name].start()
    return redis, news, heard


def test_news_nobody_heard_is_sent_again_until_heard_then_once_only():
    clock = task.Clock()
    redis, news, heard = cluster(clock)
    news["a"].send("k", "first")  # nobody listens: Redis is coming back
    clock.advance(1)
    assert heard == [] and redis.published == 2
    redis.listening = {"b"}  # b is back, a's own subscription not yet: not enough
    clock.advance(1)
    assert heard == [("b", "first")]
    redis.listening = {"a", "b"}
    clock.advance(1)
    clock.advance(1)
    assert heard == [("b", "first")]  # b dropped its second copy
    assert news["a"].pending == {} and redis.published == 4


def test_only_the_latest_news_of_a_key_is_tried_again_and_it_is_given_up_in_the_end():
    clock = task.Clock()
    redis, news, heard = cluster(clock)
    news["a"].send("k", "old")
    news["a"].send("k", "new")
    news["a"].send("other", "x")
    redis.listening = {"a", "b"}
    clock.advance(1)
    assert sorted(text for _, text in heard) == ["new", "x"]
    redis.listening = set()
    news["a"].send("k", "lost")
    clock.pump([1] * (insist.TRIES + 1))
    assert news["a"].pending == {}
    assert "lost" not in [text for _, text in heard]


def test_enough_listeners_at_once_means_one_publish():
    clock = task.Clock()
    redis, news, heard = cluster(clock)
    redis.listening = {"a", "b"}
    news["b"].send("k", "hello")
    clock.pump([1] * 5)
    assert heard == [("a", "hello")] and redis.published == 1
