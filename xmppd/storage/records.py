# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""The values the roster store hands out and takes in, the same for every engine.

They check their own fields, so a wrong value fails where it is made, with its name, rather
than deep inside a database driver or, worse, in the file.
"""

from __future__ import annotations

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
