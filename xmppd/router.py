"""The router: who may speak for whom, and where a stanza goes. Nothing else.

Client stanzas are stamped with the session's full JID here (RFC 6120 §8.1.2.1); a client
claiming another address gets the ``invalid-from`` stream error. Stanzas for domains we do not
host go to the remote router (federation), never anywhere else.
"""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.dispatch import Dispatcher
from xmppd.errors import StanzaError, StreamError
from xmppd.interfaces import IRemoteRouter, IRouter, ISessionRegistry
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
                 dispatcher: Dispatcher | None = None, remote: IRemoteRouter | None = None) -> None:
        self.domains = domains
        self.sessions = sessions
        self.dispatcher = dispatcher or Dispatcher(self.send_from_server)
        self.remote = remote or NoFederation(self)

    # -- ways in

    def route_from_client(self, element: domish.Element, session) -> None:
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
            return
        self.route(stanza, session)

    def send_from_server(self, element: domish.Element) -> None:
        """Send a stanza the server itself made (replies, errors, notifications)."""
        try:
            stanza = Stanza(element, parse_address(element, "from"), parse_address(element, "to"))
        except StanzaError:
            log.error("server made a stanza with a bad address: {xml}", xml=element.toXml())
            return
        self.route(stanza, None)

    # -- routing

    def route(self, stanza: Stanza, origin) -> None:
        recipient = stanza.recipient
        if recipient is None:
            # No 'to': the server handles it on behalf of the sender's account (RFC 6120 §10.3).
            if stanza.sender is None:
                return
            recipient = stanza.sender.bare()
        if recipient.host not in self.domains:
            self.remote.send(stanza)
            return
        target = _target(recipient)
        if stanza.kind == "iq":
            self._route_iq(stanza, recipient, target, origin)
        elif not self.dispatcher.dispatch(stanza, target, origin):
            self._deliver_default(stanza, recipient, target)

    def _route_iq(self, stanza: Stanza, recipient: JID, target: str, origin) -> None:
        if stanza.type in ("get", "set"):
            if self.dispatcher.dispatch_iq(stanza, target, origin):
                return
            if target == "full" and self._deliver_to(recipient, stanza):
                return
            self.bounce(stanza, "service-unavailable")
        elif target == "full":
            self._deliver_to(recipient, stanza)
        # results and errors for the server or an account are answers nobody waits for yet

    def _deliver_default(self, stanza: Stanza, recipient: JID, target: str) -> None:
        """What happens to a message or presence that no plugin took."""
        if target == "full" and self._deliver_to(recipient, stanza):
            return
        if stanza.kind == "message":
            self.bounce(stanza, "service-unavailable")

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
