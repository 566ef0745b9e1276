# -*- test-case-name: tests.unit.test_pep_plugin -*-
"""Personal eventing (XEP-0163, with XEP-0222/0223 nodes through publish-options): a pubsub
service at every account's bare JID, on the core of xmppd.pubsub.

Decisions worth knowing:

* Nodes are made on first publish (auto-create); only the account publishes and creates.
* Who gets notifications is learned from presence, never asked at publish time: the
  account's own broadcasts and the available presence its contacts send it carry caps
  (XEP-0115), resolved once per ver (xmppd.pep.caps_cache) and kept per full JID
  (xmppd.pep.interest). The presence links here run above the presence plugin's and let
  the stanza go on at once: a caps look-up (ctx.send_iq, possibly to the very client whose
  stream sent the presence) runs in the background, and the last items follow when it ends.
* disco#info of the bare JID shows the PEP identity and the pubsub features to anyone;
  the account's own disco (the disco plugin's account entity) gets the same declarations.
  The features are those the core implements (xmppd.pubsub.discovery), which is the list
  clients such as Monal look for before they use PEP at all.
* The server advertises its own caps (XEP-0115 §6.3): ``<c/>`` in the stream features and
  the disco#info of its ``node#ver`` (xmppd.pep.server_caps); PEP is what makes caps
  matter, so they are advertised here.
* The account's nodes live in generic stores owned by its bare JID, so deleting the
  account deletes them; only the in-memory tables are cleared here.
* Other plugins publish, read and retract on an account's behalf through ``IPep``
  (xmppd.pep.account), and hear of what the account's clients publish or retract through
  ``events.PEP_CHANGED`` (xmppd.pep.changes), emitted before the IQ is answered so that a
  conversion is done when the client reads again.
"""

from __future__ import annotations

from collections.abc import Coroutine

from twisted.internet import defer
from zope.interface import implementer

from xmppd import events, ns
from xmppd.caps import DiscoInfo, find_caps
from xmppd.errors import StanzaError
from xmppd.interfaces import IPep, IRoster, IXmppdPlugin
from xmppd.jid import JID, parse_jid
from xmppd.logs import get_logger
from xmppd.pep.account import AccountPep
from xmppd.pep.caps_cache import CapsCache, notify_nodes
from xmppd.pep.changes import changes_of
from xmppd.pep.disco import ACCOUNT, info_query, items_query
from xmppd.pep.interest import Interests
from xmppd.pep.notify import Notifier
from xmppd.pep.options import LIMIT_KEYS, limits_of
from xmppd.pep.roster import roster_relationship
from xmppd.pep.server_caps import ServerCaps
from xmppd.plugins._config import reject_unknown_keys
from xmppd.pubsub import PubSub
from xmppd.pubsub.discovery import features, identity, node_info, node_items
from xmppd.pubsub.protocol import handle_iq
from xmppd.stanza import Stanza

log = get_logger(__name__)

# Above the presence plugin's links (priority 0), which consume what they handle.
PRESENCE_PRIORITY = 10


