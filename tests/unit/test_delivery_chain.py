"""The delivery chain from a plugin's side: drop-ins of a few lines archive a message before
it is delivered, copy it to the sender's other resources, or drop it from a blocked sender,
and none of them touches the router. Also: the stream's ordering covers asynchronous links
and IQ sets."""

from __future__ import annotations

import sys
import textwrap

from twisted.internet import defer

from tests.plugin_case import PluginServerCase

DROP_INS = {
    "archive_test_plugin.py": '''
        from twisted.internet import defer
        from zope.interface import implementer
        from xmppd.interfaces import IXmppdPlugin

        @implementer(IXmppdPlugin)
        class Archive:
            """Keeps every chat message; delivery waits for the (slow) write."""
            name, requires = "archive_test", ()

            def setup(self, ctx):
                self.kept, self.writes = [], []
                ctx.stanza("message", "chat", ("bare", "full"), self.keep)

            def keep(self, stanza, origin):
                self.kept.append(str(stanza.element.body))
                self.writes.append(defer.Deferred())
                return self.writes[-1]  # fires None: the message goes on

        archive = Archive()
    ''',
    "copy_test_plugin.py": '''
        from zope.interface import implementer
        from xmppd.interfaces import IXmppdPlugin

        @implementer(IXmppdPlugin)
        class Copy:
            """The sender's other resources see what it sent (as carbons would)."""
            name, requires = "copy_test", ()

            def setup(self, ctx):
                self.sessions = ctx.sessions
                ctx.stanza("message", "chat", "outgoing", self.copy)

            def copy(self, stanza, origin):
                for session in self.sessions.resources(stanza.sender.bare()):
                    if session is not origin:
                        session.send(stanza.element)

        copy = Copy()
    ''',
    "block_test_plugin.py": '''
        from zope.interface import implementer
        from xmppd.interfaces import IXmppdPlugin

        @implementer(IXmppdPlugin)
        class Block:
            """Messages from the configured JIDs are dropped before anything else sees them."""
            name, requires = "block_test", ()

            def setup(self, ctx):
                self.blocked = set(ctx.config["blocked"])
                for type in ("normal", "chat"):
                    ctx.stanza("message", type, ("bare", "full"), self.drop, priority=100)

            def drop(self, stanza, origin):
                return stanza.sender.userhost() in self.blocked

        block = Block()
    ''',
}


class ChainTestCase(PluginServerCase):
    drop_ins = {name: textwrap.dedent(text) for name, text in DROP_INS.items()}
    enabled = ("archive_test", "copy_test", "block_test")
    sections = {"block_test": {"blocked": ["mallory@localhost"]}}
    users = ("alice", "bob", "mallory")

    def plugin(self, name: str):
        return sys.modules[f"xmppd.plugins.{name}_test_plugin"].__dict__[name]


class DropInTests(ChainTestCase):
    async def test_archived_before_delivery_copied_to_other_resources_blocked_dropped(self):
        alice = await self.client("alice", "phone", available=True)
        bob = await self.client("bob", "laptop", available=True)
        bob_desk = await self.client("bob", "desk", available=True)
        mallory = await self.client("mallory", "x", available=True)
        archive = self.plugin("archive")

        bob.feed("<message type='chat' to='alice@localhost' id='m1'><body>hi</body></message>"
                 "<message type='chat' to='alice@localhost' id='m2'><body>2</body></message>")
        self.assertEqual(archive.kept, ["hi"])  # written first; nothing delivered yet
        self.assertEqual(alice.elements(), [])
        self.assertEqual([m["id"] for m in bob_desk.elements()], ["m1"])  # the copy: at once
        self.assertEqual(bob.transport.producerState, "paused")  # m2 waits behind m1's write

        archive.writes[0].callback(None)
        self.assertEqual([m["id"] for m in alice.elements()], ["m1"])
        self.assertEqual(archive.kept, ["hi", "2"])  # m2 only now
        archive.writes[1].callback(None)
        self.assertEqual([m["id"] for m in alice.elements()], ["m2"])
        self.assertEqual(bob.transport.producerState, "producing")

        mallory.feed("<message type='chat' to='alice@localhost'><body>spam</body></message>")
        self.assertEqual((alice.elements(), mallory.elements(), len(archive.kept)), ([], [], 2))


class OrderingTests(ChainTestCase):
    enabled = ()

    async def test_a_slow_iq_set_is_done_before_the_next_stanza_is_read(self):
        slow = defer.Deferred()
        seen = []
        self.server.dispatcher.add_iq("set", "urn:example:slow", "q", "self",
                                      lambda stanza, origin: slow)
        self.server.dispatcher.add_stanza("message", "chat", "outgoing",
                                          lambda stanza, origin: seen.append(stanza.id))
        alice = await self.client("alice", "phone", available=True)
        alice.feed("<iq type='set' id='slow'><q xmlns='urn:example:slow'/></iq>"
                   "<message type='chat' to='alice@localhost' id='after'><body>x</body></message>")
        self.assertEqual((seen, alice.elements()), ([], []))
        self.assertEqual(alice.transport.producerState, "paused")
        slow.callback(None)
        self.assertEqual(seen, ["after"])
        self.assertEqual([(e.name, e["id"]) for e in alice.elements()],
                         [("iq", "slow"), ("message", "after")])
