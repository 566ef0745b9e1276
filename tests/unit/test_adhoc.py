"""XEP-0050 sessions and errors: expiry on the clock, the cap per requester, the conditions."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from xmppd import ns
from xmppd.adhoc.commands import Command, CommandError, Commands, Outcome, Request
from xmppd.adhoc.sessions import Executions
from xmppd.jid import parse_jid

ADMIN = parse_jid("root@localhost/console")
OTHER = parse_jid("root@localhost/phone")
REQUEST = Request(ADMIN, parse_jid("localhost"))
COMMAND = Command("n", "A command", lambda request, form: Outcome("done"))


def test_a_session_is_its_requesters_and_ends_when_taken():
    executions = Executions(Clock())
    session = executions.start(COMMAND, REQUEST)
    with pytest.raises(CommandError) as caught:
        executions.take(OTHER, session, "n")
    assert caught.value.app_condition == "bad-sessionid"
    assert executions.take(ADMIN, session, "n").command is COMMAND
    with pytest.raises(CommandError):
        executions.take(ADMIN, session, "n")
    assert len(executions) == 0


def test_a_session_expires_and_the_oldest_goes_at_the_cap():
    clock = Clock()
    executions = Executions(clock, lifetime=60, per_requester=2)
    first = executions.start(COMMAND, REQUEST)
    clock.advance(61)
    with pytest.raises(CommandError) as caught:
        executions.take(ADMIN, first, "n")
    assert (caught.value.condition, caught.value.app_condition) == \
        ("not-allowed", "session-expired")
    sessions = [executions.start(COMMAND, REQUEST) for _ in range(3)]
    assert len(executions) == 2
    with pytest.raises(CommandError):
        executions.take(ADMIN, sessions[0], "n")
    with pytest.raises(CommandError):  # the right id for another node
        executions.take(ADMIN, sessions[2], "other")


def test_the_error_carries_the_commands_condition_after_the_defined_one():
    element = CommandError("bad-request", "bad-action", "single stage").to_element()
    children = [(child.uri, child.name) for child in element.elements()]
    assert children == [(ns.STANZA_ERRORS, "bad-request"), (ns.STANZA_ERRORS, "text"),
                        (ns.COMMANDS, "bad-action")]
    with pytest.raises(ValueError):
        CommandError("bad-request", "not-a-condition")


def test_commands_are_listed_only_to_who_may_run_them():
    commands = Commands()
    undo = commands.add(Command("admin", "Admin only", COMMAND.run,
                                allowed=lambda jid: jid.user == "root"))
    commands.add(COMMAND)
    assert [c.node for c in commands.visible_to(ADMIN)] == ["admin", "n"]
    assert [c.node for c in commands.visible_to(parse_jid("eve@localhost/x"))] == ["n"]
    with pytest.raises(ValueError):
        commands.add(COMMAND)
    undo()
    assert commands.get("admin") is None


def _command_iq(node: str, action: str | None = None, session_id: str | None = None,
                form: bool = False):
    from twisted.words.xish import domish

    from xmppd.stanza import Stanza

    iq = domish.Element((ns.CLIENT, "iq"))
    iq["type"] = "set"
    command = iq.addElement((ns.COMMANDS, "command"))
    command["node"] = node
    if action is not None:
        command["action"] = action
    if session_id is not None:
        command["sessionid"] = session_id
    if form:
        x = command.addElement((ns.DATA_FORMS, "x"))
        x["type"] = "submit"
    return Stanza(iq, ADMIN, parse_jid("localhost"))


def test_completing_a_command_checks_the_requester_may_still_run_it():
    """Rights are checked when the form comes back too: an admin removed from [server]
    admins (a reload) after 'execute' cannot complete the command it started."""
    from twisted.python.failure import Failure

    from xmppd.adhoc.protocol import CommandProtocol
    from xmppd.forms import Form

    admins = {ADMIN}
    ran: list = []
    commands = Commands()
    commands.add(Command("admin", "Admin only",
                         lambda request, form: ran.append(request) or Outcome("done"),
                         form=lambda request: Form.build("form", []),
                         allowed=lambda jid: jid in admins))
    protocol = CommandProtocol(commands, Executions(Clock()))
    started = protocol.on_command(_command_iq("admin"), None)
    answer = started.result
    session_id = answer["sessionid"]
    admins.clear()
    completed = protocol.on_command(_command_iq("admin", "complete", session_id, form=True),
                                    None)
    failure = completed.result
    completed.addErrback(lambda _: None)
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, CommandError)
    assert failure.value.condition == "forbidden"
    assert ran == []
