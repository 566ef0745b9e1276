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
