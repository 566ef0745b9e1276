"""The running server's shared parts, wired once; what plugins and the admin API see as IServer."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.c2s.sessions import SessionRegistry
from xmppd.eventbus import EventBus
from xmppd.events import Event
from xmppd.features import ServerFeatures
from xmppd.interfaces import IServer
from xmppd.router import Router
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
        self.features = ServerFeatures()
        self.sessions = SessionRegistry(config.c2s.resource_conflict, config.c2s.max_resources)
        self.router = Router(self.domains, self.sessions)
        self.dispatcher = self.router.dispatcher
        self.auth = StorageAuthBackend(storage.users)
        self.c2s_streams: set = set()  # every client stream, bound or not, for shutdown

    def emit(self, event: Event, *args) -> defer.Deferred:
        return self.events.emit(event, *args)
