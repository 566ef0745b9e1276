# -*- test-case-name: tests.unit.test_cluster_locks -*-
"""Work that one node of the cluster at a time may run, under a name (IClusterLocks).

Each node serializes its own changes to an account's roster (xmppd.im.keyed_queue); two
nodes changing it at the same instant would both read the item before either wrote it, and
one change would be lost. So the roster plugin also takes the account's lock here: a Redis
key ``xmppd:lock:NAME`` set with ``SET NX PX`` (its value this node's token), deleted when
the work is done only if it still holds our token (a script: compare, then delete). A node
that dies holding a lock holds it ``TTL`` seconds at most; a node that finds a lock taken
tries again after a few milliseconds (doubling, up to 50 ms) and gives up with
``LockTimeout`` after ``WAIT`` seconds.

The lock is released on the connection that also carries the node's news (a roster push's
news for the other nodes, sent by the work): Redis handles one connection's commands in
order, so the next holder's lock is granted after that news was handed to every node.

Without Redis (the connection is down, or a command got no answer within ``ANSWER``
seconds) the work runs without the cluster's lock, as each node did before, and the node
says so once per outage in its log: rosters stay writable when Redis is not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from twisted.internet import defer, task
from zope.interface import implementer

from xmppd.cluster.directory import PREFIX
from xmppd.cluster.redis import LOST, log_failure
from xmppd.interfaces import IClusterLocks
from xmppd.logs import get_logger

log = get_logger(__name__)

TTL = 10.0  # seconds a lock outlives a node that died holding it
WAIT = TTL + 2.0  # seconds a node waits for a lock before LockTimeout
ANSWER = 2.0  # seconds Redis has to answer before the work runs without the lock
FIRST_RETRY, LAST_RETRY = 0.002, 0.05  # seconds between tries while a lock is taken

# delete the key only if it still holds our token (not a lock another node took after ours
# expired)
RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
           "return redis.call('del', KEYS[1]) else return 0 end")


class LockTimeout(Exception):
    """Another node held the lock for longer than ``WAIT``."""


def lock_key(name: str) -> str:
    return f"{PREFIX}lock:{name}"


@implementer(IClusterLocks)
class ClusterLocks:
    """Named locks shared by the nodes, on the node's command connection to Redis."""

    def __init__(self, redis, node: str, connected: Callable[[], bool], reactor) -> None:
        self.redis = redis  # a txredisapi connection handler (the node's, in order)
        self.node = node
        self._connected = connected
        self.reactor = reactor
        self._tokens = itertools.count(1)
        self._degraded = False  # said in the log that locks are off (once per outage)

    def run(self, name: str, work: Callable[[], defer.Deferred]) -> defer.Deferred:
        """Call ``work()`` while no other node runs work under ``name``; fires with its
        result (or LockTimeout)."""
        return defer.ensureDeferred(self._run(name, work))

    async def _run(self, name: str, work: Callable[[], defer.Deferred]):
        key, token = lock_key(name), f"{self.node} {next(self._tokens)}"
        held = await self._acquire(key, token)
        try:
            return await work()
        finally:
            if held:
                release = self.redis.eval(RELEASE, [key], [token])
                release.addErrback(log_failure, f"cluster lock {name} not released (it "
                                                f"expires in {TTL:g} s)")

    async def _acquire(self, key: str, token: str) -> bool:
        """True once ours; False when Redis cannot say (then the work runs without it)."""
        deadline = self.reactor.seconds() + WAIT
        delay = FIRST_RETRY
        while True:
            if not self._connected():
                return self._without(key, "Redis is not connected")
            taken = self.redis.set(key, token, pexpire=int(TTL * 1000), only_if_not_exists=True)
            try:
                ok = await taken.addTimeout(ANSWER, self.reactor)
            except defer.TimeoutError:
                return self._without(key, f"Redis did not answer within {ANSWER:g} s")
            except LOST as error:
                return self._without(key, f"Redis connection lost ({error})")
            if ok:
                if self._degraded:
                    self._degraded = False
                    log.info("cluster locks work again")
                return True
            if self.reactor.seconds() + delay > deadline:
                raise LockTimeout(f"{key} held by another node for over {WAIT:g} s")
            await task.deferLater(self.reactor, delay, lambda: None)
            delay = min(delay * 2, LAST_RETRY)

    def _without(self, key: str, why: str) -> bool:
        if not self._degraded:
            self._degraded = True
            log.warn("cluster lock {key} not taken: {why}; changes run with this node's own "
                     "order only until Redis is back", key=key, why=why)
        return False
