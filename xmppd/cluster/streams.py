"""Stanzas between nodes on Redis Streams: what one node accepted for a session on another stays
in Redis until that node has handed it over, so a node that dies loses none of it.

Each node has an inbox, the stream ``xmppd:inbox:NODE``; an entry has one field, ``m``: the
session's full JID, a newline, the stanza's XML (one field, not two: txredisapi spends a reactor
turn on each string of a reply), in the order they were sent. ``xmppd:inboxes`` names the nodes
that have one, for the rescue (xmppd.cluster.rescue).

- **Sending** is one command, the SEND script: XADD to the node's inbox only while the node's
  heartbeat key exists. A node that is not alive gets nothing (its inbox would wait for a rescue):
  the stanza is handled at once here, as undelivered (the account's sessions on this node, else
  offline storage), as PUBLISH to nobody was before. A command lost with the Redis connection is
  sent again once txredisapi has reconnected, for ``RETRY_FOR`` seconds and at most
  ``MAX_WAITING`` stanzas at once; past that, undelivered: kept offline, not lost.
- **Reading**: a connection of its own blocks in XREAD on our inbox from the last entry handled;
  each entry goes to its session (``arrived``; a session gone meanwhile: the account's other
  sessions here or offline storage, whose write is waited for), and only then is XDEL'd, in one
  command per batch, pipelined before the next XREAD. So the inbox holds exactly what this node
  has not yet handed over: at-least-once (a node killed between handing a batch over and its
  XDEL hands it over again, or the rescue stores it offline: a duplicate, never a loss).

Why streams and not the pub/sub of the first step: PUBLISH is fire and forget, so a stanza
published while the receiver was dying, or while its subscription was reconnecting, was lost.
The cost (README, "When a node dies"): per cross-node stanza, an XADD by a script instead of a
PUBLISH, and an XDEL shared by the batch; the XREAD is shared by the batch too.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, task
from twisted.python.failure import Failure

from xmppd.cluster import redis as cluster_redis
from xmppd.cluster.directory import PREFIX, alive_key
from xmppd.errors import StanzaError
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, parse_address
from xmppd.xml.stored import StanzaReader

log = get_logger(__name__)

INBOXES = PREFIX + "inboxes"
BATCH = 256  # entries per XREAD / XRANGE
BLOCK_MS = 5000  # an XREAD waits at most this long, then asks again (a half-open connection)
RETRY_FOR = 30.0  # seconds a stanza waits for Redis to come back before it is kept offline
RETRY_DELAY = 0.25  # seconds between two tries of a command that failed with the connection
MAX_WAITING = 10000  # stanzas waiting for Redis at once; more are kept offline at once

# KEYS: the node's alive key, its inbox; ARGV: "FULL_JID\nXML". 1, or 0 for a dead node (an
# integer reply: txredisapi parses a bulk one, such as the entry id, far more slowly)
SEND = """if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[1])
return 1"""


def inbox_key(node: str) -> str:
    return f"{PREFIX}inbox:{node}"


def stanza_of(element) -> Stanza | None:
    """A stanza from another node, addressed as its XML says; None if its addresses are bad."""
    try:
        return Stanza(element, parse_address(element, "from"), parse_address(element, "to"))
    except StanzaError:
        return None


_READER = StanzaReader()  # one parser kept open for the whole inbox (xmppd.xml.stored)


def read_entry(fields) -> tuple[Stanza, JID] | None:
    """An inbox entry's stanza and the full JID it is for; None (logged) if malformed."""
    text = str(fields[1]) if len(fields) == 2 and fields[0] == "m" else ""
    jid, _, xml = text.partition("\n")
    element = _READER.read(xml) if xml else None
    try:
        full = parse_jid(jid)
    except InvalidJID:
        full = None
    stanza = stanza_of(element) if element is not None else None
    if stanza is None or stanza.recipient is None or full is None or full.resource is None:
        log.warn("ignored a malformed stanza from the cluster: {fields!r}",
                 fields=str(fields)[:200])
        return None
    return stanza, full


def gathered(results: list) -> defer.Deferred:
    """Wait for the Deferreds among ``results``; a failure is logged, never raised (the entry
    is handled as well as it could be: offline storage failing is logged where it fails)."""
    waits = [r for r in results if isinstance(r, defer.Deferred)]
    d = defer.gatherResults(waits, consumeErrors=True) if waits else defer.succeed(None)
    return d.addErrback(lambda failure: log.failure("a stanza from the cluster failed",
                                                    failure))


