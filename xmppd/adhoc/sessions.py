# -*- test-case-name: tests.unit.test_adhoc -*-
"""Executions waiting for their form: bounded per requester, forgotten after a while.

A session belongs to the full JID that started it (XEP-0050 §3.4: another resource, or
anyone else, gets ``bad-sessionid``), lives ``lifetime`` seconds (then ``session-expired``),
and a requester holds at most ``per_requester`` of them: a client that starts commands and
never finishes them cannot grow the table.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from xmppd.adhoc.commands import Command, CommandError, Request
from xmppd.jid import JID

DEFAULT_LIFETIME = 600.0  # seconds an unfinished execution is kept
DEFAULT_PER_REQUESTER = 8


@dataclass
class Execution:
    command: Command
    request: Request
    started: float


class Executions:
    def __init__(self, clock, lifetime: float = DEFAULT_LIFETIME,
                 per_requester: int = DEFAULT_PER_REQUESTER) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.per_requester = per_requester
        self._by_requester: dict[JID, OrderedDict[str, Execution]] = {}

    def start(self, command: Command, request: Request) -> str:
        """A new session id for ``request``; the requester's oldest is dropped at the cap."""
        mine = self._by_requester.setdefault(request.requester, OrderedDict())
        self._expire(mine)
        while len(mine) >= self.per_requester:
            mine.popitem(last=False)
        session_id = secrets.token_hex(8)
        mine[session_id] = Execution(command, request, self.clock.seconds())
        return session_id

    def take(self, requester: JID, session_id: str, node: str) -> Execution:
        """The execution, removed from the table (it ends now, whatever happens next)."""
        mine = self._by_requester.get(requester, OrderedDict())
        execution = mine.pop(session_id, None)
        if not mine:
            self._by_requester.pop(requester, None)
        if execution is None or execution.command.node != node:
            raise CommandError("bad-request", "bad-sessionid", "no such command session")
        if self.clock.seconds() - execution.started > self.lifetime:
            raise CommandError("not-allowed", "session-expired", "the command session expired")
        return execution

    def forget(self, requester: JID) -> None:
        """The requester's session ended: its executions go with it."""
        self._by_requester.pop(requester, None)

    def __len__(self) -> int:
        return sum(len(mine) for mine in self._by_requester.values())

    def _expire(self, mine: OrderedDict[str, Execution]) -> None:
        horizon = self.clock.seconds() - self.lifetime
        for session_id in [key for key, execution in mine.items() if execution.started < horizon]:
            del mine[session_id]
