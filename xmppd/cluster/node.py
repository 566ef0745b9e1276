"""This server as one node of a cluster: the parts of xmppd.cluster wired into it.

Started by the service after the plugins (so the message plugin's delivery link exists)
and before the listeners (no client binds before the registry and the channels are up);
stopped after the streams are closed.

Stanzas for sessions on other nodes travel on Redis Streams, an inbox per node
(xmppd.cluster.streams): an entry leaves the inbox only once handed over, and a dead node's
inbox is emptied by a live one (xmppd.cluster.rescue), so no accepted message is lost. Order
is kept per sending node (one connection). Requests between nodes that only make sense live
(presence requests, the registry's changes) stay on pub/sub, one channel per node
(``xmppd:stanzas:NODE``) and the registry's.
"""

from __future__ import annotations

from twisted.internet import defer

from xmppd import events
from xmppd.admin.api import AdminAPI
from xmppd.admin.commands import AdminCommand
from xmppd.cluster import redis as cluster_redis
from xmppd.cluster.accounts import relay_deletions
from xmppd.cluster.address import parse_redis_url
from xmppd.cluster.broadcast import BROADCAST_CHANNEL, Broadcast
from xmppd.cluster.delivery import Arrivals, RemoteDelivery
from xmppd.cluster.directory import REGISTRY_CHANNEL, SessionDirectory, stanza_channel
from xmppd.cluster.locks import ClusterLocks
from xmppd.cluster.pep import relay_pep
from xmppd.cluster.rescue import Rescue
from xmppd.cluster.resumption import RemoteResumption
from xmppd.cluster.rooms import RoomCluster
from xmppd.cluster.rosters import relay_rosters
from xmppd.cluster.streams import StanzaStreams, stanza_of
from xmppd.cluster.view import ClusterView
from xmppd.dispatch import DELIVERY_PRIORITY
from xmppd.im.carbons import CARBONS_CHANGED
from xmppd.im.presence_stanzas import readdressed
from xmppd.interfaces import IClusterLocks, IMucRooms, IRemoteResumption, IResumableSessions
from xmppd.jid import InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import MESSAGE_TYPES, Stanza
from xmppd.xml.stored import StanzaReader

log = get_logger(__name__)

# On a node's channel: "FULL_JID\nXML", a stanza for that session, or "present\nFULL_JID\nTO",
# a presence request (a JID's resource may hold spaces, never a newline)
PRESENT = "present"
CONNECT_TIMEOUT = 10.0  # seconds for Redis to answer at start, else the server does not start


