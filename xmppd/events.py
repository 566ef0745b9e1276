"""Typed server events: plugins subscribe to these constants, never to strings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """A server event; its ``name`` is for logs only, identity is the object itself."""

    name: str
    doc: str = ""


SESSION_BOUND = Event("session-bound", "a client session bound a resource: (session,)")
SESSION_CLOSED = Event("session-closed", "a bound client session ended: (session, polite)")
USER_CREATED = Event("user-created", "an account was created: (jid,)")
USER_DELETED = Event("user-deleted", "an account was deleted: (jid,)")
SERVER_STARTED = Event("server-started", "all listeners are up: ()")
SERVER_STOPPING = Event("server-stopping", "shutdown began, sessions still open: ()")

ALL = (SESSION_BOUND, SESSION_CLOSED, USER_CREATED, USER_DELETED, SERVER_STARTED, SERVER_STOPPING)
