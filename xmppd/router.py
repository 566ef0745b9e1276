"""The router: who may speak for whom, and where a stanza goes (RFC 6120 §8, RFC 6121 §8).

Client stanzas are stamped with the session's full JID here (RFC 6120 §8.1.2.1); a client
claiming another address gets the ``invalid-from`` stream error. Stanzas for domains we do not
host go to the remote router (federation), never anywhere else. Local delivery follows
RFC 6121 §8.5; plugins see stanzas first through the dispatcher and may consume them.

A route may return a Deferred (a message being stored for an offline account): the client's
stream waits for it before reading on, so a later answer from the server proves the earlier
stanzas were durably accepted.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.dispatch import Dispatcher
from xmppd.errors import StanzaError, StreamError
from xmppd.interfaces import IOfflineDelivery, IRemoteRouter, IRouter, ISessionRegistry
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, check_type, parse_address

log = get_logger(__name__)


@implementer(IRemoteRouter)
class NoFederation:
    """Until federation exists every remote domain is unreachable, and says so."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def send(self, stanza: Stanza) -> None:
        self.router.bounce(stanza, "remote-server-not-found")


@implementer(IRouter)
class Router:
    def __init__(self, domains: frozenset[str], sessions: ISessionRegistry,
                 dispatcher: Dispatcher | None = None, remote: IRemoteRouter | None = None,
                 bare_message_delivery: str = "highest", query=None) -> None:
        self.domains = domains
        self.sessions = sessions
        self.dispatcher = dispatcher or Dispatcher(self.send_from_server)
        self.remote = remote or NoFederation(self)
        self.deliver_to_all = bare_message_delivery == "all"
        # the server's look-up of plugin-provided services (IOfflineDelivery)
        self.query = query or (lambda interface: None)

    # -- ways in

    def route_from_client(self, element: domish.Element, session):
        """A stanza from a bound client: check and stamp its addresses, then route it.

        Raises StreamError('invalid-from') when the client speaks for someone else.
        """
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
            if element.getAttribute("type") != "error":
                session.send(error.to_response(element))
            return None
        if stanza.kind != "iq":
            consumed = self.dispatcher.dispatch(stanza, "outgoing", session)
            if consumed:
                return consumed
        return self.route(stanza, session)

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
        recipient = stanza.recipient
        if recipient is None:
            # No 'to': the server handles it on behalf of the sender's account (RFC 6120 §10.3).
            if stanza.sender is None:
                return None
            recipient = stanza.sender.bare()
        if recipient.host not in self.domains:
            return self.remote.send(stanza)
        target = _target(recipient)
        if stanza.kind == "iq":
            return self._route_iq(stanza, recipient, target, origin)
        consumed = self.dispatcher.dispatch(stanza, target, origin)
        if consumed:
            return consumed
        if stanza.kind == "message":
            return self._route_message(stanza, recipient, target)
        if target == "full":  # presence no plugin took: only a connected resource gets it
            self._deliver_to(recipient, stanza)
        return None

    def _route_iq(self, stanza: Stanza, recipient: JID, target: str, origin):
        """RFC 6121 §8.5.2.1.3 / §8.5.3: the server answers for accounts; resources answer
        for themselves."""
        if stanza.type in ("get", "set"):
            # An account's IQ to itself is 'self' first (ping, account disco), then 'bare'
            # like anyone's (the roster answers its owner there).
            if (target == "bare" and stanza.sender is not None
                    and stanza.sender.bare() == recipient
                    and self.dispatcher.dispatch_iq(stanza, "self", origin)):
                return None
            if self.dispatcher.dispatch_iq(stanza, target, origin):
                return None
            if target == "full" and self._deliver_to(recipient, stanza):
                return None
            self.bounce(stanza, "service-unavailable")
        elif target == "full":
            self._deliver_to(recipient, stanza)
        # results and errors for the server or an account are answers nobody waits for yet
        return None

    def _route_message(self, stanza: Stanza, recipient: JID, target: str):
        """RFC 6121 §8.5.2 (bare JID) and §8.5.3 (full JID) for messages no plugin took."""
        if target == "full":
            if self._deliver_to(recipient, stanza):
                return None
            if stanza.type in ("normal", "chat", "headline"):
                return self._message_to_account(stanza, recipient.bare())
        elif target == "bare":
            return self._message_to_account(stanza, recipient)
        if stanza.type not in ("error", "headline"):
            self.bounce(stanza, "service-unavailable")  # groupchat, or to the server itself
        return None

    def _message_to_account(self, stanza: Stanza, account: JID):
        if stanza.type not in ("normal", "chat", "headline"):
            if stanza.type == "groupchat":
                self.bounce(stanza, "service-unavailable")
            return None  # errors to an account are dropped
        chosen = self._message_recipients(account,
                                          everyone=self.deliver_to_all or stanza.type == "headline")
        if chosen:
            element = stanza.element
            for session in chosen:
                session.send(element)
            return None
        if stanza.type == "headline":
            return None  # headlines are not kept (RFC 6121 §8.5.2.2.1)
        return self._store_offline(stanza)

    def _message_recipients(self, account: JID, everyone: bool) -> list:
        """RFC 6121 §8.5.2.1.1: the available resources of non-negative priority; unless
        ``everyone``, only those of the highest priority. One pass, on every message."""
        chosen: list = []
        top = 0
        for session in self.sessions.resources(account):
            if not session.available:
                continue
            priority = session.priority
            if priority < 0:
                continue
            if everyone or (chosen and priority == top):
                chosen.append(session)
            elif not chosen or priority > top:
                chosen = [session]
                top = priority
        return chosen

    def _store_offline(self, stanza: Stanza):
        offline = self.query(IOfflineDelivery)
        if offline is None:
            self.bounce(stanza, "service-unavailable")
            return None
        d = defer.maybeDeferred(offline.store, stanza)

        def stored(kept: bool) -> None:
            if not kept:
                self.bounce(stanza, "service-unavailable")

        def failed(failure) -> None:
            log.failure("offline storage failed for {stanza!r}", failure, stanza=stanza)
            self.bounce(stanza, "internal-server-error")

        return d.addCallbacks(stored, failed)

    def _deliver_to(self, full_jid: JID, stanza: Stanza) -> bool:
        session = self.sessions.get(full_jid)
        if session is None:
            return False
        session.send(stanza.element)
        return True

    def bounce(self, stanza: Stanza, condition: str, text: str | None = None) -> None:
        """Answer a stanza with an error, unless it is an error itself (no error loops)."""
        if stanza.type == "error" or stanza.sender is None:
            return
        self.send_from_server(StanzaError(condition, text).to_response(stanza.element))


def _target(jid: JID) -> str:
    if jid.user is None:
        return "host"
    return "bare" if jid.resource is None else "full"
