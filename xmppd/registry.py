"""The plugin registry: find plugins, load the enabled ones in dependency order, unload them.

Each plugin gets a PluginContext that records what it registers, so unloading undoes all of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from twisted.internet import defer
from twisted.plugin import getPlugins
from zope.interface import implementer
from zope.interface.verify import verifyObject

import xmppd.plugins
from xmppd.events import Event
from xmppd.interfaces import IPluginContext, IXmppdPlugin
from xmppd.logs import get_logger

log = get_logger(__name__)


class PluginError(Exception):
    """A plugin could not be found, ordered or set up; the message names it."""


@implementer(IPluginContext)
class PluginContext:
    """What one plugin may touch; every registration is recorded for ``close()``."""

    def __init__(self, name: str, config: Mapping, server) -> None:
        self.name = name
        self.config = dict(config)
        self.server = server
        self.storage = server.storage
        self.reactor = server.reactor
        self._undo: list[Callable[[], None]] = []

    def iq(self, type: str, namespace: str, element: str, handler: Callable,
           to: str | tuple[str, ...] = "host", priority: int = 0) -> None:
        for target in (to,) if isinstance(to, str) else to:
            self._undo.append(
                self.server.dispatcher.add_iq(type, namespace, element, target, handler, priority))

    def stanza(self, kind: str, type: str, to: str, handler: Callable, priority: int = 0) -> None:
        self._undo.append(self.server.dispatcher.add_stanza(kind, type, to, handler, priority))

    def on(self, event: Event, handler: Callable, priority: int = 0) -> None:
        self._undo.append(self.server.events.on(event, handler, priority))

    def feature(self, namespace: str) -> None:
        self._undo.append(self.server.features.add_feature(namespace))

    def identity(self, category: str, type: str, name: str | None = None) -> None:
        self._undo.append(self.server.features.add_identity(category, type, name))

    def stream_feature(self, builder: Callable) -> None:
        self._undo.append(self.server.stream_features.add(builder))

    def provide(self, interface, provider) -> None:
        self._undo.append(self.server.provide(interface, provider))

    def open_store(self, name: str, kind: str):
        """A generic store of this server's storage; nothing to undo: the data outlives the
        plugin, as it must across a reload."""
        return self.storage.open_store(name, kind)

    def close(self) -> None:
        while self._undo:
            self._undo.pop()()


def discover(plugin_dirs: Iterable[Path] = ()) -> dict[str, object]:
    """Every plugin found in xmppd.plugins and the drop-in directories, by name."""
    for directory in plugin_dirs:
        path = str(directory)
        if path not in xmppd.plugins.__path__:
            xmppd.plugins.__path__.insert(0, path)
    found: dict[str, object] = {}
    for plugin in getPlugins(IXmppdPlugin, xmppd.plugins):
        try:
            verifyObject(IXmppdPlugin, plugin)
        except Exception as error:
            raise PluginError(f"plugin {plugin!r} does not provide IXmppdPlugin: {error}")
        if plugin.name in found and found[plugin.name] is not plugin:
            raise PluginError(f"two plugins are named {plugin.name!r}: "
                              f"{_origin(found[plugin.name])} and {_origin(plugin)}")
        found[plugin.name] = plugin
    return found


def load_order(enabled: Iterable[str], available: Mapping[str, object]) -> list[object]:
    """The enabled plugins, each after those it requires; missing names and cycles are errors."""
    enabled = list(dict.fromkeys(enabled))
    wanted = set(enabled)
    ordered: list[object] = []
    state: dict[str, str] = {}

    def visit(name: str, needed_by: str | None) -> None:
        if name not in available:
            where = f" (required by {needed_by!r})" if needed_by else ""
            raise PluginError(f"plugin {name!r}{where} was not found; "
                              f"known plugins: {', '.join(sorted(available)) or 'none'}")
        if needed_by and name not in wanted:
            raise PluginError(f"plugin {needed_by!r} requires {name!r}, which is not enabled")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise PluginError(f"plugins {name!r} and {needed_by!r} require each other")
        state[name] = "visiting"
        for requirement in available[name].requires:
            visit(requirement, name)
        state[name] = "done"
        ordered.append(available[name])

    for name in enabled:
        visit(name, None)
    return ordered


class PluginRegistry:
    """Loads the configured plugins into a running server and unloads them in reverse."""

    def __init__(self, server, enabled: Iterable[str], sections: Mapping[str, Mapping],
                 plugin_dirs: Iterable[Path] = ()) -> None:
        self.server = server
        self.enabled = list(enabled)
        self.sections = sections
        self.plugin_dirs = list(plugin_dirs)
        self.loaded: dict[str, PluginContext] = {}

    @defer.inlineCallbacks
    def load(self):
        available = discover(self.plugin_dirs)
        unknown = set(self.sections) - set(available)
        if unknown:
            raise PluginError(f"[plugins.{sorted(unknown)[0]}] configures a plugin that does "
                              f"not exist")
        for plugin in load_order(self.enabled, available):
            ctx = PluginContext(plugin.name, self.sections.get(plugin.name, {}), self.server)
            try:
                yield defer.maybeDeferred(plugin.setup, ctx)
            except Exception as error:
                ctx.close()
                raise PluginError(f"plugin {plugin.name!r} failed to set up: {error}") from error
            self.loaded[plugin.name] = ctx
            log.info("plugin {name} loaded", name=plugin.name)

    def unload(self) -> None:
        for name in reversed(list(self.loaded)):
            self.loaded.pop(name).close()


def _origin(plugin: object) -> str:
    module = sys.modules.get(type(plugin).__module__)
    return getattr(module, "__file__", None) or type(plugin).__module__
