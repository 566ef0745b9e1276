# -*- test-case-name: tests.unit.test_adhoc -*-
"""The command model: each command shows at most one form, then runs and completes.

XEP-0050 allows any number of stages; every command we offer (XEP-0133's set among them) is a
form to fill and an action to take, so a command is two callables: ``form(request)`` gives the
form to show (None: run at once, with nothing to ask) and ``run(request, form)`` does the work
and says how it went (an ``Outcome``). Either may return a Deferred. Who may see and run a
command is the command's own ``allowed(requester)``: a command a requester may not run is not
listed to it either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import Form
from xmppd.jid import JID

NOTE_TYPES = ("info", "warn", "error")
# XEP-0050 §6's application-specific error conditions.
APP_CONDITIONS = frozenset(
    "bad-action bad-locale bad-payload bad-sessionid malformed-action session-expired".split()
)


class CommandError(StanzaError):
    """A stanza error with an optional XEP-0050 condition child (``<bad-sessionid/>``...)."""

    def __init__(self, condition: str, app_condition: str | None = None,
                 text: str | None = None) -> None:
        if app_condition is not None and app_condition not in APP_CONDITIONS:
            raise ValueError(f"unknown commands condition {app_condition!r}")
        super().__init__(condition, text)
        self.app_condition = app_condition

    def to_element(self, by: str | None = None) -> domish.Element:
        error = super().to_element(by)
        if self.app_condition is not None:
            error.addElement((ns.COMMANDS, self.app_condition))
        return error


@dataclass(frozen=True)
class Outcome:
    """How a run ended: a note for the person who ran it, and a result form if any."""

    note: str | None = None
    note_type: str = "info"
    form: Form | None = None

    def __post_init__(self) -> None:
        if self.note_type not in NOTE_TYPES:
            raise ValueError(f"note types are {', '.join(NOTE_TYPES)}, not {self.note_type!r}")


@dataclass(frozen=True)
class Request:
    """One execution: who runs it (full JID), on which of our entities (the IQ's 'to')."""

    requester: JID
    entity: JID


@dataclass(frozen=True)
class Command:
    """A command node: its name in lists, its form, its action, who may use it."""

    node: str
    name: str
    run: Callable[[Request, Form | None], object]
    form: Callable[[Request], object] | None = None
    allowed: Callable[[JID], bool] = lambda requester: True


class Commands:
    """The commands the server offers, by node; ``add`` returns its own undo."""

    def __init__(self) -> None:
        self._by_node: dict[str, Command] = {}

    def add(self, command: Command) -> Callable[[], None]:
        if command.node in self._by_node:
            raise ValueError(f"command node {command.node!r} is already offered")
        self._by_node[command.node] = command
        return lambda: self._by_node.pop(command.node, None)

    def get(self, node: str) -> Command | None:
        return self._by_node.get(node)

    def visible_to(self, requester: JID) -> list[Command]:
        """The commands ``requester`` may run, in the order they were added."""
        return [command for command in self._by_node.values() if command.allowed(requester)]
