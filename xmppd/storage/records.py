# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The values the stores hand out and take in, the same for every engine.

They check their own fields, so a wrong value fails where it is made, with its name, rather
than deep inside a database driver or, worse, in the file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

SUBSCRIPTIONS = ("none", "to", "from", "both")  # RFC 6121 §2.1.2.5, the roster's own values


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One contact in an account's roster, as stored (RFC 6121 §2.1.2).

    ``pending_out`` is the item's ask='subscribe'; ``approved`` its pre-approval (§3.4).
    Pending inbound requests are not part of the item: the store keeps them apart (see
    IRosterStore.add_request), since RFC 6121 §3.1.3 keeps them out of the roster.
    """

    contact: str  # bare JID
    name: str | None = None
    groups: tuple[str, ...] = ()
    subscription: str = "none"
    pending_out: bool = False
    approved: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.contact, str) or not self.contact:
            raise ValueError(f"RosterItem.contact must be a bare JID string, not {self.contact!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"RosterItem.name must be a str or None, not {self.name!r}")
        # A str is iterable too: refusing anything but a tuple keeps "Friends" from becoming
        # seven one-letter groups.
        if not isinstance(self.groups, tuple) or not all(isinstance(g, str) for g in self.groups):
            raise TypeError(f"RosterItem.groups must be a tuple of str, not {self.groups!r}")
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(
                f"RosterItem.subscription must be one of {', '.join(SUBSCRIPTIONS)}, "
                f"not {self.subscription!r}"
            )
        for flag in ("pending_out", "approved"):
            if type(getattr(self, flag)) is not bool:
                raise TypeError(f"RosterItem.{flag} must be a bool, not {getattr(self, flag)!r}")


@dataclass(frozen=True, slots=True)
class RosterSnapshot:
    """An account's whole roster and the version that names exactly this state (XEP-0237).

    Version 0 is the empty roster of an account that never had an item.
    """

    version: int
    items: tuple[RosterItem, ...]


@dataclass(frozen=True, slots=True)
class ServerPeer:
    """One relationship in the server roster (XEP-0267): one of our domains and a peer domain.

    The RFC 6121 state as our side sees it: 'to' = we see the peer's server presence, 'from' =
    it sees ours. Unlike an account's roster, the pending inbound request is part of the row:
    there is no stanza worth keeping, only the fact. ``since`` is when it last changed (POSIX
    seconds), which is what an admin wants to see of a pending request.
    """

    local: str  # our domain
    peer: str  # the peer's domain
    subscription: str = "none"
    pending_out: bool = False
    pending_in: bool = False
    since: float = 0.0

    def __post_init__(self) -> None:
        for name in ("local", "peer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"ServerPeer.{name} must be a domain, not {getattr(self, name)!r}")
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(
                f"ServerPeer.subscription must be one of {', '.join(SUBSCRIPTIONS)}, "
                f"not {self.subscription!r}"
            )
        for flag in ("pending_out", "pending_in"):
            if type(getattr(self, flag)) is not bool:
                raise TypeError(f"ServerPeer.{flag} must be a bool, not {getattr(self, flag)!r}")
        # RFC 6121 A.1: nobody asks for a subscription they already have.
        if self.pending_out and self.subscription in ("to", "both"):
            raise ValueError(f"ServerPeer: pending_out is impossible with {self.subscription!r}")
        if self.pending_in and self.subscription in ("from", "both"):
            raise ValueError(f"ServerPeer: pending_in is impossible with {self.subscription!r}")
        _check_stamp("ServerPeer.since", self.since)


INCIDENT_DIRECTIONS = ("received", "sent")


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident report (XEP-0268) a trusted peer sent us, or one we sent a trusted peer.

    ``report`` is the serialized <report/> element as it went over the wire; ``incident_id``
    and ``description`` are read out of it once, for listings. ``id`` is None until stored.
    """

    direction: str  # "received" or "sent"
    local: str  # our domain
    peer: str  # the peer's domain
    incident_id: str
    description: str
    report: str
    stamp: float
    id: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in INCIDENT_DIRECTIONS:
            raise ValueError(
                f"IncidentRecord.direction must be one of {', '.join(INCIDENT_DIRECTIONS)}, "
                f"not {self.direction!r}"
            )
        for name in ("local", "peer", "incident_id", "description", "report"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"IncidentRecord.{name} must be a str, not {getattr(self, name)!r}")
        _check_stamp("IncidentRecord.stamp", self.stamp)
        if self.id is not None and (type(self.id) is not int):
            raise TypeError(f"IncidentRecord.id must be an int or None, not {self.id!r}")


