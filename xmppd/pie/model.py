# -*- test-case-name: tests.unit.test_xep0227 -*-
"""One account as a XEP-0227 file carries it: plain values between the file and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.words.xish import domish

from xmppd.sasl.credentials import ScramCredentials
from xmppd.storage.records import RosterItem

PIE = "urn:xmpp:pie:0"
PIE_SCRAM = "urn:xmpp:pie:0#scram"
PIE_MAM = "urn:xmpp:pie:0#mam"
XINCLUDE = "http://www.w3.org/2001/XInclude"
# XEP-0227's mechanism names and our hash names (xmppd.sasl.credentials.HASHES).
MECHANISMS = {"SCRAM-SHA-1": "sha-1", "SCRAM-SHA-256": "sha-256"}
DIGEST_SIZES = {"sha-1": 20, "sha-256": 32}


class PieError(ValueError):
    """A file that cannot be read as XEP-0227 at all; the message names it."""


@dataclass
class PepNode:
    """One PEP node: its configuration form (as exported), affiliations and items."""

    name: str
    config: domish.Element | None = None  # <x xmlns='jabber:x:data'/>, or None
    affiliations: dict[str, str] = field(default_factory=dict)
    items: list[tuple[str, domish.Element | None]] = field(default_factory=list)


@dataclass
class ArchivedMessage:
    """One message of a MAM archive: its archive id (if any), when, and the message."""

    id: str | None
    stamp: float
    message: domish.Element


@dataclass
class Account:
    """Everything a XEP-0227 <user/> holds that we can keep. ``notes`` says what was not
    understood or not usable (the operator is told); a password never appears in it."""

    host: str
    name: str
    credentials: list[ScramCredentials] = field(default_factory=list)
    password: str | None = None
    roster: list[RosterItem] = field(default_factory=list)
    requests: list[domish.Element] = field(default_factory=list)  # presence type='subscribe'
    vcard: domish.Element | None = None
    private: list[domish.Element] = field(default_factory=list)
    offline: list[tuple[domish.Element, float | None]] = field(default_factory=list)
    pep: list[PepNode] = field(default_factory=list)
    archive: list[ArchivedMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def jid(self) -> str:
        return f"{self.name}@{self.host}"

    def __repr__(self) -> str:  # never the password or keys
        return f"<Account {self.jid}>"
