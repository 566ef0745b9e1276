# -*- test-case-name: tests.unit.test_storage_generic -*-
"""Map stores: per owner, JSON values by key (pubsub node configs, push registrations, stream
management tokens)."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IMapStore
from xmppd.storage.stores.base import fails_deferred
from xmppd.storage.stores.generic import GenericStore, check_owner, decode_value, encode_value

SELECT_ITEMS = (
    "SELECT m.item_key, m.value FROM store_map m JOIN store_scopes s ON s.id = m.scope_id"
    " WHERE s.owner = ? AND s.store = ?"
)


@implementer(IMapStore)
class SQLMapStore(GenericStore):
    """IMapStore in portable SQL."""

    kind = "map"

    @fails_deferred
    def get(self, owner: str, key: str) -> defer.Deferred:
        return self._db.read(self._get, check_owner(owner), _check_key(key))

    @fails_deferred
    def set(self, owner: str, key: str, value) -> defer.Deferred:
        return self.set_many(owner, {key: value})

    @fails_deferred
    def set_many(self, owner: str, values: Mapping) -> defer.Deferred:
        if not isinstance(values, Mapping):
            raise TypeError(f"set_many takes a mapping of key to value, not {values!r}")
        rows = [(_check_key(key), encode_value(value)) for key, value in values.items()]
        if not rows:
            return defer.succeed(None)
        return self._db.write(self._set, check_owner(owner), rows)

    @fails_deferred
    def delete(self, owner: str, key: str) -> defer.Deferred:
        return self._db.write(self._delete, check_owner(owner), _check_key(key))

    @fails_deferred
    def keys(self, owner: str) -> defer.Deferred:
        return self.items(owner).addCallback(sorted)

    @fails_deferred
    def items(self, owner: str) -> defer.Deferred:
        return self._db.read(self._items, check_owner(owner))

    @fails_deferred
    def clear(self, owner: str) -> defer.Deferred:
        return self._db.write(self._clear, check_owner(owner))

    # ------------------------------------------------------------------ on the database thread

    def _get(self, cursor, owner, key):
        cursor.execute(self._sql(SELECT_ITEMS + " AND m.item_key = ?"), (owner, self.name, key))
        row = cursor.fetchone()
        return None if row is None else decode_value(row[1])

    def _set(self, cursor, owner, rows) -> None:
        scope = self._write_scope(cursor, owner)
        upsert = self._db.dialect.upsert(
            "store_map", ("scope_id", "item_key", "value"), key=("scope_id", "item_key")
        )
        cursor.executemany(upsert, [(scope, key, text) for key, text in rows])

    def _delete(self, cursor, owner, key) -> bool:
        return self._delete_where(cursor, owner, " AND item_key = ?", (key,)) > 0

    def _items(self, cursor, owner) -> dict:
        cursor.execute(self._sql(SELECT_ITEMS), (owner, self.name))
        return {key: decode_value(text) for key, text in cursor.fetchall()}

    def _clear(self, cursor, owner) -> int:
        return self._delete_where(cursor, owner, "", ())

    def _delete_where(self, cursor, owner, condition, params) -> int:
        scope = self._scope(cursor, owner)
        if scope is None:
            return 0
        cursor.execute(
            self._sql("DELETE FROM store_map WHERE scope_id = ?" + condition), (scope, *params)
        )
        return cursor.rowcount


def _check_key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a map key is a str, not {key!r}")
    return key
