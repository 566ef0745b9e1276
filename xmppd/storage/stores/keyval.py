# -*- test-case-name: tests.unit.test_storage_generic -*-
"""Key-value stores: one JSON value per owner (private XML storage, vCards, blocking lists)."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IKeyValStore
from xmppd.storage.stores.base import fails_deferred
from xmppd.storage.stores.generic import GenericStore, check_owner, decode_value, encode_value

SELECT_VALUE = (
    "SELECT v.value FROM store_keyval v JOIN store_scopes s ON s.id = v.scope_id"
    " WHERE s.owner = ? AND s.store = ?"
)


@implementer(IKeyValStore)
class SQLKeyValStore(GenericStore):
    """IKeyValStore in portable SQL."""

    kind = "keyval"

    @fails_deferred
    def get(self, owner: str) -> defer.Deferred:
        return self._db.read(self._get, check_owner(owner))

    @fails_deferred
    def set(self, owner: str, value) -> defer.Deferred:
        return self._db.write(self._set, check_owner(owner), encode_value(value))

    @fails_deferred
    def set_many(self, values: Mapping) -> defer.Deferred:
        if not isinstance(values, Mapping):
            raise TypeError(f"set_many takes a mapping of owner to value, not {values!r}")
        rows = {check_owner(owner): encode_value(value) for owner, value in values.items()}
        if not rows:
            return defer.succeed(None)
        return self._db.write(self._set_many, rows)

    @fails_deferred
    def delete(self, owner: str) -> defer.Deferred:
        return self._db.write(self._delete, check_owner(owner))

    # ------------------------------------------------------------------ on the database thread

    def _get(self, cursor, owner):
        cursor.execute(self._sql(SELECT_VALUE), (owner, self.name))
        row = cursor.fetchone()
        return None if row is None else decode_value(row[0])

    def _set(self, cursor, owner, text) -> None:
        scope = self._write_scope(cursor, owner)
        upsert = self._db.dialect.upsert("store_keyval", ("scope_id", "value"), key=("scope_id",))
        cursor.execute(upsert, (scope, text))

    def _set_many(self, cursor, rows: dict[str, str]) -> None:
        scopes = self._write_scopes(cursor, set(rows))
        upsert = self._db.dialect.upsert("store_keyval", ("scope_id", "value"), key=("scope_id",))
        cursor.executemany(upsert, [(scopes[owner], text) for owner, text in rows.items()])

    def _delete(self, cursor, owner) -> bool:
        scope = self._scope(cursor, owner)
        if scope is None:
            return False
        cursor.execute(self._sql("DELETE FROM store_keyval WHERE scope_id = ?"), (scope,))
        return cursor.rowcount > 0
