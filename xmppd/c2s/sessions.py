"""Bound client sessions, indexed by bare JID then resource."""

from __future__ import annotations

import secrets
import time

from zope.interface import implementer

from xmppd.c2s.filters import SessionFilters
from xmppd.c2s.hooks import describe_end
from xmppd.errors import StanzaError
from xmppd.interfaces import ISession, ISessionRegistry
from xmppd.jid import JID, jid_from_parts
from xmppd.logs import get_logger

log = get_logger(__name__)


@implementer(ISession)
class ClientSession:
    """A bound client: the routing entity on top of its stream.

    Usually it lives and dies with its stream; a plugin may keep it past a lost connection
    (``hibernating``: still bound, routable and available, its ``stream`` the dead one) and
    move it to a new stream (xmppd.c2s.hooks).
    """

    # Unfiltered defaults, overridden per instance while filters exist (xmppd.c2s.filters):
    # a session nobody filters pays no check on its way in or out. ``inbound`` is set in
    # __init__ as well: CPython gives an instance room for one attribute more than its
    # __init__ set, and a second one (``inbound`` after ``send``) turns its shared-key
    # values into a dict of its own (830 bytes more for a session with stream management).
    inbound = None  # the IN filter chain's run(element), or None: straight to the router
    _filters: SessionFilters | None = None
    moved = False  # it ended here to go on on another node (ClientHooks.hand_over)

    def __init__(self, stream, account: JID) -> None:
        self.stream = stream
        self.account = account  # bare JID the stream authenticated as
        self.jid: JID | None = None  # full JID, set at bind
        self.started = time.time()
        self.bound_at = 0.0  # reactor time of the bind, for the session's end in the log
        self.hibernating = False  # kept by a plugin after its stream was lost
        self.ended = False  # SESSION_CLOSED was emitted; nothing more happens to it
        # presence state, kept by the presence plugin, read by the router's delivery rules
        self.available = False
        self.priority = 0
        self.presence = None
        self.inbound = None  # see the class attribute

    @property
    def secure(self) -> bool:
        return self.stream.secure

    @property
    def authenticated_by(self) -> str | None:
        return self.stream.mechanism

    @property
    def peer(self) -> str:
        return self.stream.peer_address

    @property
    def filters(self) -> SessionFilters:
        """This session's filters, made when a plugin first asks."""
        filters = self._filters
        if filters is None:
            filters = self._filters = SessionFilters(self)
        return filters

    def send(self, element) -> None:
        self.stream.send(element)

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        """Close its stream; a hibernated session has none, so it ends here and now."""
        if self.hibernating:
            self.stream.hooks.session_ended(self, describe_end(condition), polite=False)
        else:
            self.stream.close_stream(condition, text)

    def __repr__(self) -> str:
        return f"<ClientSession {self.jid or self.account} from {self.peer}>"


@implementer(ISessionRegistry)
class SessionRegistry:
    """Resource binding policy lives here: clashes replace the old session or rename the new."""

    def __init__(self, resource_conflict: str = "replace", max_resources: int = 10) -> None:
        if resource_conflict not in ("replace", "rename"):
            raise ValueError(f"resource_conflict must be replace or rename: {resource_conflict!r}")
        self.resource_conflict = resource_conflict
        self.max_resources = max_resources
        self._accounts: dict[JID, dict[str, ClientSession]] = {}

    def bind(self, session: ClientSession, resource: str | None) -> JID:
        """Give ``session`` a full JID; the resource granted may differ from the one asked."""
        resources = self._accounts.setdefault(session.account, {})
        if resource is None:
            resource = _random_resource()
        elif resource in resources:
            if self.resource_conflict == "rename":
                resource = f"{resource}.{_random_resource()[:8]}"
            else:
                old = resources.pop(resource)
                log.info("{jid} replaced by a new session", jid=old.jid)
                old.close("conflict", "replaced by a new session with the same resource")
        if len(resources) >= self.max_resources:
            raise StanzaError("resource-constraint", "too many sessions for this account")
        full = jid_from_parts(session.account.user, session.account.host, resource)
        session.jid = full
        resources[full.resource] = session
        return full

    def restore(self, session: ClientSession) -> None:
        """Put back ``session`` under the full JID it already has (a session moved here from
        another node of a cluster, where it was bound and counted): no renaming, no limit."""
        self._accounts.setdefault(session.account, {})[session.jid.resource] = session

    def unbind(self, session: ClientSession) -> None:
        if session.jid is None:
            return
        resources = self._accounts.get(session.account)
        if resources and resources.get(session.jid.resource) is session:
            del resources[session.jid.resource]
            if not resources:
                del self._accounts[session.account]

    def get(self, full_jid: JID) -> ClientSession | None:
        resources = self._accounts.get(full_jid.bare())
        return resources.get(full_jid.resource) if resources else None

    def resources(self, bare_jid: JID) -> list[ClientSession]:
        resources = self._accounts.get(bare_jid)
        return list(resources.values()) if resources else []

    def all(self) -> list[ClientSession]:
        return [s for resources in self._accounts.values() for s in resources.values()]

    def __len__(self) -> int:
        return sum(len(resources) for resources in self._accounts.values())


def _random_resource() -> str:
    return "xmppd-" + secrets.token_hex(8)
