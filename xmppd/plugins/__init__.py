"""Built-in plugins, one module each; drop-in directories are added to this package's path.

``twisted.plugin.getPlugins(IXmppdPlugin, xmppd.plugins)`` finds every module-level object that
provides IXmppdPlugin here, in ``xmppd/plugins`` folders elsewhere on sys.path, and in the
config's ``plugin_dirs``.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # noqa: F821 - a package's own __path__
__all__: list[str] = []
