"""What every server the bench runs keeps, whichever it is (xmppd, Prosody, ejabberd)."""

from __future__ import annotations

from pathlib import Path


class ServerUnderTest:
    """Where it runs, with which certificate, how many accounts and hub contacts, in which
    profile ("plain" or "modern"), and the problems seen (tracebacks, unclean exits) for the
    report."""

    name = ""

    def __init__(self, workdir: Path, certificate: tuple[Path, Path], users: int,
                 hub_contacts: int, profile: str = "plain") -> None:
        self.workdir = workdir
        self.certificate = certificate
        self.users = users
        self.hub_contacts = hub_contacts
        self.profile = profile
        self.problems: list[str] = []
