"""The plugin registry: find plugins, load the enabled ones in dependency order, unload them.

Each plugin gets a PluginContext (xmppd.context) that records what it registers, so
unloading undoes all of it. Core plugins (message delivery) load whatever the config
enables, first, as Prosody autoloads mod_message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from twisted.internet import defer
from twisted.plugin import getPlugins
from zope.interface.verify import verifyObject

import xmppd.plugins
from xmppd.context import PluginContext
from xmppd.interfaces import IXmppdPlugin
from xmppd.logs import get_logger
from xmppd.options import PluginOptions

log = get_logger(__name__)

CORE_PLUGINS = ("message",)

__all__ = ["CORE_PLUGINS", "PluginContext", "PluginError", "PluginRegistry", "discover",
           "load_order"]


class PluginError(Exception):
    """A plugin could not be found, ordered or set up; the message names it."""


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
    """Loads the configured plugins into a running server and unloads them in reverse.

    ``check()`` runs first, before the database is opened: it finds the plugins, orders them
    and runs each one's optional ``configure(options)`` (xmppd.options), so a missing plugin
    or a bad option stops start-up with nothing touched. ``load()`` then sets them up.
    """

    def __init__(self, server, enabled: Iterable[str], sections: Mapping[str, Mapping],
                 plugin_dirs: Iterable[Path] = (), core: Iterable[str] = CORE_PLUGINS) -> None:
        self.server = server
        self.enabled = list(core) + list(enabled)
        self.sections = sections
        self.plugin_dirs = list(plugin_dirs)
        self.loaded: dict[str, PluginContext] = {}
        self._plugins: dict[str, object] = {}
        self._checked: list[tuple[object, object]] | None = None  # (plugin, settings)

    def check(self) -> None:
        """Find and order the enabled plugins and check their options; PluginError (or
        ValueError naming [plugins.NAME] and the key) says what is wrong."""
        available = discover(self.plugin_dirs)
        unknown = set(self.sections) - set(available)
        if unknown:
            raise PluginError(f"[plugins.{sorted(unknown)[0]}] configures a plugin that does "
                              f"not exist")
        self._checked = [(plugin, self._configure(plugin))
                         for plugin in load_order(self.enabled, available)]

    def _configure(self, plugin) -> object:
        configure = getattr(plugin, "configure", None)
        if configure is None:
            return None
        try:
            return configure(PluginOptions(plugin.name, self.sections.get(plugin.name, {})))
        except ValueError as error:  # the message names [plugins.NAME] and the key
            raise PluginError(str(error)) from error

    @defer.inlineCallbacks
    def load(self):
        if self._checked is None:
            self.check()
        for plugin, settings in self._checked:
            yield self._load(plugin, settings)

    @defer.inlineCallbacks
    def _load(self, plugin, settings):
        ctx = PluginContext(plugin.name, self.sections.get(plugin.name, {}), self.server,
                            settings)
        try:
            yield defer.maybeDeferred(plugin.setup, ctx)
        except Exception as error:
            ctx.close()
            raise PluginError(f"plugin {plugin.name!r} failed to set up: {error}") from error
        self.loaded[plugin.name] = ctx
        self._plugins[plugin.name] = plugin
        log.info("plugin {name} loaded", name=plugin.name)

    def unload(self) -> None:
        """In reverse order: each plugin's optional ``teardown()`` (its registrations still
        in place, so it may say goodbye), then every registration undone."""
        for name in reversed(list(self.loaded)):
            self._unload(name)

    def _unload(self, name: str) -> None:
        ctx = self.loaded.pop(name)
        teardown = getattr(self._plugins.pop(name, None), "teardown", None)
        if teardown is not None:
            try:
                teardown()
            except Exception:
                log.failure("plugin {name} failed to tear down", name=name)
        ctx.close()


def _origin(plugin: object) -> str:
    module = sys.modules.get(type(plugin).__module__)
    return getattr(module, "__file__", None) or type(plugin).__module__