@implementer(IXmppdPlugin)
class Pep:
    name = "pep"
    requires = ("roster", "presence")

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, (*LIMIT_KEYS, "caps_timeout"))
        handlers = PepHandlers(ctx, limits_of(ctx),
                               ctx.option_int("caps_timeout", 5, minimum=1, maximum=60))
        self._handlers = handlers
        ctx.provide(IPep, AccountPep(handlers.pubsub, handlers.notifier))
        for namespace in (ns.PUBSUB, ns.PUBSUB_OWNER):
            for type in ("get", "set"):
                ctx.iq(type, namespace, "pubsub", handlers.on_pubsub, to=("self", "bare"))
        kind = identity(pep=True)
        ctx.identity(kind.category, kind.type, to="account")
        for feature in features(pep=True):
            ctx.feature(feature, to="account")
        ctx.disco_info(handlers.own_node_info, to="account")
        ctx.disco_items(handlers.own_items, to="account")
        ctx.iq("get", ns.DISCO_INFO, "query", handlers.on_bare_info, to="bare")
        ctx.iq("get", ns.DISCO_ITEMS, "query", handlers.on_bare_items, to="bare")
        for type in ("available", "unavailable"):
            ctx.stanza("presence", type, "bare", handlers.on_contact_presence,
                       PRESENCE_PRIORITY)
            ctx.stanza("presence", type, "outgoing", handlers.on_own_presence,
                       PRESENCE_PRIORITY)
        ctx.on(events.SESSION_CLOSED, handlers.on_session_closed)
        ctx.carry_session_state("pep", handlers.export_interests, handlers.restore_interests)
        ctx.on(events.USER_DELETED, handlers.on_user_deleted)
        ctx.on(events.S2S_LINK_DOWN, handlers.interests.forget_domain)
        ctx.on(events.PEP_NOTIFIED_ELSEWHERE, handlers.on_notified_elsewhere)
        server_caps = ServerCaps(ctx.send_iq, ctx.domains)
        self.server_caps = server_caps
        ctx.stream_feature(server_caps.stream_feature)
        ctx.disco_info(server_caps.node_info)
        ctx.on(events.SERVER_STARTED, lambda: defer.ensureDeferred(server_caps.refresh()))

    def teardown(self) -> None:
        self._handlers.stop()


