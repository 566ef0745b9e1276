# -*- test-case-name: tests.unit.test_registry -*-
"""What one plugin sees of the server: its door in, and the record of what it registered.

Every registration returns an undo function that the context keeps, so ``close()`` removes
all of them (Prosody's unload rule) and a plugin can be stopped and loaded again. Requests
the plugin sent and still waits for are cancelled too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.admin.commands import AdminCommand
from xmppd.c2s.hooks import BOUND
from xmppd.events import Event
from xmppd.interfaces import IPluginContext
from xmppd.options import PluginOptions
from xmppd.stanza import Stanza


class SessionsView:
    """The bound client sessions, read-only: look-ups without bind or unbind. The methods
    are the registry's own, so a look-up through the view costs nothing more."""

    __slots__ = ("get", "resources", "all", "__weakref__")

    def __init__(self, registry) -> None:
        self.get = registry.get
        self.resources = registry.resources
        self.all = registry.all


class Registrations:
    """Handlers and disco declarations for one dispatcher and its entities, each recorded
    in ``undo``: shared by a plugin's context and the services it creates."""

    def __init__(self, dispatcher, disco: Mapping[str, object], undo: list) -> None:
        self._dispatcher = dispatcher
        self._disco = disco  # 'host' (and for the server, 'account') -> DiscoEntity
        self._undo = undo

    def iq(self, type: str, namespace: str, element: str, handler: Callable,
           to: str | tuple[str, ...] = "host", priority: int = 0) -> None:
        for target in (to,) if isinstance(to, str) else to:
            self._undo.append(
                self._dispatcher.add_iq(type, namespace, element, target, handler, priority))

    def stanza(self, kind: str, type: str, to: str | tuple[str, ...], handler: Callable,
               priority: int = 0) -> None:
        for target in (to,) if isinstance(to, str) else to:
            self._undo.append(self._dispatcher.add_stanza(kind, type, target, handler, priority))

    def feature(self, namespace: str, to: str = "host") -> None:
        self._undo.append(self._entity(to).add_feature(namespace))

    def identity(self, category: str, type: str, name: str | None = None,
                 to: str = "host") -> None:
        self._undo.append(self._entity(to).add_identity(category, type, name))

    def disco_info(self, provider: Callable, to: str = "host") -> None:
        """``provider(stanza, node)`` adds an xmppd.caps.DiscoInfo (or None, or a Deferred)
        to disco#info answers for ``to``; for a node, only providers answer."""
        self._undo.append(self._entity(to).add_info_provider(provider))

    def disco_items(self, provider: Callable, to: str = "host") -> None:
        """``provider(stanza, node)`` adds a list of xmppd.disco.DiscoItem (or None, or a
        Deferred) to disco#items answers for ``to``."""
        self._undo.append(self._entity(to).add_items_provider(provider))

    def _entity(self, to: str):
        try:
            return self._disco[to]
        except KeyError:
            raise ValueError(f"disco is declared for {sorted(self._disco)}, not {to!r}") from None


class ServiceContext(Registrations):
    """A service a plugin runs on subdomains (xmppd.services): registrations as on the
    server, with targets relative to the service; removed with the plugin."""

    def __init__(self, service, undo: list) -> None:
        super().__init__(service.dispatcher, {"host": service.disco}, undo)
        self.service = service
        self.domains = service.domains


