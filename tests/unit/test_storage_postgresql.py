"""The storage contracts (every typed and generic store) on a real PostgreSQL server, and
what the PostgreSQL engine adds: its dialect, migrations two processes race for, reads that
never overtake a write, a reactor that never waits for a lock, and a dsn whose password never
reaches a log or an error. The server is tests.storage_engines': these tests fail, never
skip, when it cannot be started."""

from __future__ import annotations

from twisted.trial import unittest

from tests.generic_store_contract import (
    ArchiveStoreContract,
    KeyValStoreContract,
    MapStoreContract,
)
from tests.storage_contract import (
    IncidentStoreContract,
    OfflineStoreContract,
    RosterStoreContract,
    ServerRosterStoreContract,
    UserStoreContract,
)
from tests.storage_engines import OnPostgreSQL


class UserStoreTests(OnPostgreSQL, UserStoreContract, unittest.TestCase):
    pass


class RosterStoreTests(OnPostgreSQL, RosterStoreContract, unittest.TestCase):
    pass


class OfflineStoreTests(OnPostgreSQL, OfflineStoreContract, unittest.TestCase):
    pass


class ServerRosterStoreTests(OnPostgreSQL, ServerRosterStoreContract, unittest.TestCase):
    pass


class IncidentStoreTests(OnPostgreSQL, IncidentStoreContract, unittest.TestCase):
    pass


class KeyValStoreTests(OnPostgreSQL, KeyValStoreContract, unittest.TestCase):
    pass


class MapStoreTests(OnPostgreSQL, MapStoreContract, unittest.TestCase):
    pass


class ArchiveStoreTests(OnPostgreSQL, ArchiveStoreContract, unittest.TestCase):
    pass
