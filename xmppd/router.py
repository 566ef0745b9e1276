# -*- test-case-name: tests.unit.test_router -*-
"""The router: who may speak for whom, and where a stanza goes (RFC 6120 §8).

Client stanzas are stamped with the session's full JID here (RFC 6120 §8.1.2.1); a client
claiming another address gets the ``invalid-from`` stream error. Then the recipient's domain
picks the way: one of our hosts (the dispatcher's chain for its target), one of our services
on a subdomain (``xmppd.services``), or federation for any other domain. What happens to a
stanza for a local entity (archive, copy, hold, deliver: RFC 6121 §8.5) is the business of
the chain's links, delivery being the last of them (the message plugin); the router keeps
only the fallbacks at the end of the chain: IQs answered by payload or delivered to a
resource, presence delivered to a connected resource, anything else refused.

A route may return a Deferred (a message being stored for an offline account, an IQ set
being handled): the client's stream waits for it before reading on, so a later answer from
the server proves the earlier stanzas were handled.
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.dispatch import Dispatcher
from xmppd.errors import StanzaError, StreamError
from xmppd.interfaces import IRemoteRouter, IRouter, ISessionRegistry
from xmppd.iq_tracker import IQTracker
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.mam.stanza_ids import without_forged_ids
from xmppd.probes import ROUTING
from xmppd.stanza import Stanza, check_type, parse_address

log = get_logger(__name__)

ANSWER_TYPES = frozenset(("result", "error"))
# A bad stanza of these types is dropped, never answered: no error for an error (no loops),
# none for an IQ result (an answer is never answered, RFC 6120 §8.2.3)
NO_ANSWER_TYPES = {"iq": ANSWER_TYPES, "message": ("error",), "presence": ("error",)}


@implementer(IRemoteRouter)
class NoFederation:
    """Without federation every remote domain is unreachable, and says so."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def send(self, stanza: Stanza) -> None:
        self.router.bounce(stanza, "remote-server-not-found")


class ServedDomains:
    """Every domain this server answers for: its hosts and its services, as one live set.

    What federation checks stanzas against (ours to receive, ours to send from): a service
    added or removed while the server runs is in or out at once.
    """

    def __init__(self, hosts: frozenset[str], services: dict) -> None:
        self.hosts = hosts
        self._services = services

    def __contains__(self, domain: object) -> bool:
        return domain in self.hosts or domain in self._services

    def __iter__(self) -> Iterator[str]:
        yield from self.hosts
        yield from self._services

    def __len__(self) -> int:
        return len(self.hosts) + len(self._services)


def unforged(stanza: Stanza, served) -> Stanza:
    """The message without the XEP-0359 stanza-ids that claim to be by one of our domains
    (``served``), its sender's account or its recipient's (XEP-0359 §4: a client or a peer
    could otherwise pass a message off as one an archive holds), whether or not an archive
    runs here; ``stanza`` itself when it has none, the usual case, which allocates nothing."""
    for child in stanza.element.children:  # not elements(): its interface check per child
        if not isinstance(child, str) and child.name == "stanza-id":
            break
    else:
        return stanza
    accounts = {jid.bare().full() for jid in (stanza.sender, stanza.recipient)
                if jid is not None}
    return without_forged_ids(stanza, _Protected(served, accounts)) or stanza


class _Protected:
    """The 'by' values of stanza-ids nobody else may stamp: our domains, and accounts."""

    __slots__ = ("served", "accounts")

    def __init__(self, served: ServedDomains, accounts: set[str]) -> None:
        self.served = served
        self.accounts = accounts

    def __contains__(self, by: object) -> bool:
        return by in self.accounts or by in self.served


