"""Helpers for plugins that validate their own [plugins.NAME] section."""

from __future__ import annotations

from collections.abc import Iterable


def reject_unknown_keys(options, known: Iterable[str]) -> None:
    """An unknown key in a plugin's section stops start-up, like any other unknown key;
    ``options`` is the plugin's xmppd.options.PluginOptions or its context."""
    options.known(*known)


def max_size_only(options, default: int) -> int:
    """The section of a plugin whose one option is ``max_size`` (bytes, at least 1)."""
    reject_unknown_keys(options, ("max_size",))
    return options.option_int("max_size", default, minimum=1)
