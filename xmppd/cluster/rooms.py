# -*- test-case-name: tests.unit.test_cluster_rooms -*-
"""MUC rooms in a cluster: each room runs on one node, the others carry its stanzas there.

The node of a room is chosen by rendezvous hashing of its bare JID over the live nodes
(``xmppd.cluster.placement``). A link at the top of the MUC service's chain looks at every
stanza for a room or an occupant (presence, messages, IQs), whoever sent it (a local
client, a federated server, the server itself): a room of another node is published on that
node's channel (``room\\nXML``), where it enters the service as if it had arrived there; a
room of this node goes on to the MUC plugin, which runs it as on a single server. What the
room sends to occupants on other nodes reaches them through the cluster's delivery
(``xmppd.cluster.delivery``, the router's remote sessions).

When the live set changes (a node's ``rooms-up``/``rooms-down`` on the registry channel, or
the heartbeat readings of ``placement.read_alive``):

- a node that joined takes its rooms whole: each node hands it the live rooms it ran and no
  longer owns (``handoff\\nJSON``: config, affiliations, occupants, history), so their
  occupants notice nothing, then says it is done (``handed\\nNODE``). Until every node that
  was live has said so (at most ``SETTLE_HEARTBEATS``), the new node holds the stanzas for
  its rooms: a join carried there by a third node cannot enter a room still on its way. A
  node that stops cleanly hands all of its rooms over the same way before it says
  ``rooms-down``, which Redis then delivers after them, and ahead of every stanza the other
  nodes carry to the rooms' new nodes after reading it;
- a node that died took its rooms' occupants and history with it. Its persistent rooms are
  loaded from the shared database by their new nodes (stanzas for a room of this node wait
  while that load runs, so a join cannot make a fresh room over a stored one); every node
  sends its own sessions that were in one of its rooms the service's shutdown presence (332,
  ``xmppd.cluster.memberships``), and every node's rooms drop the occupant sessions of the
  dead node (unavailable presence to the others, as for a session gone without a word).

The public rooms of each node are listed in Redis (``rooms:NODE``, written at each heartbeat)
and the service's disco#items on any node adds those of the others.
"""

from __future__ import annotations

import json

from twisted.internet import defer, task

from xmppd import events
from xmppd.cluster.directory import PREFIX, REGISTRY_CHANNEL, stanza_channel
from xmppd.cluster.memberships import Memberships
from xmppd.cluster.placement import Liveness, owner, read_alive
from xmppd.cluster.redis import log_failure
from xmppd.cluster.streams import stanza_of
from xmppd.disco import DiscoItem
from xmppd.interfaces import IMucRooms
from xmppd.jid import JID, InvalidJID
from xmppd.logs import get_logger
from xmppd.muc.discovery import public_items
from xmppd.stanza import IQ_TYPES, MESSAGE_TYPES, PRESENCE_TYPES, Stanza
from xmppd.xml.stored import StanzaReader

log = get_logger(__name__)

ROOM = "room"  # on a node's channel: "room\nXML", a stanza for a room the node runs
HANDOFF = "handoff"  # "handoff\nJSON", a room it runs from now on
HANDED = "handed"  # "handed\nNODE": NODE handed over what it had for a node that started
MESSAGES = (ROOM, HANDOFF, HANDED)
SETTLE_HEARTBEATS = 2  # a node that starts waits at most this long for the others' rooms
UP, DOWN = "rooms-up", "rooms-down"  # on the registry channel: "rooms-up NODE"
PLACE_PRIORITY = 10_000  # above every link of the MUC service
CHAIN = (("presence", PRESENCE_TYPES), ("message", MESSAGE_TYPES), ("iq", IQ_TYPES))


class Forwarded:
    """The origin of a stanza another node sent here: it is run here, never sent on (no
    loops, even while two nodes disagree for an instant about the live set)."""

    def __repr__(self) -> str:
        return "<a stanza from another node>"


FORWARDED = Forwarded()


def rooms_key(node: str) -> str:
    return f"{PREFIX}rooms:{node}"


