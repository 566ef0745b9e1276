# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""Accounts and their SCRAM keys, in portable SQL."""

from __future__ import annotations

from zope.interface import implementer

from xmppd.interfaces import IUserStore
from xmppd.sasl.credentials import ScramCredentials
from xmppd.storage import UserExists, UserNotFound
from xmppd.storage.stores.base import SQLStore, marks
from xmppd.storage.stores.generic import forget_owner


@implementer(IUserStore)
class SQLUserStore(SQLStore):
    """Accounts in portable SQL over any ``database`` offering read/write/dialect/dbapi/now."""

    def create_user(self, localpart: str, domain: str, credentials):
        return self._db.write(self._create, localpart, domain, list(credentials), self._db.now())

    def set_credentials(self, localpart: str, domain: str, credentials):
        return self._db.write(self._replace_credentials, localpart, domain, list(credentials))

    def get_credentials(self, localpart: str, domain: str, hash_name: str):
        return self._db.read(self._credentials, localpart, domain, hash_name)

    def delete_user(self, localpart: str, domain: str):
        return self._db.write(self._delete, localpart, domain)

    def user_exists(self, localpart: str, domain: str):
        return self._db.read(self._exists, localpart, domain)

    def list_users(self, domain: str | None = None):
        return self._db.read(self._list, domain)

    # ------------------------------------------------------------------ on the database thread

    def _create(self, cursor, localpart, domain, credentials, created) -> None:
        try:
            cursor.execute(
                self._sql("INSERT INTO users (localpart, domain, created) VALUES (?, ?, ?)"),
                (localpart, domain, created),
            )
        except self._db.dbapi.IntegrityError:
            raise UserExists(localpart, domain) from None
        # Generic store data of an account of this name that is gone (written after it was
        # deleted) is not the new account's.
        forget_owner(cursor, self._sql, f"{localpart}@{domain}")
        self._store_credentials(cursor, self._user_id(cursor, localpart, domain), credentials)

    def _replace_credentials(self, cursor, localpart, domain, credentials) -> None:
        user_id = self._owner(cursor, localpart, domain)
        kept = [c.hash_name for c in credentials]
        query = "DELETE FROM scram_credentials WHERE user_id = ?"
        if kept:
            query += f" AND hash_name NOT IN ({marks(kept)})"
        cursor.execute(self._sql(query), (user_id, *kept))
        self._store_credentials(cursor, user_id, credentials)

    def _store_credentials(self, cursor, user_id, credentials) -> None:
        upsert = self._db.dialect.upsert(
            "scram_credentials",
            ("user_id", "hash_name", "salt", "iterations", "stored_key", "server_key"),
            key=("user_id", "hash_name"),
        )
        for c in credentials:
            cursor.execute(
                upsert, (user_id, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
            )

    def _credentials(self, cursor, localpart, domain, hash_name) -> ScramCredentials | None:
        cursor.execute(
            self._sql(
                "SELECT c.salt, c.iterations, c.stored_key, c.server_key"
                " FROM scram_credentials c JOIN users u ON u.id = c.user_id"
                " WHERE u.localpart = ? AND u.domain = ? AND c.hash_name = ?"
            ),
            (localpart, domain, hash_name),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        salt, iterations, stored_key, server_key = row
        return ScramCredentials(
            hash_name, bytes(salt), int(iterations), bytes(stored_key), bytes(server_key)
        )

    def _delete(self, cursor, localpart, domain) -> None:
        # scram_credentials (and whatever later tables reference users) go by ON DELETE CASCADE;
        # the generic stores are owned by JIDs, not users rows: their data goes here, at once.
        cursor.execute(
            self._sql("DELETE FROM users WHERE localpart = ? AND domain = ?"), (localpart, domain)
        )
        if cursor.rowcount == 0:
            raise UserNotFound(localpart, domain)
        forget_owner(cursor, self._sql, f"{localpart}@{domain}")

    def _exists(self, cursor, localpart, domain) -> bool:
        return self._user_id(cursor, localpart, domain) is not None

    def _list(self, cursor, domain) -> list[str]:
        query, params = "SELECT localpart, domain FROM users", ()
        if domain is not None:
            query, params = query + " WHERE domain = ?", (domain,)
        cursor.execute(self._sql(query), params)
        return sorted(f"{localpart}@{host}" for localpart, host in cursor.fetchall())
