"""The service tree, started in order and stopped in reverse: plugin check (found, ordered,
options valid, before anything is touched) ▸ storage ▸ federation ▸ plugins ▸ cluster node
(only with [cluster], xmppd.cluster) ▸ listeners
(c2s, s2s, XEP-0114 components; the web server if a plugin mounted something) ▸ manhole ▸
control socket.

MultiService starts children without waiting; a server must not accept clients before its
storage is migrated and its plugins are loaded, so this service sequences the start itself.

Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads what can change at run time
(``reload()``, xmppd.ops.reload: config, certificates), as ``xmppdctl reload`` does; SIGUSR1
reopens twistd's log file after logrotate moved it, or rotates it as twistd does
(xmppd.ops.logfiles).
"""

from __future__ import annotations

import os
import signal
import sys

from twisted.application import service
from twisted.internet import defer, protocol, task
from twisted.protocols.tls import TLSMemoryBIOFactory

from xmppd import events
from xmppd.admin.api import AdminAPI
from xmppd.admin.control import make_control_service
from xmppd.c2s.stream import ClientStreamFactory
from xmppd.component.stream import ComponentFactory
from xmppd.config import BUDDIES_ONLY
from xmppd.interfaces import IServerTrust
from xmppd.logs import get_logger
from xmppd.ops import logline
from xmppd.ops.logfiles import reopen_log_files
from xmppd.ops.reload import Reloader
from xmppd.registry import PluginRegistry
from xmppd.s2s import federation_enabled
from xmppd.server import Server
from xmppd.stream.idle import idle_parser_sweeper
from xmppd.stream.listen import listen

log = get_logger(__name__)