class RoomCluster:
    """The rooms of this node's MUC service (``IMucRooms``) placed over the live nodes."""

    def __init__(self, node: str, heartbeat: float, redis, muc, server, directory,
                 reactor) -> None:
        self.me = node
        self.heartbeat = heartbeat
        self.redis = redis
        self.muc = muc
        self.server = server
        self.directory = directory  # the session registry's mirror: get(full_jid)
        self.reactor = reactor
        self.liveness = Liveness(node)
        self.left: set[str] = set()  # nodes that said rooms-down while their key lives on
        self.memberships = Memberships(lambda jid: jid.host in self.muc.domains)
        self._loading: defer.Deferred | None = None
        self._reader = StanzaReader()  # the room stanzas other nodes forward here
        self._load_again = False
        self._waiting: list[defer.Deferred] = []
        self._awaiting: set[str] = set()  # nodes yet to hand over their rooms (at start)
        self._published: dict[str, str] | None = None
        self._tick: task.LoopingCall | None = None
        self._undo: list = []

    @property
    def live(self) -> frozenset[str]:
        return self.liveness.live

    def owner(self, room: JID) -> str:
        return owner(room.full(), self.live)

    # -- life

    @defer.inlineCallbacks
    def start(self):
        """The live set read, the rooms this node does not own forgotten (the plugin loaded
        every stored room: none has occupants yet), the links in, the others told."""
        self.liveness.live = frozenset((yield read_alive(self.redis)) | {self.me})
        self._forget_others()
        self._awaiting = set(self.live - {self.me})
        if self._awaiting:
            self.reactor.callLater(SETTLE_HEARTBEATS * self.heartbeat, self._settled, None)
        self._wire()
        yield self.redis.publish(REGISTRY_CHANNEL, f"{UP} {self.me}")
        yield self._publish_rooms()
        self._tick = task.LoopingCall(self._tick_logged)
        self._tick.clock = self.reactor
        self._tick.start(self.heartbeat, now=False)
        log.info("cluster rooms: {count} run here, nodes {nodes}", count=len(self.muc.rooms),
                 nodes=" ".join(sorted(self.live)))

    def _forget_others(self) -> None:
        """Drop the rooms another node owns (a plugin that started loads every stored room;
        none has occupants yet)."""
        for jid in [jid for jid in self.muc.rooms if self.owner(jid) != self.me]:
            self.muc.close(jid)

    def _unwire(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _wire(self) -> None:
        dispatcher = self.muc.dispatcher
        for kind, types in CHAIN:
            for type in types:
                for target in ("bare", "full"):
                    self._undo.append(dispatcher.add_stanza(kind, type, target, self.place,
                                                            PLACE_PRIORITY))
        server_chain = self.server.dispatcher
        for type in ("available", "unavailable"):
            self._undo.append(server_chain.add_stanza("presence", type, "outgoing",
                                                      self.memberships.outgoing,
                                                      PLACE_PRIORITY))
        self._undo.append(self.server.events.on(events.SESSION_CLOSED,
                                                self.memberships.session_closed))
        self.muc.elsewhere = self.elsewhere
        self._undo.append(lambda: setattr(self.muc, "elsewhere", None))

    @defer.inlineCallbacks
    def stop(self):
        """A clean stop: every room handed to the node that owns it without this one, then
        the others told (their stanzas for those rooms go there from now on)."""
        if self._tick is not None and self._tick.running:
            self._tick.stop()
        others = self.live - {self.me}
        if others:  # published in this order on one connection: all of them before DOWN
            yield defer.gatherResults([self._hand_off(jid, owner(jid.full(), others))
                                       for jid in list(self.muc.rooms)], consumeErrors=True)
        self._unwire()
        yield self.redis.publish(REGISTRY_CHANNEL, f"{DOWN} {self.me}")
        yield self.redis.delete(rooms_key(self.me))

    # -- stanzas for rooms

    def place(self, stanza: Stanza, origin):
        """The link: a room of another node is sent there; one of ours (or one another node
        sent here) goes on, after what holds it (the others' rooms coming to a node that
        starts, a load of stored rooms that may hold it)."""
        recipient = stanza.recipient
        if recipient.user is None:
            return None
        room = recipient.bare()
        if origin is not FORWARDED:
            node = self.owner(room)
            if node != self.me:
                self._forward(node, stanza)
                return True
        if self._awaiting or (self._loading is not None and room not in self.muc.rooms):
            waiter: defer.Deferred = defer.Deferred()
            self._waiting.append(waiter)
            return waiter
        return None

    def _forward(self, node: str, stanza: Stanza) -> None:
        d = self.redis.publish(stanza_channel(node), f"{ROOM}\n{stanza.element.toXml()}")

        def published(listeners) -> None:
            if not listeners:
                log.warn("cluster node {node} is not listening: a stanza for room {room} "
                         "refused", node=node, room=stanza.recipient.bare())
                self._unreachable(stanza)

        d.addCallback(published)
        d.addErrback(lambda failure: (log_failure(failure, f"a stanza for a room not sent to "
                                                           f"{node}"),
                                      self._unreachable(stanza)))

    def _unreachable(self, stanza: Stanza) -> None:
        """The room's node is not there (dead, not seen dead yet): the sender is told, as
        for a service that does not answer; leaving needs no answer."""
        if stanza.type not in ("unavailable", "error", "result"):
            self.server.router.bounce(stanza, "service-unavailable",
                                      "the room's node does not answer; try again")

    def takes(self, channel: str, message: str) -> bool:
        """Whether a message on this node's subscription is for the rooms, and if so
        handle it: ``rooms-...`` on the registry channel, ``MESSAGES`` on ours."""
        if channel == REGISTRY_CHANNEL:
            if not message.startswith("rooms-"):
                return False
            self.on_registry(message)
            return True
        kind, _, text = message.partition("\n")
        if kind not in MESSAGES:
            return False
        self.on_message(kind, text)
        return True

    def on_message(self, kind: str, text: str) -> None:
        """A message on this node's channel for the rooms (``MESSAGES``)."""
        if kind == HANDOFF:
            self._adopt(text)
            return
        if kind == HANDED:
            self._settled(text)
            return
        element = self._reader.read(text)
        stanza = stanza_of(element) if element is not None else None
        if stanza is None or stanza.recipient is None:
            log.warn("ignored a malformed room stanza from the cluster: {text!r}",
                     text=text[:200])
            return
        result = self.muc.route(stanza, FORWARDED)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("a room stanza failed", failure))

    # -- rooms moving

    def _hand_off(self, jid: JID, node: str) -> defer.Deferred:
        state = self.muc.export(jid)
        if state is None:
            return defer.succeed(None)
        d = self.redis.publish(stanza_channel(node), f"{HANDOFF}\n{json.dumps(state)}")

        def published(listeners) -> None:
            if not listeners:
                self._not_handed(state, node)

        d.addCallback(published)
        d.addErrback(lambda failure: (log_failure(failure, f"room {jid} not handed to {node}"),
                                      self._not_handed(state, node)))
        return d

    def _not_handed(self, state: dict, node: str) -> None:
        """The new node did not take the room: it is closed (332 to its occupants), as on
        a server that stops; a persistent room is in the database for its next node."""
        log.warn("cluster node {node} did not take room {room}: closed", node=node,
                 room=state["jid"])
        room = self.muc.adopt(state)
        self.muc.close(room.jid)

    def _adopt(self, text: str) -> None:
        try:
            room = self.muc.adopt(json.loads(text))
        except (KeyError, TypeError, ValueError, AttributeError, InvalidJID) as error:
            log.error("ignored an unreadable room from the cluster: {error}", error=error)
            return
        log.info("room {room} runs here now, with {count} occupants", room=room.jid,
                 count=len(room.occupants))

    def on_registry(self, message: str) -> None:
        """``rooms-up NODE`` (a node started, or started again) or ``rooms-down NODE``."""
        verb, _, node = message.partition(" ")
        if node == self.me:
            return
        if not node or " " in node or verb not in (UP, DOWN):
            log.warn("ignored a malformed rooms message: {message!r}", message=message[:200])
            return
        live = self.live
        if verb == UP:
            self.left.discard(node)
            # a node that was alive says it started: its last life (and its rooms) ended
            self._changed(self.liveness.joined(node), {node} if node in live else set())
            self.redis.publish(stanza_channel(node), f"{HANDED}\n{self.me}").addErrback(
                log_failure, f"rooms handed to {node}, not said")
        elif node in live:
            self.left.add(node)
            self._changed(live - {node}, set())

    def _tick_logged(self) -> defer.Deferred:
        return self.tick().addErrback(log_failure, "cluster rooms heartbeat failed")

    @defer.inlineCallbacks
    def tick(self):
        """Every heartbeat: the live set read again (deaths seen here), the public rooms
        written for the others' disco."""
        current = self.server.query(IMucRooms)
        if current is not None and current is not self.muc:  # the muc plugin was reloaded
            self._unwire()
            self.muc = current
            self._forget_others()
            self._wire()
        alive = yield read_alive(self.redis)
        self.left &= alive  # a node that left and whose key expired may come back
        new = self.liveness.reading(alive - self.left)
        if new != self.live:
            self._changed(new, set(self.live - new))
        else:  # a room adopted here by a node that saw the live set otherwise goes on
            self._rehome()
        yield self._publish_rooms()

    def _changed(self, new: frozenset[str], dead: set[str]) -> None:
        """The live set becomes ``new``; ``dead`` nodes went without handing their rooms."""
        old = self.live
        if new != old or dead:
            log.info("cluster rooms: nodes {nodes}{dead}", nodes=" ".join(sorted(new)),
                     dead=f" ({' '.join(sorted(dead))} lost)" if dead else "")
        if dead:
            send = self.server.router.send_from_server
            for presence in self.memberships.lost(lambda room: owner(room.full(), old) in dead):
                send(presence)
            self.muc.leave_sessions(lambda session: self._gone(session, dead))
        self.liveness.live = new
        self._rehome()
        if dead:
            for node in dead & self._awaiting:
                self._settled(node)
            for node in dead:
                self.redis.delete(rooms_key(node)).addErrback(
                    log_failure, f"the room list of {node} not removed")
            self._load()

    def _rehome(self) -> None:
        """The rooms here that another node owns now go to it."""
        for jid in list(self.muc.rooms):
            node = self.owner(jid)
            if node != self.me:
                self._hand_off(jid, node)

    def _gone(self, session: JID, dead: set[str]) -> bool:
        """Whether an occupant session was on a node that died: an account of ours not
        bound here and not (or on a dead node) in the registry."""
        if session.host not in self.server.router.domains:
            return False  # a federated occupant: its own server speaks for it
        if self.server.sessions.get(session) is not None:
            return False
        remote = self.directory.get(session)
        return remote is None or remote.node in dead

    def _load(self) -> None:
        """The stored rooms this node owns now, loaded; stanzas for rooms not in memory
        wait for it (``place``)."""
        if self._loading is not None:
            self._load_again = True
            return
        self._loading = defer.ensureDeferred(self.muc.load(
            self.muc.domains, lambda jid: self.owner(jid) == self.me))
        self._loading.addCallbacks(
            lambda count: count and log.info("cluster rooms: {count} stored rooms loaded "
                                             "here", count=count),
            lambda failure: log.failure("cluster rooms: stored rooms not loaded", failure))
        self._loading.addBoth(self._loaded)

    def _loaded(self, _result) -> None:
        self._loading = None
        if self._load_again:  # the live set changed again meanwhile: they wait for that one
            self._load_again = False
            self._load()
            return
        self._release()

    def _settled(self, node: str | None) -> None:
        """``node`` handed over its rooms (None: the wait is over, whoever did not)."""
        if node is None:
            if self._awaiting:
                log.warn("cluster rooms: no word from {nodes}; their rooms for this node "
                         "may come later", nodes=" ".join(sorted(self._awaiting)))
            self._awaiting.clear()
        else:
            self._awaiting.discard(node)
        self._release()

    def _release(self) -> None:
        """The stanzas held for rooms go on, once nothing holds them any more."""
        if self._awaiting or self._loading is not None:
            return
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    # -- the room list

    def _publish_rooms(self) -> defer.Deferred:
        """This node's public rooms for the others' disco: written again at each heartbeat
        (a Redis that restarted empty has them back), replaced when they changed."""
        rooms = {item.jid: item.name or "" for item in public_items(self.muc.rooms.values())}
        if rooms == self._published:
            return self.redis.hmset(rooms_key(self.me), rooms) if rooms else defer.succeed(None)
        self._published = rooms
        d = self.redis.delete(rooms_key(self.me))
        if rooms:
            d.addCallback(lambda _: self.redis.hmset(rooms_key(self.me), rooms))
        return d

    @defer.inlineCallbacks
    def elsewhere(self, domain: str):
        """The public rooms of ``domain`` that the other live nodes run."""
        items = []
        for node in sorted(self.live - {self.me}):
            listed = yield self.redis.hgetall(rooms_key(node))
            items += [DiscoItem(jid, name=name or None) for jid, name in listed.items()
                      if jid.partition("@")[2] == domain]
        return items
