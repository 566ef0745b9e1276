"""The running server's shared parts, wired once; what plugins and the admin API see as IServer."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.admin.commands import AdminCommands
from xmppd.c2s.hooks import ClientHooks
from xmppd.c2s.sessions import SessionRegistry
from xmppd.disco import DiscoEntity
from xmppd.eventbus import EventBus
from xmppd.events import Event
from xmppd.handlers import PrioritizedHandlers
from xmppd.http.server import HttpServer
from xmppd.interfaces import IServer
from xmppd.limits.policy import Limits
from xmppd.router import Router
from xmppd.sasl2 import Sasl2Registry
from xmppd.services import ServiceTable
from xmppd.storage.auth import StorageAuthBackend


@implementer(IServer)
class Server:
    """References to the parts, nothing more: each part does its own job."""

    def __init__(self, config, storage, reactor) -> None:
        self.config = config
        self.storage = storage
        self.reactor = reactor
        self.domains = frozenset(config.server.domains)
        self.events = EventBus()
        self.features = DiscoEntity()  # the hosts' disco
        self.account_features = DiscoEntity()  # an account's, asked by itself
        self.stream_features = PrioritizedHandlers()  # builders of post-auth stream features
        self.admin_commands = AdminCommands()  # what plugins add to xmppdctl and the manhole
        self.sessions = SessionRegistry(config.c2s.resource_conflict, config.c2s.max_resources)
        self.c2s_hooks = ClientHooks(self.sessions, self.emit, reactor)  # filters, keepers, claims
        self.sasl2 = Sasl2Registry()  # what plugins inline in SASL2 and Bind 2 (xmppd.sasl2)
        self.router = Router(self.domains, self.sessions, reactor=reactor)
        self.dispatcher = self.router.dispatcher
        self.services = ServiceTable(self.router, self.domains)
        self.features.add_items_provider(self.services.disco_items)
        self.auth = StorageAuthBackend(storage.users)
        # connection caps, shapers, auth back-off: shared by every stream (xmppd.limits)
        self.limits = Limits(getattr(config, "limits", None), reactor)
        self.c2s_streams: set = set()  # every client stream, bound or not, for shutdown
        self._providers: dict = {}
        self.s2s = None  # the S2SManager, once the service turns federation on
        # the web server plugins mount resources on; it listens once something is mounted
        self.http = HttpServer(config.http, reactor, config.server.listen_backlog,
                               exempt=self.limits.config.exempt)

    def emit(self, event: Event, *args) -> defer.Deferred:
        return self.events.emit(event, *args)

    def provide(self, interface, provider) -> Callable[[], None]:
        """Register the one provider of a plugin service; returns the undo function."""
        if interface in self._providers:
            raise ValueError(f"{interface.__name__} is already provided by "
                             f"{self._providers[interface]!r}")
        if not interface.providedBy(provider):
            raise TypeError(f"{provider!r} does not provide {interface.__name__}")
        self._providers[interface] = provider
        return lambda: self._providers.pop(interface, None)

    def query(self, interface):
        return self._providers.get(interface)
