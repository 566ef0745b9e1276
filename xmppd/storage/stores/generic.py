# -*- test-case-name: tests.unit.test_storage_generic -*-
"""What the generic stores (keyval, map, archive) share: scopes, owners and JSON values.

Every row of a generic store belongs to a scope, one (owner, store name) pair in
``store_scopes`` (see migration 0004): reads join it, writes make it on first use. An
account's scopes go with the account (``forget_owner``, called by the user store in the
transaction that deletes or creates it), and their rows by ON DELETE CASCADE.
"""

from __future__ import annotations

import json

from xmppd.storage.stores.base import SQLStore, marks

MAX_NAME = 1023  # a store name may embed a pubsub node name ('pep:' + node)
MAX_OWNER = 2047  # a bare JID: localpart and domainpart of 1023 bytes each, and the '@'

# Owners per scope look-up: well under the 999 parameters older SQLite builds allow.
SCOPES_PER_QUERY = 500

SCOPE = "SELECT id FROM store_scopes WHERE owner = ? AND store = ?"
NEW_SCOPE = (
    "INSERT INTO store_scopes (owner, store) VALUES (?, ?) ON CONFLICT (owner, store) DO NOTHING"
)


class GenericStore(SQLStore):
    """One store name of one kind; every call names the owner it is about."""

    kind = ""  # 'keyval', 'map' or 'archive', as open_store takes it

    def __init__(self, database, name: str) -> None:
        super().__init__(database)
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise ValueError(
                f"a store name is a non-empty str of at most {MAX_NAME} characters, not {name!r}"
            )
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.kind} store {self.name!r} of {self._db!r}>"

    def _scope(self, cursor, owner: str) -> int | None:
        """The scope id of ``owner`` in this store, None while it has never been written."""
        cursor.execute(self._sql(SCOPE), (owner, self.name))
        row = cursor.fetchone()
        return None if row is None else row[0]

    def _write_scope(self, cursor, owner: str) -> int:
        """The scope id of ``owner``, made on its first write. Looked up first: that is the
        usual case, and one SELECT; the insert ignores a scope a concurrent writer made."""
        scope = self._scope(cursor, owner)
        if scope is None:
            cursor.execute(self._sql(NEW_SCOPE), (owner, self.name))
            scope = self._scope(cursor, owner)
        return scope

    def _write_scopes(self, cursor, owners: set[str]) -> dict[str, int]:
        """The scope id of each of ``owners``, made where missing: one SELECT per
        ``SCOPES_PER_QUERY`` owners instead of one per owner (an archive batch names a
        hundred). Looked up in the write transaction every time, never cached across
        transactions: a scope goes with its account (``forget_owner``, possibly in
        xmppdctl's process), and a remembered id would write into a deleted scope or, as
        SQLite may hand a deleted newest id out again, into a namesake's."""
        scopes = self._scopes(cursor, owners)
        missing = [owner for owner in owners if owner not in scopes]
        if missing:
            cursor.executemany(self._sql(NEW_SCOPE), [(owner, self.name) for owner in missing])
            scopes.update(self._scopes(cursor, missing))
        return scopes

    def _scopes(self, cursor, owners) -> dict[str, int]:
        owners = list(owners)
        scopes: dict[str, int] = {}
        for at in range(0, len(owners), SCOPES_PER_QUERY):
            chunk = owners[at:at + SCOPES_PER_QUERY]
            cursor.execute(
                self._sql(f"SELECT owner, id FROM store_scopes WHERE store = ?"
                          f" AND owner IN ({marks(chunk)})"),
                (self.name, *chunk),
            )
            scopes.update(cursor.fetchall())
        return scopes


def check_owner(owner) -> str:
    """``owner`` if it can own data (a non-empty str), else TypeError/ValueError naming it."""
    if not isinstance(owner, str):
        raise TypeError(f"a store owner is a bare JID str, not {owner!r}")
    if not owner or len(owner) > MAX_OWNER:
        raise ValueError(f"a store owner is a bare JID, not {owner!r}")
    return owner


def encode_value(value) -> str:
    """``value`` as JSON text; TypeError or ValueError for what JSON cannot hold, and for
    None, which ``get`` answers for a value that is not there."""
    if value is None:
        raise ValueError("None is no value: delete the value instead")
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_value(text: str):
    return json.loads(text)


def forget_owner(cursor, sql, owner: str) -> None:
    """Delete every generic store row of ``owner``, in the caller's write transaction."""
    cursor.execute(sql("DELETE FROM store_scopes WHERE owner = ?"), (owner,))