class StanzaStreams:
    """Our inbox read, the other nodes' written."""

    def __init__(self, redis, reader, node: str, arrived: Callable, undelivered: Callable,
                 reactor) -> None:
        self.redis = redis  # the node's command connection
        self.reader = reader  # a connection of our own: XREAD blocks it
        self.node = node
        self.arrived = arrived  # arrived(stanza, full_jid) -> None or a Deferred
        self.undelivered = undelivered  # undelivered(element): could not be sent
        self.reactor = reactor
        self.waiting = 0  # stanzas sent and not yet answered by Redis
        self._reading = False
        self._handing: defer.Deferred | None = None  # fires when the batch in hand is done
        self._unremoved: list[str] = []  # handed over, XDEL lost with the connection
        self._outage = False  # a send failed with the connection: told once until one works

    # -- sending

    def send(self, node: str, full_jid: JID, element) -> None:
        """Put ``element`` in ``node``'s inbox for its session ``full_jid``."""
        if self.waiting >= MAX_WAITING:
            log.warn("{count} stanzas wait for Redis: {jid}'s handled here",
                     count=self.waiting, jid=full_jid)
            self.undelivered(element)
            return
        self._put(node, full_jid.full(), element.toXml(), element,
                  self.reactor.seconds() + RETRY_FOR)

    def _put(self, node: str, full: str, xml: str, element, until: float) -> None:
        self.waiting += 1
        connected = cluster_redis.connected(self.redis)
        d = self.redis.eval(SEND, keys=[alive_key(node), inbox_key(node)],
                            args=[f"{full}\n{xml}"])
        if not connected:  # it waits for the reconnection: not for ever
            d.addTimeout(max(until - self.reactor.seconds(), RETRY_DELAY), self.reactor)
        d.addBoth(self._put_done, node, full, xml, element, until)

    def _put_done(self, result, node: str, full: str, xml: str, element, until: float) -> None:
        self.waiting -= 1
        if isinstance(result, Failure):
            if result.check(*cluster_redis.LOST) and self.reactor.seconds() < until:
                # txredisapi reconnects; the command then goes out on the new connection
                if not self._outage:
                    self._outage = True
                    log.warn("Redis connection lost: stanzas for other nodes wait for it "
                             "(up to {seconds:g} s each)", seconds=RETRY_FOR)
                task.deferLater(self.reactor, RETRY_DELAY, self._put, node, full, xml,
                                element, until)
                return
            if result.check(defer.TimeoutError, defer.CancelledError, *cluster_redis.LOST):
                log.warn("Redis did not come back in time: the stanza for {jid} handled here",
                         jid=full)
            else:
                cluster_redis.log_failure(result, f"a stanza for {full} not sent to {node}")
            self.undelivered(element)
        elif result:
            self._outage = False
        else:
            log.warn("cluster node {node} is not alive: the stanza for {jid} handled here",
                     node=node, jid=full)
            self.undelivered(element)

    # -- reading

    def start(self) -> None:
        """Read our inbox from its first entry: what an earlier life of this node left there
        is for sessions that are gone, so it goes to their account's sessions or offline."""
        self._reading = True
        self._read().addErrback(lambda failure: log.failure("the cluster inbox reader failed",
                                                            failure))

    def stop(self) -> defer.Deferred:
        """Stop reading: fires once the batch in hand, if any, is handed over and removed
        from the inbox; then the caller closes the reader (ending a blocked XREAD)."""
        self._reading = False
        return self._handing if self._handing is not None else defer.succeed(None)

    @defer.inlineCallbacks
    def _read(self):
        key, last = inbox_key(self.node), "0-0"
        while self._reading:
            if self._unremoved:  # not read again (we go on from ``last``): removed now
                self._remove(key, [])
            try:
                reply = yield self.reader.execute_command(
                    "XREAD", "COUNT", BATCH, "BLOCK", BLOCK_MS, "STREAMS", key, last)
            except Exception:
                if not self._reading:
                    break
                cluster_redis.log_failure(Failure(), "reading the cluster inbox")
                yield task.deferLater(self.reactor, RETRY_DELAY, lambda: None)
                continue
            ids, waits = [], []
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    ids.append(entry_id)
                    entry = read_entry(fields)
                    result = self.arrived(*entry) if entry is not None else None
                    if result is not None:  # offline storage: waited for
                        waits.append(result)
            if not ids:
                continue
            last = ids[-1]
            if waits:
                self._handing = defer.Deferred()
                yield gathered(waits)
            # pipelined before the next XREAD on this connection; waited for on a stop
            removed = self._remove(key, ids)
            if not self._reading:
                yield removed
            handing, self._handing = self._handing, None
            if handing is not None:
                handing.callback(None)

    def _remove(self, key: str, ids: list[str]) -> defer.Deferred:
        """XDEL what was handed over, with what an earlier XDEL lost with the connection."""
        ids, self._unremoved = self._unremoved + ids, []

        def failed(failure) -> None:
            if failure.check(*cluster_redis.LOST):
                self._unremoved[:0] = ids  # again after the reconnection
            cluster_redis.log_failure(failure, "removing handed-over stanzas from the inbox")

        return self.reader.execute_command("XDEL", key, *ids).addErrback(failed)
