# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""Rosters, their versions (XEP-0237) and pending subscription requests, in portable SQL."""

from __future__ import annotations

import json

from twisted.internet import defer
from zope.interface import implementer

from xmppd.interfaces import IRosterStore
from xmppd.storage.records import RosterItem, RosterSnapshot
from xmppd.storage.stores.base import SQLStore

ROSTER_COLUMNS = ("contact", "name", "group_names", "subscription", "pending_out", "approved")
SELECT_ROSTER_ITEMS = (
    f"SELECT {', '.join('r.' + c for c in ROSTER_COLUMNS)}"
    " FROM roster_items r JOIN users u ON u.id = r.user_id"
    " WHERE u.localpart = ? AND u.domain = ?"
)


@implementer(IRosterStore)
class SQLRosterStore(SQLStore):
    """Rosters and pending subscription requests in portable SQL.

    Each change to an item bumps the account's version in the same transaction, so a version
    names exactly one roster state (what XEP-0237 versioning relies on).
    """

    def get_roster(self, localpart: str, domain: str):
        return self._db.read(self._snapshot, localpart, domain)

    def get_item(self, localpart: str, domain: str, contact: str):
        return self._db.read(self._item, localpart, domain, contact)

    def put_item(self, localpart: str, domain: str, item: RosterItem):
        if not isinstance(item, RosterItem):
            return defer.fail(TypeError(f"put_item takes a RosterItem, not {item!r}"))
        return self._db.write(self._put, localpart, domain, item)

    def remove_item(self, localpart: str, domain: str, contact: str):
        return self._db.write(self._remove, localpart, domain, contact)

    def add_request(self, localpart: str, domain: str, contact: str, stanza: str):
        if not isinstance(stanza, str):
            return defer.fail(TypeError(f"a request is kept as serialized XML, not {stanza!r}"))
        return self._db.write(self._add_request, localpart, domain, contact, stanza, self._db.now())

    def remove_request(self, localpart: str, domain: str, contact: str):
        return self._db.write(self._remove_request, localpart, domain, contact)

    def get_requests(self, localpart: str, domain: str):
        return self._db.read(self._requests, localpart, domain)

    def accounts_with_requests(self):
        return self._db.read(self._accounts_with_requests)

    # ------------------------------------------------------------------ on the database thread

    def _snapshot(self, cursor, localpart, domain) -> RosterSnapshot:
        # The version is read before the items: a change landing in between then pairs newer
        # items with an older version, which only makes a client fetch again, never miss one.
        cursor.execute(
            self._sql(
                "SELECT v.version FROM roster_versions v JOIN users u ON u.id = v.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        row = cursor.fetchone()
        version = 0 if row is None else row[0]
        cursor.execute(self._sql(SELECT_ROSTER_ITEMS), (localpart, domain))
        # Sorted here, not by ORDER BY: engines collate text differently.
        items = sorted((_roster_item(row) for row in cursor.fetchall()), key=_by_contact)
        return RosterSnapshot(version, tuple(items))

    def _item(self, cursor, localpart, domain, contact) -> RosterItem | None:
        cursor.execute(
            self._sql(SELECT_ROSTER_ITEMS + " AND r.contact = ?"), (localpart, domain, contact)
        )
        row = cursor.fetchone()
        return None if row is None else _roster_item(row)

    def _put(self, cursor, localpart, domain, item) -> int:
        user_id = self._owner(cursor, localpart, domain)
        upsert = self._db.dialect.upsert(
            "roster_items", ("user_id", *ROSTER_COLUMNS), key=("user_id", "contact")
        )
        cursor.execute(upsert, (user_id, *_roster_row(item)))
        return self._bump_version(cursor, user_id)

    def _remove(self, cursor, localpart, domain, contact) -> int | None:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            return None
        cursor.execute(
            self._sql("DELETE FROM roster_items WHERE user_id = ? AND contact = ?"),
            (user_id, contact),
        )
        if cursor.rowcount == 0:
            return None
        return self._bump_version(cursor, user_id)

    def _bump_version(self, cursor, user_id) -> int:
        # Safe as read-then-write: the caller holds the account's lock (see _owner).
        cursor.execute(
            self._sql("UPDATE roster_versions SET version = version + 1 WHERE user_id = ?"),
            (user_id,),
        )
        if cursor.rowcount == 0:
            cursor.execute(
                self._sql("INSERT INTO roster_versions (user_id, version) VALUES (?, 1)"),
                (user_id,),
            )
            return 1
        cursor.execute(
            self._sql("SELECT version FROM roster_versions WHERE user_id = ?"), (user_id,)
        )
        return cursor.fetchone()[0]

    def _add_request(self, cursor, localpart, domain, contact, stanza, received) -> None:
        user_id = self._owner(cursor, localpart, domain)
        upsert = self._db.dialect.upsert(
            "subscription_requests",
            ("user_id", "contact", "stanza", "received"),
            key=("user_id", "contact"),
        )
        cursor.execute(upsert, (user_id, contact, stanza, received))

    def _remove_request(self, cursor, localpart, domain, contact) -> bool:
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            return False
        cursor.execute(
            self._sql("DELETE FROM subscription_requests WHERE user_id = ? AND contact = ?"),
            (user_id, contact),
        )
        return cursor.rowcount > 0

    def _accounts_with_requests(self, cursor) -> list[tuple[str, str]]:
        cursor.execute(
            self._sql(
                "SELECT u.localpart, u.domain FROM users u"
                " WHERE u.id IN (SELECT DISTINCT user_id FROM subscription_requests)"
            )
        )
        return [tuple(row) for row in cursor.fetchall()]

    def _requests(self, cursor, localpart, domain) -> list[tuple[str, str]]:
        cursor.execute(
            self._sql(
                "SELECT r.received, r.contact, r.stanza"
                " FROM subscription_requests r JOIN users u ON u.id = r.user_id"
                " WHERE u.localpart = ? AND u.domain = ?"
            ),
            (localpart, domain),
        )
        # Oldest first; requests received at the same instant come in contact order.
        return [(contact, stanza) for _, contact, stanza in sorted(cursor.fetchall())]


def _roster_row(item: RosterItem) -> tuple:
    """The item as ROSTER_COLUMNS values; the flags as 0/1, the portable spelling of a bool."""
    groups = json.dumps(list(item.groups), ensure_ascii=False)
    flags = (int(item.pending_out), int(item.approved))
    return (item.contact, item.name, groups, item.subscription, *flags)


def _roster_item(row) -> RosterItem:
    contact, name, groups, subscription, pending_out, approved = row
    return RosterItem(
        contact, name, tuple(json.loads(groups)), subscription, bool(pending_out), bool(approved)
    )


def _by_contact(item: RosterItem) -> str:
    return item.contact