@implementer(IRouter)
class Router:
    def __init__(self, domains: frozenset[str], sessions: ISessionRegistry,
                 dispatcher: Dispatcher | None = None, remote: IRemoteRouter | None = None,
                 reactor=None) -> None:
        self.domains = domains
        self.sessions = sessions
        self.dispatcher = dispatcher or Dispatcher(self.send_from_server)
        self.remote = remote or NoFederation(self)
        self.services: dict[str, object] = {}  # domain -> xmppd.services.Service
        self.served = ServedDomains(domains, self.services)
        self.iq_tracker = IQTracker(self.send_from_server, reactor)
        # sessions bound on other nodes of a cluster: get(full_jid), resources(bare_jid)
        # (xmppd.cluster); None on a single node, the default
        self.remote_sessions = None

    def use_remote_sessions(self, provider) -> None:
        """The seam for clustering: ``provider`` (or None) answers for sessions bound on
        other nodes. The router delivers IQs and presence to a full JID there; the
        cluster's own links (xmppd.cluster.delivery) do the same for messages."""
        self.remote_sessions = provider

    # -- ways in

    def route_from_client(self, element: domish.Element, session):
        """A stanza from a bound client: check and stamp its addresses, then route it.

        Raises StreamError('invalid-from') when the client speaks for someone else.
        Timed whole (the 'outgoing' chain included) when a routing probe is set.
        """
        if ROUTING.observe is not None and next(ROUTING.ticks):
            return ROUTING.observe(element.name, self._route_from_client, element, session)
        return self._route_from_client(element, session)

    def _route_from_client(self, element: domish.Element, session):
        claimed = element.getAttribute("from")
        if claimed is not None and claimed not in (session.jid.full(), session.jid.userhost()):
            try:
                own = parse_address(element, "from") in (session.jid, session.jid.bare())
            except StanzaError:
                own = False
            if not own:
                raise StreamError("invalid-from", "you may only send from your own address")
        element["from"] = session.jid.full()
        try:
            stanza = Stanza(element, session.jid, parse_address(element, "to"))
            check_type(stanza)
        except StanzaError as error:
            if element.getAttribute("type") not in NO_ANSWER_TYPES.get(element.name, ()):
                session.send(error.to_response(element))
            return None
        if stanza.kind == "iq":
            return self._route(stanza, session)
        if stanza.kind == "message":
            stanza = unforged(stanza, self.served)
        return self.dispatcher.dispatch(stanza, "outgoing", session, self._route_outgoing)

    def _route_outgoing(self, stanza: Stanza, target: str, session):
        return self._route(stanza, session)

    def send_from_server(self, element: domish.Element):
        """Send a stanza the server itself made (replies, errors, notifications)."""
        try:
            stanza = Stanza(element, parse_address(element, "from"), parse_address(element, "to"))
        except StanzaError:
            log.error("server made a stanza with a bad address: {xml}", xml=element.toXml())
            return None
        return self.route(stanza, None)

    # -- routing

    def route(self, stanza: Stanza, origin):
        """Route a parsed stanza (from a server, a component, the server itself); timed
        when a routing probe is set and samples it (``xmppd.probes``)."""
        if ROUTING.observe is not None and next(ROUTING.ticks):
            return ROUTING.observe(stanza.kind, self._route, stanza, origin)
        return self._route(stanza, origin)

    def _route(self, stanza: Stanza, origin):
        recipient = stanza.recipient
        if recipient is None:
            # No 'to': the server handles it on behalf of the sender's account (RFC 6120 §10.3).
            if stanza.sender is None:
                return None
            recipient = stanza.sender.bare()
            stanza = Stanza(stanza.element, stanza.sender, recipient)
        host = recipient.host
        if host in self.domains:
            return self._local(stanza, recipient, origin)
        service = self.services.get(host)
        if service is not None:
            return service.route(stanza, origin)
        return self.dispatcher.dispatch(stanza, "remote", origin, self._to_remote)

    def _to_remote(self, stanza: Stanza, target: str, origin):
        """The end of the 'remote' chain: federation takes what no link held back."""
        return self.remote.send(stanza)

    def _local(self, stanza: Stanza, recipient: JID, origin):
        if recipient.user is None:
            target = "host"
        elif recipient.resource is None:
            target = "bare"
        else:
            target = "full"
        if stanza.kind == "iq" and stanza.type in ANSWER_TYPES and target != "full":
            self.answered(stanza)
            return None
        return self.dispatcher.dispatch(stanza, target, origin, self._end_of_chain)

    def answered(self, stanza: Stanza) -> None:
        """An IQ result or error for the server, a service or an account: the answer to a
        request the server sent, or nothing anyone waits for (dropped)."""
        if not self.iq_tracker.answer(stanza):
            log.debug("dropped an answer nobody waits for: {stanza!r}", stanza=stanza)

    def _end_of_chain(self, stanza: Stanza, target: str, origin):
        """What no link consumed. IQ requests: answered by payload, else passed to the
        resource; presence and IQ answers to a resource: delivered if it is connected;
        messages: refused (the message plugin's delivery consumes every one it can take)."""
        kind = stanza.kind
        if kind == "iq":
            if stanza.type in ANSWER_TYPES:
                self._deliver_to(stanza.recipient, stanza)
                return None
            return self._answer_iq(stanza, target, origin)
        if kind == "presence":
            if target == "full":
                self._deliver_to(stanza.recipient, stanza)
        elif stanza.type not in ("error", "headline"):
            self.bounce(stanza, "service-unavailable")
        return None

    def _answer_iq(self, stanza: Stanza, target: str, origin):
        """RFC 6121 §8.5.2.1.3 / §8.5.3: the server answers for accounts ('self' first for an
        account's own IQs, then 'bare' like anyone's); resources answer for themselves."""
        if (target == "bare" and stanza.sender is not None
                and stanza.sender.bare() == stanza.recipient):
            answered = self.dispatcher.dispatch_iq(stanza, "self", origin)
            if answered:
                return answered
        answered = self.dispatcher.dispatch_iq(stanza, target, origin)
        if answered:
            return answered
        if target != "full" or not self._deliver_to(stanza.recipient, stanza):
            self.bounce(stanza, "service-unavailable")
        return None

    def _deliver_to(self, full_jid: JID, stanza: Stanza) -> bool:
        session = self.sessions.get(full_jid)
        if session is None:
            if self.remote_sessions is None:
                return False
            session = self.remote_sessions.get(full_jid)
            if session is None:
                return False
        session.send(stanza.element)
        return True

    def bounce(self, stanza: Stanza, condition: str, text: str | None = None) -> None:
        """Answer a stanza with an error, unless it is an error itself (no error loops)."""
        if stanza.type == "error" or stanza.sender is None:
            return
        self.send_from_server(StanzaError(condition, text).to_response(stanza.element))
