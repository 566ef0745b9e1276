"""A server with the server-trust plugins, real SQLite and a fake federation that records.

What the server sends to other domains lands in ``remote.sent``; stanzas from a peer domain
are injected as the s2s layer would hand them to the router, after authentication.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from tests.helpers import ServerFixture
from xmppd.admin.api import AdminAPI
from xmppd.admin.commands import AdminShell
from xmppd.interfaces import IRemoteRouter
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text

PEER = "peer.example"
LOCAL = "localhost"
ADMIN = "admin@localhost"
REMOTE_ADMIN = "boss@elsewhere.example"
PASSWORD = "pencil and paper"


@implementer(IRemoteRouter)
class RecordingRemote:
    """Federation as the router sees it, keeping what it was given instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[Stanza] = []

    def send(self, stanza: Stanza) -> None:
        self.sent.append(stanza)


class TrustFixture:
    """ServerFixture with ``plugins`` enabled, ``admins`` configured, federation recorded."""

    def __init__(self, directory: Path, plugins=("offline", "server_trust", "incident"),
                 sections: str = "", admins=(ADMIN, REMOTE_ADMIN)) -> None:
        enabled = ", ".join(f'"{name}"' for name in plugins)
        self.base = ServerFixture(directory, c2s=f"require_encryption = false\n"
                                                 f"[plugins]\nenabled = [{enabled}]\n{sections}")
        self.server = self.base.server
        config = self.server.config
        self.server.config = dataclasses.replace(config, server=dataclasses.replace(
            config.server, admins=tuple(parse_jid(admin) for admin in admins)))
        self.remote = RecordingRemote()
        self.server.router.remote = self.remote
        self.storage = self.base.storage
        # the manhole's admin: the core API and the loaded plugins' commands
        self.admin = AdminShell(AdminAPI(self.storage, self.server.domains, self.server),
                                self.server.admin_commands)

    async def start(self) -> None:
        await self.base.start()
        await self.base.add_user("admin", PASSWORD)

    async def stop(self) -> None:
        await self.base.stop()

    def inject(self, xml: str, sender: str = PEER, recipient: str = LOCAL):
        """A stanza from ``sender`` arriving over s2s; what the router returned."""
        element = _parse(xml)
        element["from"], element["to"] = sender, recipient
        return self.server.router.route(
            Stanza(element, parse_jid(sender), parse_jid(recipient)), object())

    async def receive(self, type: str, peer: str = PEER, recipient: str = LOCAL) -> None:
        """A server subscription presence from ``peer``, handled to the end."""
        result = self.inject(f"<presence type='{type}'/>", peer, recipient)
        if isinstance(result, defer.Deferred):
            await result

    def sent_to(self, domain: str = PEER) -> list[domish.Element]:
        """What went out to ``domain`` so far, oldest first."""
        return [s.element for s in self.remote.sent if s.recipient.host == domain]

    def presence_sent(self, domain: str = PEER) -> list[tuple[str, str, str]]:
        """(from, to, type) of each presence sent to ``domain``."""
        return [(e["from"], e["to"], e.getAttribute("type")) for e in self.sent_to(domain)
                if e.name == "presence"]

    async def admin_messages(self) -> list[str]:
        """The bodies of the notifications waiting offline for the local admin."""
        stored = await self.storage.offline.fetch("admin", LOCAL)
        bodies = []
        for _, text, _ in stored:
            element = stanza_from_text(text)
            bodies.append(str(next(c for c in element.elements() if c.name == "body")))
        return bodies

    async def make_buddy(self, peer: str = PEER) -> None:
        """Mutual subscription with ``peer``, the way two admins make it."""
        await self.admin.trust_request(peer)
        await self.receive("subscribed", peer)
        await self.receive("subscribe", peer)
        await self.admin.trust_approve(peer)


def _parse(xml: str) -> domish.Element:
    element = stanza_from_text(xml)
    assert element is not None, xml
    return element
