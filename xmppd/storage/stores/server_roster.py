# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The server roster of XEP-0267, in portable SQL."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IServerRosterStore
from xmppd.storage.records import ServerPeer
from xmppd.storage.stores.base import SQLStore

SERVER_ROSTER_COLUMNS = (
    "local_domain", "peer", "subscription", "pending_out", "pending_in", "since",
)


@implementer(IServerRosterStore)
class SQLServerRosterStore(SQLStore):
    """The server roster (XEP-0267) in portable SQL: a small table, read whole at start-up."""

    def get_peers(self):
        return self._db.read(self._peers)

    def put_peer(self, peer: ServerPeer):
        if not isinstance(peer, ServerPeer):
            return defer.fail(TypeError(f"put_peer takes a ServerPeer, not {peer!r}"))
        return self._db.write(self._put, peer)

    def remove_peer(self, local: str, peer: str):
        return self._db.write(self._remove, local, peer)

    # ------------------------------------------------------------------ on the database thread

    def _peers(self, cursor) -> list[ServerPeer]:
        cursor.execute(self._sql(f"SELECT {', '.join(SERVER_ROSTER_COLUMNS)} FROM server_roster"))
        peers = (
            ServerPeer(local, peer, subscription, bool(out), bool(in_), float(since))
            for local, peer, subscription, out, in_, since in cursor.fetchall()
        )
        # Sorted here, not by ORDER BY: engines collate text differently.
        return sorted(peers, key=lambda p: (p.local, p.peer))

    def _put(self, cursor, peer: ServerPeer) -> None:
        upsert = self._db.dialect.upsert(
            "server_roster", SERVER_ROSTER_COLUMNS, key=("local_domain", "peer")
        )
        cursor.execute(
            upsert,
            (peer.local, peer.peer, peer.subscription, int(peer.pending_out),
             int(peer.pending_in), float(peer.since)),
        )

    def _remove(self, cursor, local, peer) -> bool:
        cursor.execute(
            self._sql("DELETE FROM server_roster WHERE local_domain = ? AND peer = ?"),
            (local, peer),
        )
        return cursor.rowcount > 0
