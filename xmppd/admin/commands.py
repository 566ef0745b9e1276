# -*- test-case-name: tests.unit.test_admin_commands -*-
"""Admin commands that plugins add (Prosody's shell-command items), beside the core ones.

A plugin registers ``ctx.admin_command("trust request", handler, help, args=("DOMAIN",))``;
the command lives as long as the plugin: xmppdctl lists and calls it through the control
socket (``xmppdctl trust request example.net``), the manhole's ``admin`` has it as
``admin.trust_request(...)``. A plugin that is not loaded has no commands, so the core's
fixed list of calls never grows with plugins.

Arguments come from the command line as words: ``args`` names them (upper case, as shown
in help); a trailing ``?`` makes one optional. The handler gets them in order, returns a
result (or a Deferred of one) that xmppd.admin.control sends as JSON, and raises ValueError
for an operator's mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AdminCommand:
    name: str  # one or more words: "trust request"
    handler: Callable
    help: str
    args: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def usage(self) -> str:
        shown = [f"[{arg[:-1]}]" if arg.endswith("?") else arg for arg in self.args]
        return " ".join([self.name, *shown])

    def check(self, words: Sequence[str]) -> None:
        """ValueError when ``words`` are too few or too many for ``args``."""
        required = sum(1 for arg in self.args if not arg.endswith("?"))
        if not required <= len(words) <= len(self.args):
            raise ValueError(f"usage: {self.usage}")

    def row(self) -> dict:
        return {"command": self.name, "args": list(self.args), "help": self.help,
                "plugin": self.plugin}


class AdminCommands:
    """The commands the loaded plugins provide, by name."""

    def __init__(self) -> None:
        self._commands: dict[str, AdminCommand] = {}
        self._stopped: dict[str, str] = {}  # command -> plugin, of plugins stopped since

    def add(self, command: AdminCommand) -> Callable[[], None]:
        """Register ``command``; returns the undo function. A name is one plugin's."""
        words = command.name.split()
        if not words or " ".join(words) != command.name:
            raise ValueError(f"bad admin command name {command.name!r}")
        if any(not arg.rstrip("?") or arg.count("?") > 1 for arg in command.args):
            raise ValueError(f"bad arguments {command.args!r} for {command.name!r}")
        if command.name in self._commands:
            raise ValueError(f"admin command {command.name!r} is already provided by "
                             f"{self._commands[command.name].plugin or 'the server'}")
        self._commands[command.name] = command
        self._stopped.pop(command.name, None)
        return lambda: self._remove(command)

    def _remove(self, command: AdminCommand) -> None:
        if self._commands.get(command.name) is command:
            del self._commands[command.name]
            if command.plugin:
                self._stopped[command.name] = command.plugin

    def __iter__(self):
        return iter(sorted(self._commands.values(), key=lambda command: command.name))

    def get(self, name: str) -> AdminCommand | None:
        return self._commands.get(name)

    def rows(self) -> list[dict]:
        return [command.row() for command in self]

    def resolve(self, words: Sequence[str]) -> tuple[AdminCommand, list[str]]:
        """The command the leading ``words`` name (the longest match) and its arguments;
        ValueError naming what exists when nothing matches."""
        for length in range(len(words), 0, -1):
            command = self._commands.get(" ".join(words[:length]))
            if command is not None:
                rest = list(words[length:])
                command.check(rest)
                return command, rest
        for length in range(len(words), 0, -1):
            name = " ".join(words[:length])
            if name in self._stopped:
                raise ValueError(f"{name!r} is a command of the {self._stopped[name]} "
                                 f"plugin, which is not loaded")
        raise ValueError(unknown(words, self))

    def call(self, words: Sequence[str]):
        command, rest = self.resolve(words)
        return command.handler(*rest)


class AdminShell:
    """The admin API with the plugins' commands as methods (``admin.trust_request(d)`` for
    "trust request"): the manhole's ``admin``. Looked up on each use, so it follows plugins
    as they load and unload."""

    def __init__(self, api, commands: AdminCommands) -> None:
        self._api = api
        self._commands = commands

    def __getattr__(self, name: str):
        # "trust request" is trust_request; a one-word "block-domain" is block_domain
        command = (self._commands.get(name.replace("_", " "))
                   or self._commands.get(name.replace("_", "-")))
        if command is not None:
            return command.handler
        return getattr(self._api, name)

    def __dir__(self) -> list[str]:
        return sorted({*dir(self._api), *(c.name.replace(" ", "_").replace("-", "_")
                                          for c in self._commands)})


def unknown(words: Sequence[str], commands: Iterable[AdminCommand]) -> str:
    """Why ``words`` are no command: what the loaded plugins offer under that group."""
    group = words[0] if words else ""
    offered = [command for command in commands if command.name.split()[0] == group]
    if offered:
        listing = "; ".join(f"{c.usage}: {c.help}" for c in offered)
        return f"unknown command {' '.join(words)!r}; {group} commands: {listing}"
    return (f"unknown command {' '.join(words)!r}: no loaded plugin provides it "
            f"(see `xmppdctl commands`)")
