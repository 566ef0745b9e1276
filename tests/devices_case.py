"""A real server with real SQLite for the many-devices plugins (carbons, csi, blocking):
clients on StreamHarness, one IQ asked and its answer read, what each client got since."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.helpers import StreamHarness
from tests.plugin_case import PluginServerCase
from xmppd import ns
from xmppd.im.subscription import SubState
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid


def error_condition(stanza: domish.Element) -> str | None:
    """The stanza error condition of an error stanza, or None."""
    if stanza.getAttribute("type") != "error":
        return None
    for error in stanza.elements():
        if error.name == "error":
            return next(child.name for child in error.elements()
                        if child.uri == ns.STANZA_ERRORS)
    raise AssertionError(f"an error without <error/>: {stanza.toXml()}")


def error_children(stanza: domish.Element) -> list[tuple[str, str]]:
    """(namespace, name) of everything inside the stanza's <error/>."""
    (error,) = [child for child in stanza.elements() if child.name == "error"]
    return [(child.uri, child.name) for child in error.elements()]


def body(message: domish.Element) -> str | None:
    found = [str(child) for child in message.elements() if child.name == "body"]
    return found[0] if found else None


class DevicesCase(PluginServerCase):
    users = ("alice", "bob")

    async def online(self, user: str, resource: str, priority: int = 0) -> StreamHarness:
        """A bound, available client whose presence exchange is over (nothing unread)."""
        harness = StreamHarness(self.server)
        await harness.login(user, "pencil and paper", resource)
        harness.feed(f"<presence><priority>{priority}</priority></presence>")
        await self.settle(harness)
        self.clients.append(harness)
        self.drain()
        return harness

    async def settle(self, harness: StreamHarness) -> None:
        """Wait until the server handled all ``harness`` sent: a stream reads nothing while
        a stanza's work is pending, so the answer to a ping comes after it."""
        await self.ask(harness, "get", "<ping xmlns='urn:xmpp:ping'/>", id="settle")

    async def started(self) -> None:
        self.clients: list[StreamHarness] = []

    async def befriend(self, one: str, other: str) -> None:
        """A mutual presence subscription, written straight into the rosters."""
        roster = self.server.query(IRoster)
        for a, b in ((one, other), (other, one)):
            await roster.set_state(parse_jid(f"{a}@localhost"), parse_jid(f"{b}@localhost"),
                                   SubState("both"))

    def drain(self) -> None:
        for harness in self.clients:
            harness.elements()

    async def wait(self, harness: StreamHarness, predicate, timeout: float = 5.0) -> list:
        """Everything ``harness`` receives until an element satisfies ``predicate``
        (storage writes finish on a thread: the real reactor is polled)."""
        from twisted.internet import reactor, task

        got: list = []
        waited = 0.0
        while waited < timeout:
            got.extend(harness.elements())
            if any(predicate(element) for element in got):
                return got
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01
        raise AssertionError(f"nothing awaited within {timeout}s; got "
                             f"{[element.toXml() for element in got]}")

    async def ask(self, harness: StreamHarness, type: str, payload: str,
                  to: str | None = None, id: str = "q1") -> domish.Element:
        """Send one IQ and return the server's answer; whatever else came with it is in
        ``self.also``."""
        address = f" to='{to}'" if to else ""
        harness.feed(f"<iq type='{type}' id='{id}'{address}>{payload}</iq>")
        got = await self.wait(harness, lambda e: e.name == "iq" and e.getAttribute("id") == id
                              and e.getAttribute("type") in ("result", "error"))
        (answer,) = [e for e in got if e.name == "iq" and e.getAttribute("id") == id
                     and e.getAttribute("type") in ("result", "error")]
        self.also = [e for e in got if e is not answer]
        return answer
