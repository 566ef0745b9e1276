# -*- test-case-name: tests.unit.test_cluster_rooms -*-
"""Which node runs a room, and which nodes are alive.

Rendezvous (highest random weight) hashing: every node scores each room with a hash of
(node, room) and the room lives on the highest score among the live nodes. Every node
computes the same answer from the same live set, with no table to share; when a node dies
only its rooms move (each to the node that scored second for it), and a node that joins
takes from each other node only the rooms it now scores highest for (about 1/n of them).
BLAKE2b of 8 bytes is fast (a few hashes per stanza to a room, one per live node) and spread
evenly; the node name breaks a tie of scores.

Liveness is the session registry's (``xmppd.cluster.directory``): a node is alive while its
``alive:NODE`` key, refreshed at each of its heartbeats, has not expired. A node missing from
one reading is taken as dead only when it is still missing at the next (``Liveness``): a
Redis that restarted empty has lost every key until each node's next heartbeat, and seeing
the whole cluster die then would close every room.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from twisted.internet import defer

from xmppd.cluster.directory import PREFIX, alive_key


def score(node: str, room: str) -> tuple[int, str]:
    digest = hashlib.blake2b(f"{node}\n{room}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big"), node


def owner(room: str, nodes: Iterable[str]) -> str | None:
    """The node of ``nodes`` that runs ``room`` (a bare JID's text); None without nodes."""
    best = max((score(node, room) for node in nodes), default=None)
    return best[1] if best is not None else None


@defer.inlineCallbacks
def read_alive(redis):
    """Deferred set of the nodes registered in Redis whose heartbeat key is there."""
    nodes = yield redis.smembers(PREFIX + "nodes")
    alive = set()
    for node in sorted(nodes):
        if (yield redis.exists(alive_key(node))):
            alive.add(node)
    return alive


class Liveness:
    """The live set from successive readings of the alive keys: a node comes or goes when two
    readings in a row say so. A node that starts says so itself at once (``rooms-up``),
    once it listens; one seen only in readings may not listen yet (its key is written while
    it subscribes), and one missing once may be in a Redis that restarted empty."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.live: frozenset[str] = frozenset((me,))
        self._missing: set[str] = set()
        self._new: set[str] = set()

    def reading(self, alive: set[str]) -> frozenset[str]:
        """The live set a reading makes (this node always in it); ``live`` is not changed
        (the caller sets it when it acts on the change)."""
        alive = set(alive) | {self.me}
        gone = self.live - alive
        confirmed_gone = gone & self._missing
        self._missing = set(gone - confirmed_gone)
        new = alive - self.live
        confirmed_new = new & self._new
        self._new = set(new - confirmed_new)
        return frozenset((self.live - confirmed_gone) | confirmed_new)

    def joined(self, node: str) -> frozenset[str]:
        """The live set with ``node``, which said it started."""
        self._new.discard(node)
        self._missing.discard(node)
        return self.live | {node}
