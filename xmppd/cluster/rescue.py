"""What a dead node had not handed over: taken from its inbox by a live node.

At every heartbeat each node looks at the inboxes (xmppd.cluster.streams) of the nodes whose
heartbeat key is gone. The first to take a node's lock (``xmppd:rescue:NODE``, expiring, so a
rescuer that dies too is replaced) reads the inbox in batches and handles each stanza as the
dead node would have if its session had ended: a message (normal, chat, headline) goes to the
account's sessions on the live nodes by the usual rules (RFC 6121 §8.5: the same full JID if it
is bound again elsewhere, else the bare JID's choice), or to offline storage when it has none;
an IQ is bounced with service-unavailable; presence is dropped. Each batch is XDEL'd once
handled; the empty inbox is removed with the node's name, atomically, and only while the node is
still not alive (a node that came back keeps its inbox).

A node stopping cleanly does the same for its own inbox, once its sessions are closed and its
heartbeat key is gone (no one sends to it any more).

The dead node's sessions may still be in this node's mirror (it buries the node at its own
heartbeat): they are left out by name, so nothing is sent back to the dead inbox.
"""

from __future__ import annotations

from twisted.internet import defer, task

from xmppd.cluster.directory import PREFIX, alive_key
from xmppd.cluster.redis import log_failure
from xmppd.cluster.streams import BATCH, INBOXES, gathered, inbox_key, read_entry
from xmppd.im.message_delivery import STORABLE, recipients
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)

LOCK_MS = 60_000  # a rescuer that died lets another take over after this

# KEYS: the inbox, the set of inboxes, the node's alive key; ARGV: the node. 1 if removed.
DROP_IF_EMPTY = """if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1"""


def lock_key(node: str) -> str:
    return f"{PREFIX}rescue:{node}"


class Rescue:
    """Empties the inboxes of dead nodes (and ours on a clean stop)."""

    def __init__(self, redis, node: str, heartbeat: float, local, remote, arrivals,
                 deliver_to_all: bool, reactor) -> None:
        self.redis = redis
        self.node = node
        self.heartbeat = heartbeat
        self.local = local  # this node's SessionRegistry
        self.remote = remote  # the SessionDirectory: get(full), resources(bare)
        self.arrivals = arrivals  # undelivered(stanza): local sessions, offline, bounce
        self.deliver_to_all = deliver_to_all
        self.reactor = reactor
        self._sweeps: task.LoopingCall | None = None

    def start(self) -> defer.Deferred:
        """Name our inbox, then look for dead nodes' inboxes at every heartbeat."""
        self._sweeps = task.LoopingCall(self._sweep_logged)
        self._sweeps.clock = self.reactor
        self._sweeps.start(self.heartbeat, now=False)
        return self.redis.sadd(INBOXES, self.node)

    def stop(self) -> None:
        if self._sweeps is not None and self._sweeps.running:
            self._sweeps.stop()

    def _sweep_logged(self) -> defer.Deferred:
        return self.sweep().addErrback(log_failure, "cluster rescue sweep failed")

    @defer.inlineCallbacks
    def sweep(self):
        """Rescue every inbox whose node is not alive."""
        yield self.redis.sadd(INBOXES, self.node)  # again: Redis may have lost it
        names = yield self.redis.smembers(INBOXES)
        for name in sorted(names):
            if name != self.node and not (yield self.redis.exists(alive_key(name))):
                yield self.empty(name)

    @defer.inlineCallbacks
    def empty(self, name: str):
        """Handle what ``name``'s inbox holds, if no other node is doing it; how many."""
        locked = yield self.redis.set(lock_key(name), self.node, pexpire=LOCK_MS,
                                      only_if_not_exists=True)
        if not locked:
            return 0
        key, count = inbox_key(name), 0
        try:
            while True:
                entries = yield self.redis.execute_command("XRANGE", key, "-", "+",
                                                           "COUNT", BATCH)
                if not entries:
                    break
                results = []
                for _entry_id, fields in entries:
                    entry = read_entry(fields)
                    if entry is not None:
                        results.append(self.rescue(entry[0], name))
                yield gathered(results)
                yield self.redis.execute_command("XDEL", key, *[e[0] for e in entries])
                count += len(entries)
            yield self.redis.eval(DROP_IF_EMPTY, keys=[key, INBOXES, alive_key(name)],
                                  args=[name])
        finally:
            yield self.redis.delete(lock_key(name))
        if count and name == self.node:
            log.info("{count} stanzas left in this node's inbox went to the live nodes",
                     count=count)
        elif count:
            log.warn("cluster node {node} is gone: {count} stanzas it had not handed over were "
                     "taken over by {me}", node=name, count=count, me=self.node)
        return count

    def rescue(self, stanza: Stanza, dead: str):
        """``stanza`` was for a session of the node ``dead``: where it goes now."""
        if stanza.kind == "message" and stanza.type in STORABLE:
            chosen = self._sessions_for(stanza, dead)
            if chosen:
                for session in chosen:
                    session.send(stanza.element)
                return None
        return self.arrivals.undelivered(stanza)

    def _sessions_for(self, stanza: Stanza, dead: str) -> list:
        recipient = stanza.recipient
        if recipient.resource is not None:
            same = self.local.get(recipient) or self.remote.get(recipient)
            if same is not None and getattr(same, "node", None) != dead:
                return [same]
        account = recipient.bare()
        sessions = self.local.resources(account) + [
            s for s in self.remote.resources(account) if s.node != dead]
        return recipients(sessions, self.deliver_to_all or stanza.type == "headline")