@implementer(IPluginContext)
class PluginContext(Registrations, PluginOptions):
    """What one plugin may touch; every registration is recorded for ``close()``.

    The server itself stays private: a plugin that could reach the router's tables or the
    session registry could change what nothing undoes when it stops. What plugins need of
    it is handed out here, the per-stanza parts as the server's own bound methods, so the
    door costs no call on the hot paths (presence broadcast, message delivery):

    - ``route(stanza, origin)``: route a Stanza the server made for one of its accounts
      or domains (``origin`` None), sender and recipient already parsed;
    - ``emit(event, *args)``: tell the other plugins (an xmppd.events constant);
    - ``domains``: the hosts we serve; ``sessions``: the bound sessions, read-only.
    """

    def __init__(self, name: str, config: Mapping, server, settings: object = None) -> None:
        Registrations.__init__(self, server.dispatcher, {"host": server.features,
                                                         "account": server.account_features}, [])
        PluginOptions.__init__(self, name, config)
        self.settings = settings  # what the plugin's configure(options) returned, if any
        self._server = server
        self.server_config = server.config
        self.storage = server.storage
        self.reactor = server.reactor
        self.domains: frozenset[str] = server.domains
        self.sessions = SessionsView(server.sessions)
        self.route: Callable = server.router.route
        self.emit: Callable = server.emit
        self._requests: set[defer.Deferred] = set()

    def on(self, event: Event, handler: Callable, priority: int = 0) -> None:
        self._undo.append(self._server.events.on(event, handler, priority))

    def serve_disco(self) -> None:
        """Answer disco#info and disco#items for the hosts and for an account asking about
        itself, from what every plugin declares (the disco plugin's one job)."""
        for target, entity_name in (("host", "host"), ("self", "account")):
            entity = self._entity(entity_name)
            self.feature(ns.DISCO_INFO, to=entity_name)
            self.feature(ns.DISCO_ITEMS, to=entity_name)
            self.iq("get", ns.DISCO_INFO, "query", entity.on_info, to=target)
            self.iq("get", ns.DISCO_ITEMS, "query", entity.on_items, to=target)

    def stream_feature(self, builder: Callable, stage: str = "post-auth") -> None:
        """``builder(stream)`` adds an element (or None) to the stream features: after
        authentication (``post-auth``), or before it on encrypted streams (``pre-auth``)."""
        if stage == "pre-auth":
            self._undo.append(self._server.c2s_hooks.add_pre_auth_feature(builder))
        elif stage == "post-auth":
            self._undo.append(self._server.stream_features.add(builder))
        else:
            raise ValueError(f"stream feature stages are pre-auth and post-auth, not {stage!r}")

    def service(self, name: str, handler: Callable | None = None,
                title: str | None = None) -> ServiceContext:
        """Run a service on ``name``: a label ('conference': a subdomain of every host) or a
        domain. ``handler(stanza, origin)`` gets what nothing registered on the service
        takes (a component); without one, the server answers its disco and refuses the
        rest. ValueError when a domain is already served."""
        service, remove = self._server.services.add(name, handler, title)
        self._undo.append(remove)
        return ServiceContext(service, self._undo)

    # -- the web server (xmppd.http.server)

    def http_resource(self, path: str, resource, max_body: int = 0) -> None:
        """Serve a twisted.web ``resource`` at ``/path/`` (one segment) of the server's web
        server, which listens on ``[http]`` once something is mounted; unmounted at stop.
        Request bodies above ``max_body`` bytes are refused (413) before they are read.
        ValueError when the path is taken."""
        self._undo.append(self._server.http.mount(path, resource, max_body))

    def client_stream(self, stream_class, secure: bool):
        """A new client stream on this server for another transport (a WebSocket, RFC 7395):
        ``stream_class`` is xmppd.c2s.stream.ClientStream or a subclass that frames its
        input and output; no STARTTLS (``secure``: the transport is encrypted already)."""
        return stream_class(self._server, None, direct_tls=secure)

    def s2s_links(self) -> list[dict]:
        """The authenticated federation links now, one dict per direction (xmppd.s2s.manager:
        direction, local, remote, auth 'certificate'/'dialback'/..., tls, peer); [] when
        federation is off. For reports (metrics), not for routing."""
        s2s = self._server.s2s
        return s2s.list_links() if s2s is not None else []

    def http_url(self, host: str, path: str) -> str:
        """The URL clients use for ``path`` (below a mount, no leading slash) on our domain
        ``host``: ``[http] external_url`` or the first HTTPS listener's port."""
        return self._server.http.url(host, path)

    # -- client sessions beyond their stanzas (xmppd.c2s.hooks)

    def session_filters(self, hook: Callable, priority: int = 0) -> None:
        """``hook(session)`` for every session bound from now on, to add its filters."""
        self._undo.append(self._server.c2s_hooks.add_filter_hook(hook, priority))

    def keep_sessions(self, keeper: Callable, priority: int = 0) -> None:
        """``keeper(session)`` True keeps a session whose connection was lost."""
        self._undo.append(self._server.c2s_hooks.add_keeper(keeper, priority))

    def claim(self, namespace: str, name: str, handler: Callable,
              states: tuple[str, ...] = (BOUND,)) -> None:
        """``handler(element, stream)`` for a top-level non-stanza element."""
        self._undo.append(self._server.c2s_hooks.claim(namespace, name, handler, states))

    def claim_iq_before_auth(self, namespace: str, handler: Callable) -> None:
        """``handler(element, stream)`` for IQs of ``namespace`` on an encrypted stream
        before authentication (xmppd.c2s.hooks.ClientHooks.claim_iq_before_auth)."""
        self._undo.append(self._server.c2s_hooks.claim_iq_before_auth(namespace, handler))

    def sasl2_extension(self, extension, priority: int = 0) -> None:
        """Add an xmppd.sasl2.Sasl2Extension: its SASL2 <inline/> feature, mechanisms,
        work after authentication, inline resumption."""
        self._undo.append(self._server.sasl2.add_extension(extension, priority))

    def bind2_feature(self, namespace: str, handler: Callable) -> None:
        """``handler(child, stream)`` enables ``namespace``'s feature inline in Bind 2 (a
        child of <bind/>, the session just bound); what it returns goes into <bound/>."""
        self._undo.append(self._server.sasl2.add_bind2_feature(namespace, handler))

    def login_gate(self, gate: Callable, priority: int = 0) -> None:
        """``gate(localpart, domain)``: a reason to refuse an account that proved its
        credentials (``account-disabled``), or None, or a Deferred of either."""
        self._undo.append(self._server.c2s_hooks.add_login_gate(gate, priority))

    def attach_session(self, session, stream) -> None:
        self._server.c2s_hooks.attach(session, stream)

    def end_session(self, session, why: str = "hibernation ended") -> None:
        self._server.c2s_hooks.end(session, why)

    @property
    def client_hooks(self):
        """The server's IClientHooks, for what moves a session between the nodes of a cluster
        (``export_state``, ``hand_over``, ``adopt``, ``restore_state``); registrations go
        through this context's own methods, which undo them."""
        return self._server.c2s_hooks

    def carry_session_state(self, name: str, export: Callable, restore: Callable) -> None:
        """What this plugin keeps about a session, carried when the session moves to another
        node of a cluster (XEP-0198 resumption there): ``export(session)`` JSON-able or None,
        ``restore(session, data)`` on the node it arrives at."""
        self._undo.append(self._server.c2s_hooks.add_state_carrier(name, export, restore))

    # -- operators

    def admin_command(self, name: str, handler: Callable, help: str,
                      args: tuple[str, ...] = ()) -> None:
        """Add ``xmppdctl NAME ARGS...`` (and ``admin.NAME_WITH_UNDERSCORES`` in the manhole)
        while the plugin is loaded: ``handler(*words)`` returns a JSON-able result or a
        Deferred, ValueError for the operator's mistake. ``args`` name the words ('DOMAIN';
        'LOCAL?' optional). See xmppd.admin.commands."""
        command = AdminCommand(name, handler, help, tuple(args), self.name)
        self._undo.append(self._server.admin_commands.add(command))

    def close_federation(self, matches: Callable[[str], bool]) -> int:
        """Close every server-to-server stream with a remote domain for which ``matches`` is
        true, either direction (a domain just blocked); returns how many links ended."""
        federation = self._server.s2s
        if federation is None:
            return 0
        remotes = {row["remote"] for row in federation.list_links()} | {
            stream.remote_domain for stream in federation.incoming
            if getattr(stream, "remote_domain", None)}
        return sum(federation.close_links(remote) for remote in sorted(remotes)
                   if remote and matches(remote))

    def remote_sessions(self):
        """The sessions bound on other nodes of a cluster (``get(full)``,
        ``resources(bare)``: xmppd.cluster's mirror, the router's remote-sessions provider),
        or None on a single node; asked at use, as the cluster starts after the plugins."""
        return self._server.router.remote_sessions

    # -- services between plugins

    def provide(self, interface, provider) -> None:
        self._undo.append(self._server.provide(interface, provider))

    def query(self, interface):
        """The provider another plugin registered for ``interface``, or None; ask when it
        is needed, not at setup: the other plugin may load later, or be reloaded."""
        return self._server.query(interface)

    def open_store(self, name: str, kind: str):
        """A generic store of this server's storage; nothing to undo: the data outlives the
        plugin, as it must across a reload."""
        return self.storage.open_store(name, kind)

    # -- sending

    def send(self, element: domish.Element):
        """Route a stanza the plugin made; its 'from' must be one of our addresses."""
        return self._server.router.send_from_server(element)

    def bounce(self, stanza: Stanza, condition: str, text: str | None = None) -> None:
        """Answer ``stanza`` with a stanza error (never an error to an error)."""
        self._server.router.bounce(stanza, condition, text)

    def send_iq(self, element: domish.Element, timeout: float | None = None) -> defer.Deferred:
        """Send an IQ get/set and wait for its answer (xmppd.iq_tracker): fires with the
        result Stanza; errbacks with the answer's StanzaError or IQTimeout. Without a
        'from', it is sent from the recipient's domain if we host it, else from our first
        domain. Still waiting when the plugin stops: cancelled."""
        if not element.hasAttribute("from"):
            element["from"] = self._default_sender(element.getAttribute("to"))
        d = self._server.router.iq_tracker.request(element, timeout)
        self._requests.add(d)
        d.addBoth(self._request_done, d)
        return d

    def _default_sender(self, to: str | None) -> str:
        domains = self._server.domains
        host = (to or "").rpartition("@")[2].partition("/")[0]
        return host if host in domains else sorted(domains)[0]

    def _request_done(self, result, d: defer.Deferred):
        self._requests.discard(d)
        return result

    # -- stopping

    def close(self) -> None:
        while self._requests:
            self._requests.pop().cancel()
        while self._undo:
            self._undo.pop()()