class PepHandlers:
    """The handlers of one loaded plugin, with its in-memory tables."""

    def __init__(self, ctx, limits, caps_timeout: int) -> None:
        self.ctx = ctx
        self.domains = ctx.domains
        self.pubsub = PubSub(ctx.storage, roster_relationship(self._roster, self.domains),
                             limits, clock=ctx.reactor.seconds)
        self.interests = Interests()
        self.caps = CapsCache(lambda iq: ctx.send_iq(iq, caps_timeout), caps_timeout)
        self.notifier = Notifier(ctx.send, self.interests, self._roster,
                                 lambda *sent: ctx.emit(events.PEP_NOTIFIED, *sent))
        self._tasks: set[defer.Deferred] = set()

    def _roster(self) -> IRoster | None:
        return self.ctx.query(IRoster)

    # -- IQs

    def on_pubsub(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._pubsub(stanza))

    async def _pubsub(self, stanza: Stanza):
        account = (stanza.recipient or stanza.sender).bare()
        service = self.pubsub.pep(account)
        request = stanza.payload()
        reply = await handle_iq(service, stanza.sender, stanza.type, request)
        await self.notifier.deliver(service, reply.notifications)
        if stanza.type == "set":
            for change in changes_of(account, request, reply.payload):
                await self.ctx.emit(events.PEP_CHANGED, change)
        return reply.payload

    # -- disco: the account asking itself (providers of the disco plugin's account entity)

    def own_node_info(self, stanza: Stanza, node: str | None):
        if node is None:
            return None
        return defer.ensureDeferred(node_info(self._service_of(stanza), stanza.sender, node))

    def own_items(self, stanza: Stanza, node: str | None):
        if node is not None:
            return None
        return defer.ensureDeferred(node_items(self._service_of(stanza), stanza.sender))

    def _service_of(self, stanza: Stanza):
        return self.pubsub.pep((stanza.recipient or stanza.sender).bare())

    # -- disco: anyone else asking the bare JID

    def on_bare_info(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._bare_info(stanza))

    async def _bare_info(self, stanza: Stanza):
        node = stanza.payload().getAttribute("node")
        await self._check_account(stanza.recipient)
        service = self.pubsub.pep(stanza.recipient)
        if node is not None:
            return info_query([await node_info(service, stanza.sender, node)], node)
        own = DiscoInfo((ACCOUNT, identity(pep=True)),
                        (ns.DISCO_INFO, ns.DISCO_ITEMS, *features(pep=True)))
        return info_query([own], None)

    def on_bare_items(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._bare_items(stanza))

    async def _bare_items(self, stanza: Stanza):
        node = stanza.payload().getAttribute("node")
        await self._check_account(stanza.recipient)
        if node is not None:
            raise StanzaError("item-not-found", "PEP nodes are leaves: no items below them")
        items = await node_items(self.pubsub.pep(stanza.recipient), stanza.sender)
        return items_query(items, None)

    async def _check_account(self, account: JID) -> None:
        """RFC 6121 §8.5.1: an account that does not exist is service-unavailable, the
        same answer as for any other IQ to it."""
        if not await self.ctx.storage.users.user_exists(account.user, account.host):
            raise StanzaError("service-unavailable")

    # -- presence: who wants what

    def on_contact_presence(self, stanza: Stanza, origin) -> None:
        """Available or unavailable presence from a contact's resource to an account."""
        sender, account = stanza.sender, stanza.recipient
        if sender is None or sender.resource is None or sender.bare() == account.bare():
            return None
        self._observe(account.bare(), sender, stanza)
        return None

    def on_own_presence(self, stanza: Stanza, session) -> None:
        """A client's broadcast presence: its own caps say which notifications it wants."""
        if stanza.recipient is None:
            self._observe(session.account, session.jid, stanza)
        return None

    def on_session_closed(self, session, polite: bool = False) -> None:
        self.interests.remove(session.account, session.jid)

    def export_interests(self, session) -> dict | None:
        """The notifications a session moving to another node wants (from its caps)."""
        return self.interests.of(session.jid) or None

    def restore_interests(self, session, wanted: dict) -> None:
        for account, nodes in wanted.items():
            self.interests.set(parse_jid(str(account)), session.jid,
                               frozenset(str(node) for node in nodes))

    def on_user_deleted(self, account: JID) -> None:
        self.interests.forget_account(account.bare())

    def on_notified_elsewhere(self, account: JID, notification, sent: frozenset[str],
                              ) -> defer.Deferred:
        """A notification another node of the cluster made (xmppd.cluster.pep)."""
        return defer.ensureDeferred(self.notifier.deliver_elsewhere(
            self.pubsub.pep(account), notification, sent))

    def _observe(self, account: JID, jid: JID, stanza: Stanza) -> None:
        if stanza.type == "unavailable":
            self.interests.remove(account, jid)
            return
        try:
            caps = find_caps(stanza.element)
        except StanzaError:
            caps = None
        if caps is None:
            self._wants(account, jid, frozenset())
            return
        known = self.caps.features(jid, caps)
        if known is not None:
            self._wants(account, jid, notify_nodes(known))
            return
        if not self.interests.present(account, jid):
            self.interests.set(account, jid, frozenset())
        self._spawn(self._resolve(account, jid, caps))

    async def _resolve(self, account: JID, jid: JID, caps) -> None:
        found = await self.caps.resolve(jid, caps, sender=account.host)
        if self.interests.present(account, jid):  # still available
            self._wants(account, jid, notify_nodes(found))

    def _wants(self, account: JID, jid: JID, nodes: frozenset[str]) -> None:
        new = self.interests.set(account, jid, nodes)
        if new:
            self._spawn(self.notifier.send_last_items(self.pubsub.pep(account), jid, new))

    # -- background work: logged, cancelled at unload

    def _spawn(self, work: Coroutine) -> None:
        d = defer.ensureDeferred(work)
        if d.called:
            d.addErrback(self._failed)
            return
        self._tasks.add(d)
        d.addBoth(self._done, d)
        d.addErrback(self._failed)

    def _done(self, result, d: defer.Deferred):
        self._tasks.discard(d)
        return result

    def _failed(self, failure) -> None:
        if not failure.check(defer.CancelledError):
            log.failure("PEP background work failed", failure)

    def stop(self) -> None:
        while self._tasks:
            self._tasks.pop().cancel()


pep = Pep()
