# -*- test-case-name: tests.unit.test_cluster_view -*-
"""The cluster as operators see it: ``xmppdctl cluster`` (and ``cluster sessions``,
``cluster links``), ``admin.cluster()`` and friends in the manhole.

Each node writes, at every heartbeat, ``xmppd:node:NODE``: a JSON object with the time of
that heartbeat, when the node started and its authenticated s2s links (the rows of
``xmppdctl s2s``). It expires after ``KEPT_HEARTBEATS`` heartbeats, so a dead node's links do
not linger; a clean stop deletes it. Any node answers for the whole cluster from Redis: the
registry's nodes (xmppd.cluster.directory: ``nodes``, ``alive:NODE``, ``sessions:NODE``) and
these keys, so what one node shows is what every node shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.internet import defer, task

from xmppd.cluster.directory import EXPIRY_HEARTBEATS, PREFIX, alive_key, decode, sessions_key
from xmppd.cluster.redis import log_failure
from xmppd.logs import get_logger

log = get_logger(__name__)

KEPT_HEARTBEATS = EXPIRY_HEARTBEATS
LINK_FIELDS = ("direction", "local", "remote", "auth", "tls", "peer")


def node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


class ClusterView:
    """This node's part of the picture (written), and the whole picture (read)."""

    def __init__(self, redis, node: str, heartbeat: float, reactor,
                 links: Callable[[], list[dict]]) -> None:
        self.redis = redis
        self.node = node
        self.heartbeat = heartbeat
        self.reactor = reactor
        self.links = links  # this node's s2s links, as AdminAPI.list_s2s gives them
        self.started = reactor.seconds()
        self._loop: task.LoopingCall | None = None

    # -- writing

    @defer.inlineCallbacks
    def start(self):
        """The first write, then one at every heartbeat."""
        yield self.write()
        self._loop = task.LoopingCall(self._write_logged)
        self._loop.clock = self.reactor
        self._loop.start(self.heartbeat, now=False)

    @defer.inlineCallbacks
    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        yield self.redis.delete(node_key(self.node))

    def write(self) -> defer.Deferred:
        info = {"heartbeat": self.reactor.seconds(), "started": self.started,
                "links": [{key: link.get(key) for key in LINK_FIELDS} for link in self.links()]}
        expiry_ms = int(self.heartbeat * KEPT_HEARTBEATS * 1000)
        return self.redis.set(node_key(self.node), json.dumps(info), pexpire=expiry_ms)

    def _write_logged(self) -> defer.Deferred:
        return self.write().addErrback(log_failure, "cluster view not written")

    # -- reading (the admin commands)

    @defer.inlineCallbacks
    def nodes(self):
        """One row per node of the registry: alive (its heartbeat key is there), seconds
        since its last heartbeat, its sessions and links, and which one answered."""
        now = self.reactor.seconds()
        rows = []
        for name in (yield self._names()):
            alive = yield self.redis.exists(alive_key(name))
            sessions = yield self.redis.hlen(sessions_key(name))
            info = yield self._info(name)
            beat = info.get("heartbeat")
            ago = None if beat is None else f"{max(0.0, now - beat):.1f}s ago"
            rows.append({"node": name, "alive": bool(alive), "last_heartbeat": ago,
                         "since": info.get("started"), "sessions": sessions,
                         "links": len(info.get("links", ())), "this": name == self.node})
        return rows

    @defer.inlineCallbacks
    def sessions(self, node: str | None = None):
        """One row per session bound on ``node`` (or on every node)."""
        rows = []
        for name in (yield self._names(node)):
            registered = yield self.redis.hgetall(sessions_key(name))
            for jid in sorted(registered):
                try:
                    priority, available, carbons = decode(registered[jid])
                except ValueError:
                    continue
                rows.append({"node": name, "jid": jid, "priority": priority,
                             "available": available, "carbons": carbons})
        return rows

    @defer.inlineCallbacks
    def s2s_links(self, node: str | None = None):
        """One row per authenticated s2s link of ``node`` (or of every node)."""
        rows = []
        for name in (yield self._names(node)):
            info = yield self._info(name)
            for link in info.get("links", ()):
                rows.append({"node": name, **{key: link.get(key) for key in LINK_FIELDS}})
        return rows

    @defer.inlineCallbacks
    def _names(self, node: str | None = None):
        names = set((yield self.redis.smembers(PREFIX + "nodes")) or ()) | {self.node}
        if node is not None:
            if node not in names:
                raise ValueError(f"no node {node!r} in the cluster (nodes: "
                                 f"{', '.join(sorted(names))})")
            return [node]
        return sorted(names)

    @defer.inlineCallbacks
    def _info(self, node: str):
        text = yield self.redis.get(node_key(node))
        try:
            info = json.loads(text) if text else {}
        except ValueError:
            info = {}
        return info if isinstance(info, dict) else {}

    def admin_commands(self) -> list[tuple[str, Callable, str, tuple[str, ...]]]:
        """(name, handler, help, args) of the admin commands this view answers."""
        return [("cluster", self.nodes, "the cluster's nodes: alive, last heartbeat, "
                 "sessions, s2s links", ()),
                ("cluster sessions", self.sessions, "the client sessions of every node "
                 "(or of NODE)", ("NODE?",)),
                ("cluster links", self.s2s_links, "the s2s links of every node (or of NODE)",
                 ("NODE?",))]