def _check_stamp(name: str, value) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be POSIX seconds, not {value!r}")


ENTRY_ID_BYTES = 12  # 96 random bits: unique without coordination, and not guessable


def new_entry_id() -> str:
    """A fresh archive entry id (16 URL-safe characters). XEP-0359 wants stanza-ids unique and
    unpredictable; the MAM plugin takes one before it delivers the message it stamps, long
    before the batch that archives it is written."""
    return secrets.token_urlsafe(ENTRY_ID_BYTES)


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One entry of an archive store: a message of a MAM archive, an item of a pubsub node.

    ``with_jid`` is the bare JID it is with (MAM's 'with', pubsub's publisher); ``payload``
    the serialized XML. ``id`` is None until appended, when the store makes one.
    """

    stamp: float
    with_jid: str
    payload: str
    id: str | None = None

    def __post_init__(self) -> None:
        _check_stamp("ArchiveEntry.stamp", self.stamp)
        for name in ("with_jid", "payload"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"ArchiveEntry.{name} must be a str, not {getattr(self, name)!r}")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError(f"ArchiveEntry.id must be a non-empty str or None, not {self.id!r}")


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """What to fetch from one owner's archive: XEP-0313's form fields and XEP-0059's paging.

    The result set is the entries matching every filter given: ``with_jid``; ``start`` and
    ``end`` (POSIX seconds, both inclusive); ``after_id`` and ``before_id`` (exclusive bounds
    in archive order); ``ids`` (only these). ``total`` counts it. A page of it is then at most
    ``limit`` entries (None: all; 0: none, only the count): the first ones after ``after``
    (RSM <after/>), or, paging backwards, the last ones before ``before`` (RSM <before>id
    </before>), or the last page (``last_page``, RSM's empty <before/>). Every id named must
    be in the archive, else ArchiveEntryNotFound.
    """

    with_jid: str | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] | None = None
    after: str | None = None
    before: str | None = None
    last_page: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("with_jid", "after_id", "before_id", "after", "before"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"ArchiveQuery.{name} must be a str or None, "
                                f"not {getattr(self, name)!r}")
        for name in ("start", "end"):
            if getattr(self, name) is not None:
                _check_stamp(f"ArchiveQuery.{name}", getattr(self, name))
        # A str is iterable too: a tuple only, so "abc" never becomes three ids.
        if self.ids is not None and (
            not isinstance(self.ids, tuple) or not all(isinstance(i, str) for i in self.ids)
        ):
            raise TypeError(f"ArchiveQuery.ids must be a tuple of str or None, not {self.ids!r}")
        if type(self.last_page) is not bool:
            raise TypeError(f"ArchiveQuery.last_page must be a bool, not {self.last_page!r}")
        if self.limit is not None and (type(self.limit) is not int or self.limit < 0):
            raise ValueError(f"ArchiveQuery.limit must be a count or None, not {self.limit!r}")

    @property
    def backwards(self) -> bool:
        """True when the page is taken from the end of the result set (RSM <before/>)."""
        return self.before is not None or self.last_page


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One page of a query's result set, in archive order (oldest first) whichever way it
    was paged. ``complete``: no entry of the result set lies beyond this page in the
    direction paged (XEP-0313's <fin complete='true'/>); ``total``: the size of the whole
    result set (RSM <count/>)."""

    entries: tuple[ArchiveEntry, ...]
    complete: bool
    total: int

    @property
    def first(self) -> str | None:
        """The id of the page's first entry (RSM <first/>), or None when it is empty."""
        return self.entries[0].id if self.entries else None

    @property
    def last(self) -> str | None:
        """The id of the page's last entry (RSM <last/>), or None when it is empty."""
        return self.entries[-1].id if self.entries else None
