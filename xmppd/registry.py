"""The plugin registry: find plugins, load the enabled ones in dependency order, unload them.

Each plugin gets a PluginContext (xmppd.context) that records what it registers, so
unloading undoes all of it. Core plugins (message delivery) load whatever the config
enables, first, as Prosody autoloads mod_message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from twisted.internet import defer
from twisted.plugin import getCache, getPlugins
from zope.interface.verify import verifyObject

import xmppd.plugins
from xmppd.admin.commands import AdminCommand
from xmppd.context import PluginContext
from xmppd.interfaces import IXmppdPlugin
from xmppd.logs import get_logger
from xmppd.options import PluginOptions

log = get_logger(__name__)

CORE_PLUGINS = ("message",)

__all__ = ["CORE_PLUGINS", "PluginCatalog", "PluginContext", "PluginError", "PluginRegistry",
           "discover", "load_order"]


class PluginError(Exception):
    """A plugin could not be found, ordered or set up; the message names it."""


def discover(plugin_dirs: Iterable[Path] = ()) -> dict[str, object]:
    """Every plugin found in xmppd.plugins and the drop-in directories, by name (each one's
    module imported: what ``xmppdctl check`` and a failed look-up need, not a start-up)."""
    return PluginCatalog(plugin_dirs).load_all()


class PluginCatalog(Mapping):
    """The plugins there are, by name, each module imported only when its plugin is asked for.

    Twisted's plugin cache (``dropin.cache``) names every module-level object that provides
    IXmppdPlugin without importing its module; a plugin is called by that attribute's name
    (``websocket = WebSocket()`` with ``name = "websocket"``). A server imports the modules of
    its enabled plugins only, so a disabled plugin's libraries (Autobahn, prometheus_client,
    twisted.web...) cost it no memory. When the cache cannot answer alone (two objects with one
    name, or an object whose ``name`` is not its attribute's), every module is imported and the
    plugins are found by their own names, as ``getPlugins`` does.
    """

    def __init__(self, plugin_dirs: Iterable[Path] = ()) -> None:
        for directory in plugin_dirs:
            path = str(directory)
            if path not in xmppd.plugins.__path__:
                xmppd.plugins.__path__.insert(0, path)
        self._cached: dict[str, list] = {}
        for dropin in getCache(xmppd.plugins).values():
            for cached in dropin.plugins:
                if any(provided.isOrExtends(IXmppdPlugin) for provided in cached.provided):
                    self._cached.setdefault(cached.name, []).append(cached)
        self._loaded: dict[str, object] = {}
        self._all: dict[str, object] | None = None

    def __getitem__(self, name: str) -> object:
        if self._all is not None:
            return self._all[name]
        if name in self._loaded:
            return self._loaded[name]
        candidates = self._cached.get(name, ())
        if len(candidates) == 1:
            plugin = _checked(candidates[0].load())
            if plugin.name == name:
                self._loaded[name] = plugin
                return plugin
        return self.load_all()[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self):  # every plugin's own name: each module imported
        return iter(self.load_all())

    def __len__(self) -> int:
        return len(self.load_all())

    def load_all(self) -> dict[str, object]:
        """Every plugin, every module imported; PluginError for two plugins of one name."""
        if self._all is None:
            found: dict[str, object] = {}
            for plugin in getPlugins(IXmppdPlugin, xmppd.plugins):
                _checked(plugin)
                if plugin.name in found and found[plugin.name] is not plugin:
                    raise PluginError(f"two plugins are named {plugin.name!r}: "
                                      f"{_origin(found[plugin.name])} and {_origin(plugin)}")
                found[plugin.name] = plugin
            self._all = found
        return self._all


def _checked(plugin: object) -> object:
    try:
        verifyObject(IXmppdPlugin, plugin)
    except Exception as error:
        raise PluginError(f"plugin {plugin!r} does not provide IXmppdPlugin: {error}")
    return plugin


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

    def check(self, needs: Mapping[object, str] = {}) -> None:
        """Find and order the enabled plugins and check their options; PluginError says
        what is wrong. ``needs`` maps an interface the rest of the server will ask for
        (``server.query``) to the config setting that asks: some enabled plugin must
        declare it in its ``provides``."""
        available = PluginCatalog(self.plugin_dirs)
        unknown = [name for name in self.sections if name not in available]
        if unknown:
            raise PluginError(f"[plugins.{sorted(unknown)[0]}] configures a plugin that does "
                              f"not exist")
        ordered = load_order(self.enabled, available)
        for interface, setting in needs.items():
            _check_provided(interface, setting, ordered, available)
        self._checked = [(plugin, self._configure(plugin)) for plugin in ordered]

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

    def stop(self, name: str) -> None:
        """Stop one plugin on the running server: its ``teardown()``, then everything it
        registered undone. Refused while a loaded plugin requires it."""
        self._loaded_plugin(name)
        needing = [other for other, plugin in self._plugins.items() if name in plugin.requires]
        if needing:
            raise PluginError(f"plugin {name!r} is required by {', '.join(needing)}; "
                              f"stop those first")
        self._unload(name)
        log.info("plugin {name} stopped", name=name)

    def start(self, name: str) -> defer.Deferred:
        """Start again a plugin of the checked configuration that is not loaded."""
        if name in self.loaded:
            raise PluginError(f"plugin {name!r} is already loaded")
        plugin, settings = self._checked_plugin(name)
        missing = [need for need in plugin.requires if need not in self.loaded]
        if missing:
            raise PluginError(f"plugin {name!r} requires {', '.join(missing)}; start it first")
        return self._load(plugin, settings).addCallback(self._keep_order)

    def reload(self, name: str) -> defer.Deferred:
        """Stop one plugin and start it again with the same settings. The plugins that
        require it stay: they ask for its providers on use (``ctx.query``)."""
        self._loaded_plugin(name)
        plugin, settings = self._checked_plugin(name)
        self._unload(name)
        log.info("plugin {name} reloading", name=name)
        return self._load(plugin, settings).addCallback(self._keep_order)

    def reconfigure(self, name: str, section: Mapping) -> bool:
        """Give a loaded plugin new ``[plugins.NAME]`` settings without stopping it, if it
        declares itself reloadable with ``reconfigure(ctx, settings)``; False if it does not
        (then the change needs a restart). Its ``configure(options)`` checks the section
        first: a PluginError leaves the old settings in force."""
        plugin = self._loaded_plugin(name)
        reconfigure = getattr(plugin, "reconfigure", None)
        if reconfigure is None:
            return False
        sections = {**self.sections, name: section}
        before, self.sections = self.sections, sections
        try:
            settings = self._configure(plugin)
        finally:
            self.sections = before
        ctx = self.loaded[name]
        reconfigure(ctx, settings)
        ctx.settings, ctx.config = settings, dict(section)
        self.sections = sections
        self._checked = [(p, settings if p is plugin else s) for p, s in self._checked or ()]
        log.info("plugin {name} reconfigured", name=name)
        return True

    def _loaded_plugin(self, name: str) -> object:
        if name not in self.loaded:
            raise PluginError(f"plugin {name!r} is not loaded "
                              f"(loaded: {', '.join(self.loaded) or 'none'})")
        return self._plugins[name]

    def _checked_plugin(self, name: str) -> tuple[object, object]:
        for plugin, settings in self._checked or ():
            if plugin.name == name:
                return plugin, settings
        raise PluginError(f"plugin {name!r} is not enabled")

    def _keep_order(self, _=None) -> None:
        """Loaded plugins in load order, so shutdown still unloads dependents first."""
        order = [plugin.name for plugin, _ in self._checked or ()]
        self.loaded = {name: self.loaded[name] for name in order if name in self.loaded}

    def list(self) -> list[dict]:
        """Every enabled plugin: whether it is loaded, what it requires."""
        return [{"plugin": plugin.name, "loaded": plugin.name in self.loaded,
                 "requires": list(plugin.requires)} for plugin, _ in self._checked or ()]

    def admin_commands(self, commands) -> None:
        """``plugins list`` and ``plugins reload NAME`` (also ``stop``, ``start``) for
        xmppdctl and the manhole, in the server's xmppd.admin.commands table."""
        for name, handler, help, args in (
                ("plugins list", self.list, "the enabled plugins, loaded or not", ()),
                ("plugins reload", self.reload, "stop a plugin and start it again",
                 ("NAME",)),
                ("plugins stop", self.stop, "stop a plugin (none may require it)", ("NAME",)),
                ("plugins start", self.start, "start a stopped plugin again", ("NAME",))):
            commands.add(AdminCommand(name, _for_operators(handler), help, args))

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


def _check_provided(interface, setting: str, enabled: list, available: Mapping) -> None:
    """PluginError naming ``setting`` unless an enabled plugin provides ``interface``."""
    if any(interface in getattr(plugin, "provides", ()) for plugin in enabled):
        return
    names = sorted(name for name, plugin in available.items()
                   if interface in getattr(plugin, "provides", ()))
    which = (f"the {' or '.join(names)} plugin" if names
             else f"a plugin providing {interface.__name__}")
    raise PluginError(f"{setting} needs {which} in [plugins] enabled")


def _for_operators(method: Callable) -> Callable:
    """``method`` whose PluginError reaches xmppdctl as the operator's error it is."""

    def call(*args) -> defer.Deferred:
        def operators(failure):
            failure.trap(PluginError)
            raise ValueError(str(failure.value))

        return defer.maybeDeferred(method, *args).addErrback(operators)

    return call


def _origin(plugin: object) -> str:
    module = sys.modules.get(type(plugin).__module__)
    return getattr(module, "__file__", None) or type(plugin).__module__
