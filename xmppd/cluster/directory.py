"""The session registry in Redis, and this node's mirror of the other nodes' sessions.

In Redis (every key under ``xmppd:``):

- ``nodes``: the set of node names that registered;
- ``alive:NODE``: a key each node sets again at every heartbeat, expiring after
  ``EXPIRY_HEARTBEATS`` heartbeats: a node whose key is gone is dead;
- ``sessions:NODE``: the node's bound sessions, full JID -> "priority available carbons"
  (one hash per node, so that a dead node's sessions go with one DEL; a value without the
  carbons flag, as the first step wrote, reads as carbons off);
- channel ``registry``: each change as it happens ("bind NODE JID PRIORITY AVAILABLE CARBONS",
  "unbind NODE JID", "reset NODE").

A node writes its own sessions on bind, unbind and availability changes, and all of them
again at each heartbeat, which catches priority changes no event announces and refills a
Redis that lost its data. At each
heartbeat it also reads every other live node's hash into its mirror (healing any change
missed on the channel, e.g. across a Redis reconnection) and removes a dead node's hash and
name: a dead node's sessions leave the registry at most one heartbeat after its key expired,
and leave the mirrors as soon as one node saw it dead.

The mirror answers the router synchronously (no Redis round trip on a stanza's way): it is
as fresh as the channel, and never staler than one heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, task

from xmppd.cluster.redis import log_failure
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)

PREFIX = "xmppd:"
REGISTRY_CHANNEL = PREFIX + "registry"
EXPIRY_HEARTBEATS = 3


def sessions_key(node: str) -> str:
    return f"{PREFIX}sessions:{node}"


def alive_key(node: str) -> str:
    return f"{PREFIX}alive:{node}"


def stanza_channel(node: str) -> str:
    return f"{PREFIX}stanzas:{node}"


class RemoteSession:
    """A session bound on another node, as the delivery rules see one (``jid``,
    ``available``, ``priority``) and carbons (``carbons``: it enabled XEP-0280); ``send``
    carries a stanza to that node."""

    __slots__ = ("jid", "node", "priority", "available", "carbons", "_forward")
    remote = True

    def __init__(self, jid: JID, node: str, priority: int, available: bool,
                 forward: Callable, carbons: bool = False) -> None:
        self.jid = jid
        self.node = node
        self.priority = priority
        self.available = available
        self.carbons = carbons
        self._forward = forward

    def send(self, element) -> None:
        self._forward(self.node, self.jid, element)

    def __repr__(self) -> str:
        return f"<RemoteSession {self.jid} on {self.node}>"


def encode(session, carbons: bool = False) -> str:
    return f"{session.priority} {int(bool(session.available))} {int(carbons)}"


def decode(value: str) -> tuple[int, bool, bool]:
    """"priority available [carbons]"; ValueError if it is not that."""
    words = value.split(" ")
    if len(words) not in (2, 3):
        raise ValueError(value)
    return int(words[0]), words[1] == "1", words[2:] == ["1"]


class SessionDirectory:
    """This node's sessions written to Redis; the others' read into ``remote``."""

    def __init__(self, redis, node: str, heartbeat: float, local, forward: Callable,
                 reactor, bound_elsewhere: Callable | None = None) -> None:
        self.redis = redis  # a txredisapi connection handler
        self.node = node
        self.heartbeat = heartbeat
        self.local = local  # this node's SessionRegistry: all()
        self.forward = forward  # forward(node, full_jid, element)
        self.reactor = reactor
        # bound_elsewhere(full_jid): another node announced a session (resource conflicts)
        self.bound_elsewhere = bound_elsewhere
        # present(node, full_jid, to): ask a node to send its session's presence (the node)
        self.presenter: Callable | None = None
        # the mirror: bare JID -> resource -> RemoteSession, and node -> its full JIDs
        self._accounts: dict[JID, dict[str, RemoteSession]] = {}
        self._by_node: dict[str, dict[JID, RemoteSession]] = {}
        self._written: dict[str, str] = {}  # what our hash holds: full JID -> value
        self.carbons: set = set()  # our sessions that enabled carbons (CARBONS_CHANGED)
        self._beat: task.LoopingCall | None = None

    # -- look-ups (synchronous, from the mirror)

    def get(self, full_jid: JID) -> RemoteSession | None:
        resources = self._accounts.get(full_jid.bare())
        return resources.get(full_jid.resource) if resources else None

    def resources(self, bare_jid: JID) -> list[RemoteSession]:
        resources = self._accounts.get(bare_jid)
        return list(resources.values()) if resources else []

    def present(self, session: RemoteSession, to: JID) -> None:
        """Have ``session``'s node send its last presence to ``to`` (a probe's answer, a
        new subscriber): only that node holds it."""
        if self.presenter is not None:
            self.presenter(session.node, session.jid, to)

    def __len__(self) -> int:
        return sum(len(sessions) for sessions in self._by_node.values())

    def receivers(self) -> int:
        """How many nodes' subscriptions news for sessions must reach: this node's and
        those of every node with a session (xmppd.cluster.insist)."""
        return 1 + len(self._by_node)

    # -- life

    @defer.inlineCallbacks
    def start(self):
        """Register this node: a hash left by an earlier life of it is dropped (and the
        other nodes told), then the first heartbeat; heartbeats go on every ``heartbeat``."""
        yield self.redis.delete(sessions_key(self.node))
        yield self.redis.sadd(PREFIX + "nodes", self.node)
        yield self.redis.publish(REGISTRY_CHANNEL, f"reset {self.node}")
        yield self.beat()
        self._beat = task.LoopingCall(self._beat_logged)
        self._beat.clock = self.reactor
        self._beat.start(self.heartbeat, now=False)

    @defer.inlineCallbacks
    def stop(self):
        """A clean stop: this node's sessions and liveness leave the registry at once."""
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        yield self.redis.delete(sessions_key(self.node))
        yield self.redis.delete(alive_key(self.node))
        yield self.redis.srem(PREFIX + "nodes", self.node)
        yield self.redis.publish(REGISTRY_CHANNEL, f"reset {self.node}")

    def _beat_logged(self) -> defer.Deferred:
        d = self.beat()
        d.addErrback(log_failure, "cluster heartbeat failed")
        return d

    @defer.inlineCallbacks
    def beat(self):
        """Prove this node alive, write what changed in its sessions, re-read the others',
        drop the dead."""
        expiry_ms = int(self.heartbeat * EXPIRY_HEARTBEATS * 1000)
        yield self.redis.set(alive_key(self.node), "1", pexpire=expiry_ms)
        yield self.redis.sadd(PREFIX + "nodes", self.node)  # again: Redis may have lost it
        yield self._write_differences()
        nodes = yield self.redis.smembers(PREFIX + "nodes")
        for node in sorted(set(nodes) | set(self._by_node)):
            if node == self.node:
                continue
            alive = yield self.redis.exists(alive_key(node))
            if alive:
                sessions = yield self.redis.hgetall(sessions_key(node))
                self._replace_node(node, sessions)
            else:
                yield self._bury(node)

    @defer.inlineCallbacks
    def _bury(self, node: str):
        if self._by_node.get(node):
            log.warn("cluster node {node} is gone (no heartbeat); its {count} sessions with it",
                     node=node, count=len(self._by_node[node]))
        self._replace_node(node, {})
        yield self.redis.delete(sessions_key(node))
        yield self.redis.srem(PREFIX + "nodes", node)

    # -- this node's sessions

    def write(self, session) -> defer.Deferred:
        """A session bound, or its availability changed: in Redis, and announced."""
        if session.jid is None or session.ended:
            return defer.succeed(None)
        full = session.jid.full()
        value = encode(session, session in self.carbons)
        self._written[full] = value
        d = self.redis.hset(sessions_key(self.node), full, value)
        d.addCallback(lambda _: self.redis.publish(
            REGISTRY_CHANNEL, f"bind {self.node} {full} {value}"))
        return d

    def erase(self, session) -> defer.Deferred:
        """A session ended: out of Redis, and announced."""
        if session.jid is None:
            return defer.succeed(None)
        full = session.jid.full()
        self._written.pop(full, None)
        self.carbons.discard(session)
        d = self.redis.hdel(sessions_key(self.node), full)
        d.addCallback(lambda _: self.redis.publish(REGISTRY_CHANNEL,
                                                   f"unbind {self.node} {full}"))
        return d

    @defer.inlineCallbacks
    def _write_differences(self):
        now = {s.jid.full(): encode(s, s in self.carbons) for s in self.local.all()
               if s.jid is not None and not s.ended}
        gone = [full for full in self._written if full not in now]
        self._written = now
        if gone:
            yield self.redis.hdel(sessions_key(self.node), gone)
        if now:  # all of them: a Redis that lost its data (restarted) gets them back
            yield self.redis.hmset(sessions_key(self.node), now)

    # -- the other nodes' sessions

    def on_registry(self, message: str) -> None:
        """A change announced on the channel by a node (ours are ignored). A resource may
        hold spaces: the JID is what lies between the node and the values."""
        words = message.split(" ", 2)
        try:
            verb, node = words[0], words[1]
            if node == self.node:
                return
            if verb == "bind":
                jid, priority, available, carbons = words[2].rsplit(" ", 3)
                full = parse_jid(jid)
                self._add(node, full, *decode(f"{priority} {available} {carbons}"))
                if self.bound_elsewhere is not None:
                    self.bound_elsewhere(full)
            elif verb == "unbind" and len(words) == 3:
                self._remove(node, parse_jid(words[2]))
            elif verb == "reset" and len(words) == 2:
                self._replace_node(node, {})
            else:
                raise ValueError(verb)
        except (IndexError, ValueError, InvalidJID):
            log.warn("ignored a malformed cluster registry message: {message!r}",
                     message=message[:200])

    def _replace_node(self, node: str, sessions: dict) -> None:
        for full in list(self._by_node.get(node, {})):
            self._remove(node, full)
        for full, value in sessions.items():
            try:
                self._add(node, parse_jid(full), *decode(value))
            except (ValueError, InvalidJID):
                log.warn("ignored a malformed session of node {node} in Redis: {full!r}",
                         node=node, full=full[:200])

    def _add(self, node: str, full: JID, priority: int, available: bool,
             carbons: bool = False) -> None:
        if full.resource is None:
            raise ValueError("not a full JID")
        for other in list(self._by_node):  # moved from another node (replaced there)
            if other != node and full in self._by_node[other]:
                self._remove(other, full)
        session = RemoteSession(full, node, priority, available, self.forward, carbons)
        self._by_node.setdefault(node, {})[full] = session
        self._accounts.setdefault(full.bare(), {})[full.resource] = session

    def _remove(self, node: str, full: JID) -> None:
        sessions = self._by_node.get(node)
        if not sessions or sessions.pop(full, None) is None:
            return
        if not sessions:
            del self._by_node[node]
        resources = self._accounts.get(full.bare())
        if resources is not None and resources.get(full.resource) is not None \
                and resources[full.resource].node == node:
            del resources[full.resource]
            if not resources:
                del self._accounts[full.bare()]
