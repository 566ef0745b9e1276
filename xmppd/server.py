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
        self._http = None  # the web server (the http property), made when first asked for
        self._http_tls = None  # the service started: a web server made now listens as needed
        self._http_started = False

    @property
    def http(self):
        """The web server plugins mount resources on; it listens once something is mounted
        (xmppd.http.server). Made when first asked for: twisted.web is 3 MB that a server
        none of whose plugins serves HTTP never needs."""
        if self._http is None:
            from xmppd.http.server import HttpServer

            self._http = HttpServer(self.config.http, self.reactor,
                                    self.config.server.listen_backlog,
                                    exempt=self.limits.config.exempt)
            if self._http_started:
                self._http.start(self._http_tls)
        return self._http

    def start_http(self, tls_context) -> defer.Deferred:
        """The service started: the web server listens if anything is mounted, and one made
        later listens at its first mount."""
        self._http_started, self._http_tls = True, tls_context
        return self._http.start(tls_context) if self._http is not None else defer.succeed(None)

    def stop_http(self) -> defer.Deferred:
        self._http_started = False
        return self._http.stop() if self._http is not None else defer.succeed(None)

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
