"""xmppd.cluster.locks without Redis: a fake that keeps keys as Redis does (SET NX PX, the
release script's compare-and-delete), driven by a Clock."""

from __future__ import annotations

from twisted.internet import defer, task

from xmppd.cluster import locks
from xmppd.cluster.locks import ClusterLocks, LockTimeout, lock_key


class Redis:
    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self.commands: list[str] = []
        self.silent = False  # commands never answered

    def _live(self, key: str) -> str | None:
        value = self.keys.get(key)
        if value is not None and value[1] <= self.clock.seconds():
            del self.keys[key]
            return None
        return value[0] if value else None

    def set(self, key, value, pexpire=None, only_if_not_exists=False):
        self.commands.append("set")
        if self.silent:
            return defer.Deferred()
        if only_if_not_exists and self._live(key) is not None:
            return defer.succeed(None)
        self.keys[key] = (value, self.clock.seconds() + pexpire / 1000)
        return defer.succeed("OK")

    def eval(self, script, keys, args):
        assert script == locks.RELEASE
        self.commands.append("release")
        if self._live(keys[0]) == args[0]:
            del self.keys[keys[0]]
            return defer.succeed(1)
        return defer.succeed(0)


def node(redis: Redis, name: str, connected: bool = True) -> ClusterLocks:
    return ClusterLocks(redis, name, lambda: connected, redis.clock)


def test_work_under_a_name_waits_for_the_other_nodes_and_the_key_goes_with_it():
    clock = task.Clock()
    redis = Redis(clock)
    a, b = node(redis, "a"), node(redis, "b")
    order: list[str] = []
    first_done: defer.Deferred = defer.Deferred()

    def first() -> defer.Deferred:
        order.append("a in")
        return first_done.addCallback(lambda _: order.append("a out") or "a")

    ran_a = a.run("roster:alice@localhost", first)
    ran_b = b.run("roster:alice@localhost", lambda: defer.succeed(order.append("b") or "b"))
    clock.pump([0.05] * 10)  # b tries again and again: a still holds it
    assert order == ["a in"] and redis.commands.count("set") > 3
    first_done.callback(None)
    clock.pump([0.05] * 3)
    assert order == ["a in", "a out", "b"]
    assert (ran_a.result, ran_b.result) == ("a", "b")
    assert redis.keys == {}  # released: nothing left in Redis
    other = b.run("roster:bob@localhost", lambda: defer.succeed("free"))
    assert other.result == "free"  # another name was never held up


def test_a_lock_of_a_dead_node_expires_and_a_newer_holder_is_not_released_by_it():
    clock = task.Clock()
    redis = Redis(clock)
    a, b = node(redis, "a"), node(redis, "b")
    stuck = a.run("x", lambda: defer.Deferred())  # a "dies" holding it
    assert stuck.called is False
    later = b.run("x", lambda: defer.Deferred())
    clock.pump([0.05] * int(locks.TTL / 0.05 + 10))
    assert redis._live(lock_key("x")).startswith("b ")  # b got it once a's expired
    assert later.called is False


def test_a_lock_held_past_the_wait_fails_and_no_redis_means_no_lock():
    clock = task.Clock()
    redis = Redis(clock)
    redis.keys[lock_key("x")] = ("someone", float("inf"))
    waiting = node(redis, "b").run("x", lambda: defer.succeed("never"))
    clock.pump([0.05] * int(locks.WAIT / 0.05 + 10))
    failures: list = []
    waiting.addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(LockTimeout)

    down = node(Redis(clock), "c", connected=False)
    assert down.run("x", lambda: defer.succeed("ran")).result == "ran"

    silent = Redis(clock)
    silent.silent = True
    unanswered = node(silent, "d").run("x", lambda: defer.succeed("ran anyway"))
    clock.advance(locks.ANSWER)
    assert unanswered.result == "ran anyway" and silent.commands == ["set"]
