# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""Messages kept for offline accounts (XEP-0160), in portable SQL."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IOfflineStore
from xmppd.storage.stores.base import SQLStore, is_number


@implementer(IOfflineStore)
class SQLOfflineStore(SQLStore):
    """Messages kept for offline accounts (XEP-0160) in portable SQL, in the order stored."""

    def store(self, localpart: str, domain: str, stanza: str, stamp: float, limit: int):
        if not isinstance(stanza, str):
            return defer.fail(TypeError(f"a message is kept as serialized XML, not {stanza!r}"))
        if not is_number(stamp):
            return defer.fail(TypeError(f"stamp must be POSIX seconds, not {stamp!r}"))
        if not is_number(limit, int) or limit < 0:
            return defer.fail(ValueError(f"limit must be a count of messages, not {limit!r}"))
        return self._db.write(self._store, localpart, domain, stanza, float(stamp), limit)

    def fetch(self, localpart: str, domain: str):
        return self._db.read(self._fetch, localpart, domain)

    def delete(self, localpart: str, domain: str, up_to_id: int):
        if not is_number(up_to_id, int):
            return defer.fail(TypeError(f"up_to_id must be a message id, not {up_to_id!r}"))
        return self._db.write(self._delete, localpart, domain, up_to_id)

    def count(self, localpart: str, domain: str):
        return self._db.read(self._count, localpart, domain)

    def accounts_with_messages(self):
        return self._db.read(self._accounts_with_messages)

    # ------------------------------------------------------------------ on the database thread

    def _store(self, cursor, localpart, domain, stanza, stamp, limit) -> bool:
        # Counting and inserting under the account's lock: two messages racing for the last
        # place cannot both take it.
        user_id = self._owner(cursor, localpart, domain)
        cursor.execute(
            self._sql("SELECT COUNT(*) FROM offline_messages WHERE user_id = ?"), (user_id,)
        )
        if cursor.fetchone()[0] >= limit:
            return False
        cursor.execute(
            self._sql("INSERT INTO offline_messages (user_id, stanza, stamp) VALUES (?, ?, ?)"),
            (user_id, stanza, stamp),
        )
        return True

    def _fetch(self, cursor, localpart, domain) -> list[tuple[int, str, float]]:
        cursor.execute(
            self._sql(
                "SELECT m.id, m.stanza, m.stamp"
                " FROM offline_messages m JOIN users u ON u.id = m.user_id"
                " WHERE u.localpart = ? AND u.domain = ? ORDER BY m.id"
            ),
            (localpart, domain),
        )
        return [tuple(row) for row in cursor.fetchall()]

    def _delete(self, cursor, localpart, domain, up_to_id) -> None:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is not None:
            cursor.execute(
                self._sql("DELETE FROM offline_messages WHERE user_id = ? AND id <= ?"),
                (user_id, up_to_id),
            )

    def _accounts_with_messages(self, cursor) -> list[tuple[str, str]]:
        cursor.execute(
            self._sql(
                "SELECT u.localpart, u.domain FROM users u"
                " WHERE u.id IN (SELECT DISTINCT user_id FROM offline_messages)"
            )
        )
        return [tuple(row) for row in cursor.fetchall()]

    def _count(self, cursor, localpart, domain) -> int:
        cursor.execute(
            self._sql(
                "SELECT COUNT(*) FROM offline_messages m JOIN users u ON u.id = m.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        return cursor.fetchone()[0]
