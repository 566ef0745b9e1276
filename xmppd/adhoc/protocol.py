# -*- test-case-name: tests.unit.test_adhoc -*-
"""The ``<command/>`` exchange of XEP-0050 and its disco, for the commands of one server.

``execute`` (the default action) on a node starts a session and shows the command's form
(status ``executing``, with ``complete`` as the only and default action), or runs a command
that asks nothing at once. The submitted form comes back with ``complete`` (or ``execute``,
the default action) and the session id; ``cancel`` ends a session. Multi-stage actions
(``next``, ``prev``) are ``bad-action``: no command has a second stage.
"""

from __future__ import annotations

import secrets

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.adhoc.commands import Command, CommandError, Commands, Outcome, Request
from xmppd.adhoc.sessions import Executions
from xmppd.caps import DiscoInfo, Identity
from xmppd.disco import DiscoItem
from xmppd.forms import Form, is_form, parse_form
from xmppd.stanza import Stanza

ACTIONS = frozenset(("execute", "cancel", "complete", "next", "prev"))
COMMAND_NODE_INFO = DiscoInfo((Identity("automation", "command-node"),),
                              (ns.COMMANDS, ns.DATA_FORMS))


class CommandProtocol:
    def __init__(self, commands: Commands, executions: Executions) -> None:
        self.commands = commands
        self.executions = executions

    # -- disco (XEP-0050 §2)

    def disco_items(self, stanza: Stanza, node: str | None) -> list[DiscoItem] | None:
        if node != ns.COMMANDS:
            return None
        entity = stanza.recipient.full()
        return [DiscoItem(entity, command.node, command.name)
                for command in self.commands.visible_to(stanza.sender)]

    def disco_info(self, stanza: Stanza, node: str | None) -> DiscoInfo | None:
        if node == ns.COMMANDS:
            return DiscoInfo((Identity("automation", "command-list"),), ())
        command = self.commands.get(node) if node is not None else None
        if command is None or not command.allowed(stanza.sender):
            return None  # a command it may not run is not there for it (item-not-found)
        return COMMAND_NODE_INFO

    # -- execution (XEP-0050 §3)

    def on_command(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._command(stanza))

    async def _command(self, stanza: Stanza) -> domish.Element:
        element = stanza.payload()
        node = element.getAttribute("node")
        if not node:
            raise CommandError("bad-request", "bad-payload", "a command needs a node")
        action = element.getAttribute("action", "execute")
        if action not in ACTIONS:
            raise CommandError("bad-request", "malformed-action", "unknown action")
        session_id = element.getAttribute("sessionid")
        request = Request(stanza.sender, stanza.recipient)
        if session_id is None:
            if action != "execute":
                raise CommandError("bad-request", "bad-action",
                                   f"'{action}' needs a session; start with 'execute'")
            return await self._start(self._command_for(node, request), request)
        execution = self.executions.take(request.requester, session_id, node)
        if not execution.command.allowed(request.requester):  # rights may be gone since
            raise CommandError("forbidden", text="you may not run this command")
        if action == "cancel":
            return _answer(node, session_id, "canceled")
        if action not in ("execute", "complete"):
            raise CommandError("bad-request", "bad-action", "this command has a single stage")
        submitted = _submitted_form(element)
        outcome = await defer.maybeDeferred(execution.command.run, request, submitted)
        return _completed(node, session_id, outcome)

    def _command_for(self, node: str, request: Request) -> Command:
        command = self.commands.get(node)
        if command is None:
            raise CommandError("item-not-found", text="no such command")
        if not command.allowed(request.requester):
            raise CommandError("forbidden", text="you may not run this command")
        return command

    async def _start(self, command: Command, request: Request) -> domish.Element:
        if command.form is None:
            outcome = await defer.maybeDeferred(command.run, request, None)
            return _completed(command.node, secrets.token_hex(8), outcome)  # nothing kept
        form = await defer.maybeDeferred(command.form, request)
        session_id = self.executions.start(command, request)
        answer = _answer(command.node, session_id, "executing")
        actions = answer.addElement("actions")
        actions["execute"] = "complete"
        actions.addElement("complete")
        answer.addChild(form.to_element())
        return answer


def _submitted_form(element: domish.Element) -> Form:
    forms = [child for child in element.elements() if is_form(child)]
    if len(forms) != 1:
        raise CommandError("bad-request", "bad-payload", "complete the command with its form")
    form = parse_form(forms[0])
    if form.type != "submit":
        raise CommandError("bad-request", "bad-payload", "the form must be of type 'submit'")
    return form


def _answer(node: str, session_id: str, status: str) -> domish.Element:
    answer = domish.Element((ns.COMMANDS, "command"))
    answer["node"] = node
    answer["sessionid"] = session_id
    answer["status"] = status
    return answer


def _completed(node: str, session_id: str, outcome: Outcome | None) -> domish.Element:
    answer = _answer(node, session_id, "completed")
    outcome = outcome or Outcome()
    if outcome.note is not None:
        note = answer.addElement("note", content=outcome.note)
        note["type"] = outcome.note_type
    if outcome.form is not None:
        answer.addChild(outcome.form.to_element())
    return answer
