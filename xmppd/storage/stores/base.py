# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""What every store shares: the engine it runs on, and finding the account a call is about.

A store never touches a connection itself. It hands functions of a DB-API cursor to its
engine's ``read`` (must not write) and ``write`` (one transaction), writes its SQL with ``?``
placeholders through ``engine.dialect``, catches ``engine.dbapi`` errors and asks
``engine.now()`` for the time: that small API is all a new engine has to offer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from twisted.internet import defer

from xmppd.storage import UserNotFound


class SQLStore:
    """A store over any engine offering read/write/dialect/dbapi/now."""

    def __init__(self, database) -> None:
        self._db = database
        self._sql = database.dialect.sql

    def _user_id(self, cursor, localpart, domain, lock=False) -> int | None:
        query = "SELECT id FROM users WHERE localpart = ? AND domain = ?"
        if lock:
            query += self._db.dialect.for_update
        cursor.execute(self._sql(query), (localpart, domain))
        row = cursor.fetchone()
        return None if row is None else row[0]

    def _owner(self, cursor, localpart, domain) -> int:
        """The id of the account a write changes, locked until commit so that concurrent
        writes for one account take turns; UserNotFound when there is no such account."""
        user_id = self._user_id(cursor, localpart, domain, lock=True)
        if user_id is None:
            raise UserNotFound(localpart, domain)
        return user_id


def is_number(value, kind=(int, float)) -> bool:
    """True for an int (or float) that is not a bool: True is no count and no time."""
    return isinstance(value, kind) and not isinstance(value, bool)


def marks(values) -> str:
    """``?, ?, ?``: one placeholder per value, for an IN list or a VALUES row."""
    return ", ".join("?" for _ in values)


def fails_deferred(method: Callable) -> Callable:
    """A store method whose argument errors fail its Deferred instead of raising: callers
    handle every outcome of a storage call in one place, the errback."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception:
            return defer.fail()

    return wrapper