class XmppdService(service.MultiService):
    def __init__(self, config, storage, tls_context, reactor, manhole_factory=None) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.tls_context = tls_context
        # the certificates c2s and s2s present, reloaded on SIGHUP (xmppd.stream.certstore)
        self.certificates = getattr(tls_context, "store", None)
        self.server = Server(config, storage, reactor)
        self.plugins = PluginRegistry(self.server, config.plugins.enabled,
                                      config.plugins.sections, config.server.plugin_dirs)
        self.manhole_factory = manhole_factory
        self.ports: list = []  # listening ports, in start order
        self.manhole: service.Service | None = None
        self.s2s = None  # the S2SManager when federation is on
        self.components: ComponentFactory | None = None  # XEP-0114, when [components] has any
        self.control: service.Service | None = None  # the admin socket xmppdctl talks to
        self.cluster = None  # xmppd.cluster.node.ClusterNode when [cluster] is set
        self.ready: defer.Deferred = defer.Deferred()
        self._watcher: task.LoopingCall | None = None  # [tls] watch

    def startService(self) -> None:
        # Twisted logs "Starting factory <... at 0x...>" for every factory start and stop, one
        # per outgoing s2s connection too: noise an admin cannot act on. Listening ports
        # still log what they listen on.
        protocol.Factory.noisy = False
        logline.install()  # twistd's log file lines, the same text for less CPU
        service.Service.startService(self)
        d = self._start()
        d.addCallbacks(self.ready.callback, self._start_failed)
        if self.reactor is _global_reactor():
            self.reactor.callWhenRunning(self._handle_stop_signals)

    def _handle_stop_signals(self) -> None:
        """SIGTERM/SIGINT mean a clean stop that exits 0.

        Twisted's own handlers re-raise the signal after shutdown, so the process would end
        "killed by SIGTERM"; an orderly stop is a success, and init systems should see one.
        """

        def stop(signum, frame) -> None:
            log.info("received {name}, stopping", name=signal.Signals(signum).name)
            self.reactor.callFromThread(self.reactor.stop)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)

        def reload(signum, frame) -> None:
            log.info("received SIGHUP, reloading")
            self.reactor.callFromThread(self.reload)

        def reopen(signum, frame) -> None:
            self.reactor.callFromThread(reopen_log_files)

        signal.signal(signal.SIGHUP, reload)
        signal.signal(signal.SIGUSR1, reopen)

    def reload(self) -> dict:
        """Apply a fresh read of the config file and the certificates (xmppd.ops.reload);
        the report says what was applied, what needs a restart and what was wrong."""
        if not self.running:
            return {"ok": False, "applied": [], "restart": [],
                    "problems": ["the server is not running"]}
        return Reloader(self).reload().as_dict()

    def watch_certificates(self, seconds: int) -> None:
        """Every ``seconds``, reload the certificates if their files changed (0: never)."""
        if self._watcher is not None and self._watcher.running:
            if self._watcher.interval == seconds:
                return
            self._watcher.stop()
        self._watcher = None
        if seconds and self.certificates is not None:
            self._watcher = task.LoopingCall(self._certificates_changed)
            self._watcher.clock = self.reactor
            self._watcher.start(seconds, now=False)

    def _certificates_changed(self) -> None:
        if self.certificates.changed_on_disk():
            log.info("certificate files changed, reloading them")
            from xmppd.stream.tls import TLSConfigError

            try:
                self.certificates.reload()
            except TLSConfigError as error:
                log.error("certificates not reloaded, the ones in use stay: {error}",
                          error=str(error))
            else:
                log.info("certificates reloaded: new connections use them")

    @defer.inlineCallbacks
    def _start(self):
        # plugins found, ordered, options valid, what the config asks provided: before the
        # database
        self.plugins.check(federation_needs(self.config.s2s))
        self.plugins.admin_commands(self.server.admin_commands)
        yield self.server.storage.open()
        if federation_enabled(self.config.s2s):  # the s2s modules are imported only then
            from xmppd.s2s.manager import federation_from_config

            self.s2s = federation_from_config(self.server, self.certificates)
        if self.s2s is not None:
            self.server.router.remote = self.server.s2s = self.s2s
        yield self.plugins.load()
        if self.config.cluster is not None:
            from xmppd.cluster import start_node

            self.cluster = yield start_node(self.server)
        backlog = self.config.server.listen_backlog
        for description, factory in self._listeners():
            self.ports.append((yield listen(self.reactor, description, factory, backlog)))
        yield self.server.start_http(self.tls_context)  # only if a plugin mounted something
        if self.manhole_factory is not None:
            self.manhole = self.manhole_factory(self)
            if self.manhole is not None:
                self.manhole.setServiceParent(self)
        self.control = make_control_service(
            self.config.server.control_socket,
            AdminAPI(self.server.storage, self.server.domains, self.server), self.reactor,
            self.server.admin_commands,
            service_calls={"reload": self.reload, "domains": self.served_domains})
        if self.control is not None:
            self.control.setServiceParent(self)
        idle_parser_sweeper(lambda: self.server.c2s_streams, self.reactor).setServiceParent(self)
        self.watch_certificates(self.config.tls.watch)
        yield self.server.emit(events.SERVER_STARTED)
        log.info("xmppd is serving {domains}", domains=", ".join(sorted(self.server.domains)))
        return self

    def served_domains(self) -> dict:
        """The hosts and the services' subdomains (conference.…, pubsub.…) we serve now."""
        services = sorted(set(self.server.router.services) - set(self.server.domains))
        return {"hosts": sorted(self.server.domains), "services": services}

    def _listeners(self) -> list[tuple[str, object]]:
        """(endpoint description, factory) for every configured listener."""
        c2s = self.config.c2s
        plain = ClientStreamFactory(self.server, self.tls_context)
        direct = TLSMemoryBIOFactory(self.tls_context, False,
                                     ClientStreamFactory(self.server, None, direct_tls=True))
        listeners = [(d, plain) for d in c2s.listen] + [(d, direct) for d in c2s.direct_tls]
        if self.s2s is not None:
            from xmppd.s2s.manager import IncomingServerFactory

            s2s = self.config.s2s
            listeners += [(d, IncomingServerFactory(self.s2s)) for d in s2s.listen]
            direct = TLSMemoryBIOFactory(self.s2s.tls, False,
                                         IncomingServerFactory(self.s2s, direct_tls=True))
            listeners += [(d, direct) for d in s2s.direct_tls]
        if self.config.components.secrets:
            self.components = ComponentFactory(self.server, self.config.components.secrets)
            listeners += [(d, self.components) for d in self.config.components.listen]
        return listeners

    def _start_failed(self, failure) -> None:
        log.failure("xmppd could not start", failure)
        self.ready.errback(failure)
        # a bad plugin option fails before the reactor runs: stop as soon as it does
        self.reactor.callWhenRunning(self._stop_failed)

    def _stop_failed(self) -> None:
        self.reactor.addSystemEventTrigger("after", "shutdown", _exit_failed)
        self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self):
        """Stop listening, close every stream politely, unload plugins, close storage."""
        if not self.running:
            return
        if self.control is not None:  # no admin commands while we shut down
            yield defer.maybeDeferred(self.control.disownServiceParent)
        if self._watcher is not None and self._watcher.running:
            self._watcher.stop()
        yield self.server.emit(events.SERVER_STOPPING)
        if self.manhole is not None:
            yield defer.maybeDeferred(self.manhole.disownServiceParent)
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self.ports])
        self.ports.clear()
        yield self.server.stop_http()
        yield self._close_streams()
        if self.cluster is not None:
            yield self.cluster.stop()
        service.Service.stopService(self)
        self.plugins.unload()
        yield self.server.storage.close()
        log.info("xmppd stopped")

    def _open_streams(self) -> list:
        streams = list(self.server.c2s_streams)
        if self.s2s is not None:
            streams += self.s2s.open_streams()
        if self.components is not None:
            streams += self.components.streams
        return [s for s in streams if not s.disconnected]

    def _close_streams(self) -> defer.Deferred:
        self.server.c2s_hooks.end_hibernated()  # kept sessions end too: "server shutdown"
        for stream in self._open_streams():
            stream.close_stream("system-shutdown")
        deadline = self.reactor.seconds() + self.config.server.shutdown_timeout

        def wait_until_gone():
            if not self._open_streams() or self.reactor.seconds() >= deadline:
                for stream in self._open_streams():
                    stream.transport.abortConnection()
                return None
            return task.deferLater(self.reactor, 0.05, wait_until_gone)

        return defer.maybeDeferred(wait_until_gone)


def federation_needs(s2s) -> dict:
    """What the federation policy will ask plugins for (xmppd.s2s.policy): buddies-only asks
    IServerTrust, so a config using it needs a plugin providing that."""
    levels = [("[s2s] default_policy", s2s.default_policy),
              *((f"[s2s.policy] {domain!r}", level) for domain, level in s2s.policy.items())]
    for where, level in levels:
        if level == BUDDIES_ONLY:
            return {IServerTrust: f"{where}: {level}"}
    return {}


def _global_reactor():
    from twisted.internet import reactor

    return reactor


def _exit_failed() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
