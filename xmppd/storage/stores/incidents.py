# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""Incident reports of XEP-0268, in portable SQL."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IIncidentStore
from xmppd.storage.records import IncidentRecord
from xmppd.storage.stores.base import SQLStore, marks

INCIDENT_COLUMNS = (
    "direction", "local_domain", "peer", "incident_id", "description", "report", "stamp",
)


@implementer(IIncidentStore)
class SQLIncidentStore(SQLStore):
    """Incident reports (XEP-0268) in portable SQL, in the order they were kept."""

    def add_incident(self, record: IncidentRecord):
        if not isinstance(record, IncidentRecord):
            return defer.fail(TypeError(f"add_incident takes an IncidentRecord, not {record!r}"))
        return self._db.write(self._add, record)

    def list_incidents(self):
        return self._db.read(self._list)

    # ------------------------------------------------------------------ on the database thread

    def _add(self, cursor, record: IncidentRecord) -> int:
        cursor.execute(
            self._sql(
                f"INSERT INTO incident_reports ({', '.join(INCIDENT_COLUMNS)})"
                f" VALUES ({marks(INCIDENT_COLUMNS)})"
            ),
            (record.direction, record.local, record.peer, record.incident_id,
             record.description, record.report, float(record.stamp)),
        )
        # Ours is the newest id: the write transaction locks out other writers on SQLite, and
        # only the running server files reports (an engine with concurrent writers would use
        # INSERT ... RETURNING, which SQLite has only since 3.35).
        cursor.execute(self._sql("SELECT MAX(id) FROM incident_reports"))
        return cursor.fetchone()[0]

    def _list(self, cursor) -> list[IncidentRecord]:
        cursor.execute(
            self._sql(f"SELECT id, {', '.join(INCIDENT_COLUMNS)} FROM incident_reports ORDER BY id")
        )
        return [
            IncidentRecord(direction, local, peer, incident_id, description, report,
                           float(stamp), id)
            for id, direction, local, peer, incident_id, description, report, stamp
            in cursor.fetchall()
        ]
