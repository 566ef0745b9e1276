# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The stores, written once in portable SQL over an engine's small API (see ``base``).

An engine (``xmppd.storage.sqlite``, ``xmppd.storage.postgresql``) is a connection, migrations and
``read``/``write``/``dialect``/``dbapi``/``now``; it inherits ``Stores`` and with it every
typed store and ``open_store``. A new kind of data then needs a store module here and a
migration, never an engine change.
"""

from __future__ import annotations

from xmppd.storage.stores.archive import SQLArchiveStore
from xmppd.storage.stores.generic import GenericStore
from xmppd.storage.stores.incidents import SQLIncidentStore
from xmppd.storage.stores.keyval import SQLKeyValStore
from xmppd.storage.stores.maps import SQLMapStore
from xmppd.storage.stores.offline import SQLOfflineStore
from xmppd.storage.stores.roster import SQLRosterStore
from xmppd.storage.stores.server_roster import SQLServerRosterStore
from xmppd.storage.stores.users import SQLUserStore

# open_store's kinds, as Prosody names them.
KINDS = {"keyval": SQLKeyValStore, "map": SQLMapStore, "archive": SQLArchiveStore}


class Stores:
    """What an engine offers over its read/write API: the typed stores as attributes and the
    generic stores by name and kind."""

    def __init__(self) -> None:
        self.users = SQLUserStore(self)
        self.roster = SQLRosterStore(self)
        self.offline = SQLOfflineStore(self)
        self.server_roster = SQLServerRosterStore(self)
        self.incidents = SQLIncidentStore(self)

    def open_store(self, name: str, kind: str) -> GenericStore:
        """The generic store ``name`` of ``kind``; ValueError naming an unknown kind. Stores
        hold no state of their own: two opened with one name and kind see the same data."""
        if kind not in KINDS:
            expected = ", ".join(repr(k) for k in KINDS)
            raise ValueError(f"unknown store kind {kind!r} (expected {expected})")
        return KINDS[kind](self, name)