class ClusterNode:
    def __init__(self, server, config) -> None:
        self.server = server
        self.config = config  # ClusterConfig
        self.address = parse_redis_url(config.redis)
        self.redis = None
        self.subscriber = None
        self.reader = None  # the inbox's own connection (XREAD blocks it)
        self.streams: StanzaStreams | None = None
        self.rescue: Rescue | None = None
        self.directory: SessionDirectory | None = None
        self.rooms = None  # xmppd.cluster.rooms.RoomCluster, with the muc plugin
        self.broadcast: Broadcast | None = None  # news for every node (rosters, PEP)
        self.view: ClusterView | None = None  # what xmppdctl cluster shows
        self.resumption: RemoteResumption | None = None  # XEP-0198 resumes across nodes
        self._undo: list = []
        self._stanza_reader = StanzaReader()  # the stanzas other nodes forward here
        deliver_to_all = server.config.c2s.bare_message_delivery == "all"
        self.arrivals = Arrivals(server.sessions, server.query, server.router.bounce,
                                 deliver_to_all)
        self._deliver_to_all = deliver_to_all

    @defer.inlineCallbacks
    def start(self):
        reactor = self.server.reactor
        self.redis = cluster_redis.connect(self.address)
        self.directory = SessionDirectory(self.redis, self.config.node, self.config.heartbeat,
                                          self.server.sessions, self.forward, reactor,
                                          self._bound_elsewhere)
        self.broadcast = Broadcast(self.redis, self.config.node)
        self.view = ClusterView(self.redis, self.config.node, self.config.heartbeat, reactor,
                                AdminAPI(None, (), self.server).list_s2s)
        self.reader = cluster_redis.connect(self.address)
        self.streams = StanzaStreams(self.redis, self.reader, self.config.node,
                                     self.arrivals.arrived, self._undelivered, reactor)
        self.rescue = Rescue(self.redis, self.config.node, self.config.heartbeat,
                             self.server.sessions, self.directory, self.arrivals,
                             self._deliver_to_all, reactor)
        subscribed = defer.Deferred()

        def on_subscribed() -> None:
            if not subscribed.called:
                subscribed.callback(None)
            else:  # again after a reconnection: catch up at once
                self.directory.beat().addErrback(cluster_redis.log_failure,
                                                 "cluster catch-up failed")

        self.subscriber = cluster_redis.subscribe(
            reactor, self.address,
            (REGISTRY_CHANNEL, stanza_channel(self.config.node), BROADCAST_CHANNEL),
            self._on_message, on_subscribed)
        started = defer.gatherResults([subscribed, self.directory.start(), self.view.start(),
                                       self.rescue.start()], consumeErrors=True)
        started.addTimeout(CONNECT_TIMEOUT, reactor)
        try:
            yield started
        except Exception:
            yield self._disconnect()
            raise RuntimeError(f"[cluster] no answer from Redis at {self.address} "
                               f"within {CONNECT_TIMEOUT:g} seconds") from None
        self.directory.presenter = self.present
        self.streams.start()
        self._wire()
        yield self._start_rooms()
        log.info("cluster node {node} up: Redis {redis}, {count} sessions on other nodes",
                 node=self.config.node, redis=str(self.address), count=len(self.directory))

    def _wire(self) -> None:
        server, directory = self.server, self.directory
        bus = server.events
        for event in (events.SESSION_BOUND, events.RESOURCE_AVAILABLE,
                      events.RESOURCE_UNAVAILABLE):
            self._undo.append(bus.on(event, self._written))
        self._undo.append(bus.on(events.SESSION_CLOSED, self._erased))
        self._undo.append(bus.on(CARBONS_CHANGED, self._carbons))
        server.router.use_remote_sessions(directory)
        self._undo.append(lambda: server.router.use_remote_sessions(None))
        links = RemoteDelivery(server.sessions, directory, self._deliver_to_all)
        dispatcher = server.dispatcher
        for type in MESSAGE_TYPES:
            self._undo.append(dispatcher.add_stanza("message", type, "full", links.to_full,
                                                    DELIVERY_PRIORITY + 1))
            self._undo.append(dispatcher.add_stanza("message", type, "bare", links.to_bare,
                                                    DELIVERY_PRIORITY + 1))
        self._undo += relay_rosters(bus, self.broadcast)
        # news sent again until every node with sessions heard it (xmppd.cluster.insist)
        insisting = (directory.receivers, lambda: cluster_redis.connected(self.redis),
                     server.reactor, self.config.heartbeat)
        self._undo += relay_pep(bus, self.broadcast, *insisting)
        self._undo += relay_deletions(bus, self.broadcast, server.sessions, *insisting)
        locks = ClusterLocks(self.redis, self.config.node,
                             lambda: cluster_redis.connected(self.redis), server.reactor)
        self._undo.append(server.provide(IClusterLocks, locks))  # the roster plugin's
        self.resumption = RemoteResumption(self.config.node, self.broadcast, self.redis.publish,
                                           lambda: server.query(IResumableSessions),
                                           server.reactor)
        self._undo.append(self.resumption.start())
        self._undo.append(server.provide(IRemoteResumption, self.resumption))
        for name, handler, help, args in self.view.admin_commands():
            self._undo.append(server.admin_commands.add(
                AdminCommand(name, handler, help, args, plugin="cluster")))

    def _start_rooms(self) -> defer.Deferred | None:
        muc = self.server.query(IMucRooms)
        if muc is None:
            return None
        self.rooms = RoomCluster(self.config.node, self.config.heartbeat, self.redis, muc,
                                 self.server, self.directory, self.server.reactor)
        memberships = self.rooms.memberships  # a session resumed on another node: its rooms
        self._undo.append(self.server.c2s_hooks.add_state_carrier(
            "muc-rooms", memberships.export, memberships.restore))
        return self.rooms.start()

    @defer.inlineCallbacks
    def stop(self):
        """Leave the cluster cleanly: rooms handed over, the view and the registry entries
        removed, the inbox's leftovers handed to the live nodes. Bounded: all of it shares
        one deadline (a second when Redis is already gone, as when Ctrl-C stopped it too),
        after which the others learn of our death from the heartbeat's expiry instead."""
        reactor = self.server.reactor
        connected = self.redis is not None and cluster_redis.connected(self.redis)
        deadline = reactor.seconds() + (CONNECT_TIMEOUT if connected else 1.0)

        def in_time(work: defer.Deferred, what: str) -> defer.Deferred:
            left = max(0.1, deadline - reactor.seconds())

            def failed(failure) -> None:
                if failure.check(defer.TimeoutError, *cluster_redis.LOST):
                    log.warn("cluster node {node} {what}: Redis did not answer in time",
                             node=self.config.node, what=what)
                else:
                    log.failure("cluster node {node} {what}", failure,
                                node=self.config.node, what=what)

            return work.addTimeout(left, reactor).addErrback(failed)

        if self.rooms is not None:
            yield in_time(self.rooms.stop(), "could not hand its rooms over")
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self.view is not None:
            yield in_time(self.view.stop(), "leaves its view in Redis until it expires")
        if self.directory is not None:
            yield in_time(self.directory.stop(), "could not leave the registry cleanly (its "
                                                 "sessions expire with its heartbeat)")
        if self.streams is not None:  # what is left in our inbox: to the live nodes
            yield in_time(self.streams.stop(), "could not finish its inbox's batch")
            self.rescue.stop()
            yield self.reader.disconnect()
            yield in_time(self.rescue.empty(self.config.node), "could not hand its inbox "
                                                                "over (a live node takes it over)")
        yield self._disconnect()

    def _disconnect(self) -> defer.Deferred:
        calls = []
        if self.subscriber is not None:
            calls.append(self.subscriber.disconnect())
        for connection in (self.reader, self.redis):
            if connection is not None:
                calls.append(connection.disconnect())
        return defer.gatherResults(calls, consumeErrors=True).addErrback(lambda _: None)

    # -- the registry

    def _written(self, session) -> None:
        if session.jid is not None and self.server.sessions.get(session.jid) is session:
            self._logged(self.directory.write(session))

    def _erased(self, session, polite=None) -> None:
        self.directory.carbons.discard(session)
        if session.jid is not None and self.server.sessions.get(session.jid) is None:
            self._logged(self.directory.erase(session))

    def _carbons(self, session, enabled: bool) -> None:
        """The registry carries the flag: other nodes copy to this resource (XEP-0280)."""
        if enabled:
            self.directory.carbons.add(session)
        else:
            self.directory.carbons.discard(session)
        self._written(session)

    def _bound_elsewhere(self, full_jid) -> None:
        """A session with one of our sessions' full JIDs on another node: with
        ``resource_conflict = "replace"`` the newer one wins, as on one node (with "rename"
        both stay, each node routing to its own)."""
        session = self.server.sessions.get(full_jid)
        if session is not None and self.server.config.c2s.resource_conflict == "replace":
            log.info("{jid} replaced by a new session on another node", jid=full_jid)
            session.close("conflict", "replaced by a new session with the same resource")

    @staticmethod
    def _logged(d: defer.Deferred) -> None:
        """Redis writes never hold up a session: failures are logged, the heartbeat repairs."""
        d.addErrback(cluster_redis.log_failure, "cluster registry write failed")

    # -- stanzas between nodes

    def forward(self, node: str, full_jid, element) -> None:
        """Send ``element`` to the session ``full_jid`` on ``node`` (its inbox)."""
        self.streams.send(node, full_jid, element)

    def present(self, node: str, full_jid, to) -> None:
        """Ask ``node`` to send its session ``full_jid``'s last presence to ``to``."""
        d = self.redis.publish(stanza_channel(node),
                               f"{PRESENT}\n{full_jid.full()}\n{to.full()}")
        d.addErrback(cluster_redis.log_failure, f"a presence request for {full_jid} not sent")

    def _presented(self, message: str) -> None:
        """Another node asked for our session's presence (a probe, a new subscriber): sent
        from here, through the chain, as the presence plugin would have."""
        try:
            _, full, to = message.split("\n")
            full_jid, recipient = parse_jid(full), parse_jid(to)
        except (ValueError, InvalidJID):
            log.warn("ignored a malformed presence request: {text!r}", text=message[:200])
            return
        session = self.server.sessions.get(full_jid)
        if session is None or not session.available or session.presence is None:
            return  # gone or unavailable meanwhile: its unavailable presence went out
        element = readdressed(session.presence, full_jid, recipient)
        result = self.server.router.route(Stanza(element, full_jid, recipient), None)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("presence for {to} failed", failure,
                                                          to=recipient))

    def _undelivered(self, element) -> None:
        stanza = self._stanza(element)
        if stanza is not None:
            self.arrivals.undelivered(stanza)

    def _on_message(self, channel: str, message: str) -> None:
        if self.rooms is not None and self.rooms.takes(channel, message):
            return
        if self.resumption is not None and self.resumption.takes(channel, message):
            return
        if channel == REGISTRY_CHANNEL:
            self.directory.on_registry(message)
            return
        if channel == BROADCAST_CHANNEL:
            self.broadcast.received(message)
            return
        full, _, xml = message.partition("\n")
        if full == PRESENT:
            self._presented(message)
            return
        element = self._stanza_reader.read(xml)
        try:
            recipient = parse_jid(full)
        except InvalidJID:
            element = None
        stanza = self._stanza(element) if element is not None else None
        if stanza is None or stanza.recipient is None:
            log.warn("ignored a malformed stanza from the cluster: {text!r}", text=message[:200])
            return
        self.arrivals.arrived(stanza, recipient)

    _stanza = staticmethod(stanza_of)


def start_cluster(server) -> defer.Deferred:
    """A ClusterNode started for the server's ``[cluster]`` (the caller checked there is
    one: this module needs the optional Redis client)."""
    node = ClusterNode(server, server.config.cluster)
    return node.start().addCallback(lambda _: node)
