# -*- test-case-name: tests.unit.test_registry -*-
"""A plugin's own ``[plugins.NAME]`` section, read through typed getters whose errors name
the plugin and the key.

The registry hands one to each enabled plugin's optional ``configure(options)`` before the
database is opened or migrated (xmppd.registry.PluginRegistry.check), so a bad value stops
start-up before anything is touched; what ``configure`` returns is the plugin context's
``settings`` at setup. The plugin context reads the same way (it is a PluginOptions too),
for plugins that still read their options in ``setup``.
"""

from __future__ import annotations

from collections.abc import Mapping


class PluginOptions:
    """The options of one plugin, as written in the config; nothing is read until asked."""

    def __init__(self, name: str, config: Mapping) -> None:
        self.name = name
        self.config = dict(config)

    def known(self, *keys: str) -> None:
        """An unknown key stops start-up, like any other unknown key of the config."""
        unknown = sorted(set(self.config) - set(keys))
        if unknown:
            raise ValueError(f"[plugins.{self.name}] {unknown[0]}: unknown key")

    def option_int(self, name: str, default: int, minimum: int | None = None,
                   maximum: int | None = None) -> int:
        value = self.config.get(name, default)
        if (isinstance(value, bool) or not isinstance(value, int)
                or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            bounds = " and ".join(part for part in (
                f">= {minimum}" if minimum is not None else "",
                f"<= {maximum}" if maximum is not None else "") if part)
            raise ValueError(self._bad(name, f"an integer{' ' + bounds if bounds else ''}",
                                       value))
        return value

    def option_bool(self, name: str, default: bool) -> bool:
        value = self.config.get(name, default)
        if not isinstance(value, bool):
            raise ValueError(self._bad(name, "true or false", value))
        return value

    def option_str(self, name: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.config.get(name, default)
        if not isinstance(value, str) or (choices and value not in choices):
            expected = f"one of {', '.join(choices)}" if choices else "a string"
            raise ValueError(self._bad(name, expected, value))
        return value

    def option_strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings (a single string is a list of one)."""
        value = self.config.get(name, default)
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(self._bad(name, "a list of strings", value))
        return tuple(value)

    def _bad(self, name: str, expected: str, value: object) -> str:
        return f"[plugins.{self.name}] {name}: expected {expected}, got {value!r}"


def no_options(options: PluginOptions) -> None:
    """``configure`` for a plugin that takes no options: its section must be empty."""
    options.known()
