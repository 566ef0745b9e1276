# -*- test-case-name: tests.unit.test_sm_handover -*-
"""The stream of a session that arrived from another node of a cluster without one.

A hibernated session keeps its dead stream (xmppd.c2s.hooks), which answers for where the
client came from and how it logged in until a new stream takes the session over. A session
handed over by another node (XEP-0198 resumption there, xmppd.sm.handover) had its stream on
that node; this stands in for it: disconnected, writing nowhere, and remembering what the
admin views ask of a stream.
"""

from __future__ import annotations


class DetachedStream:
    """Stands in for a connection that was on another node; ``hooks`` is the server's
    xmppd.c2s.hooks.ClientHooks (a hibernated session that ends goes through them)."""

    disconnected = True

    def __init__(self, hooks, peer_address: str, secure: bool, mechanism: str | None) -> None:
        self.hooks = hooks
        self.peer_address = peer_address
        self.secure = secure
        self.mechanism = mechanism
        self.session = None

    def send(self, element) -> None:
        """Nothing is connected: what a hibernated session is sent waits in its stream
        management queue, before this."""

    def close_stream(self, condition: str | None = None, text: str | None = None) -> None:
        """Already closed."""

    def release(self, session) -> None:
        """The session moved to a real stream: nothing to let go of."""

    def __repr__(self) -> str:
        return f"<DetachedStream from {self.peer_address}>"
