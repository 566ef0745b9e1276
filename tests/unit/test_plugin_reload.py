"""Stopping a plugin on a running server leaves nothing of it behind, and starting it again
makes it work as before (issue #11: the plugin context is the only door, and every
registration is undone).

What a plugin can have registered, all read here: dispatcher links and IQ answerers, disco
identities, features and providers, event listeners, stream features, services, session
hooks, admin commands and providers of interfaces. Handlers are compared by how many there
are per key, since a plugin started again registers new bound methods."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.helpers import ServerFixture, StreamHarness

PASSWORD = "a long passphrase"
PLUGINS = ("disco", "ping", "version", "roster", "presence", "offline", "server_trust",
           "incident")
STOP_ORDER = ("incident", "server_trust", "presence", "roster", "offline", "disco", "ping",
              "version")  # dependents first


def shape(server) -> dict:
    """Everything plugins registered, as counts and names that do not depend on which
    object registered them."""
    hooks = server.c2s_hooks

    def counts(table: dict) -> dict:
        return {key: len(list(handlers)) for key, handlers in table.items() if list(handlers)}

    return {
        "dispatch": counts(server.dispatcher._table),
        "host disco": (sorted(server.features.features()), _identities(server.features),
                       len(list(server.features._info)), len(list(server.features._items))),
        "account disco": (sorted(server.account_features.features()),
                          _identities(server.account_features)),
        "events": counts(server.events._listeners),
        "stream features": len(list(server.stream_features)),
        "services": sorted(server.router.served),
        "session hooks": (len(list(hooks._filter_hooks)), len(list(hooks._keepers)),
                          sorted(hooks._claims)),
        "admin commands": [row["command"] for row in server.admin_commands.rows()],
        "providers": sorted(interface.__name__ for interface in server._providers),
    }


def _identities(entity) -> list:
    return sorted(map(repr, entity.identities()))


class ReloadTests(TestCase):
    def setUp(self):
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        enabled = ", ".join(f'"{name}"' for name in PLUGINS)
        self.fixture = ServerFixture(directory, c2s=f"require_encryption = false\n"
                                                    f"[plugins]\nenabled = [{enabled}]\n")
        self.server = self.fixture.server
        self.registry = self.fixture.registry
        self.registry.admin_commands(self.server.admin_commands)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.fixture.start()
        await self.fixture.add_user("alice", PASSWORD)

    def bare_server_shape(self) -> dict:
        """A server of the same config on which only the core plugins ever loaded."""
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        bare = ServerFixture(directory, c2s="require_encryption = false\n"
                                            "[plugins]\nenabled = []\n")
        bare.registry.admin_commands(bare.server.admin_commands)
        d = defer.ensureDeferred(bare.start())
        self.addCleanup(lambda: defer.ensureDeferred(bare.stop()))
        return d.addCallback(lambda _: shape(bare.server))

    async def works(self) -> None:
        """Ping, roster, disco, offline storage and a trust command answer as they should."""
        client = StreamHarness(self.server)
        await client.login("alice", PASSWORD)
        client.feed("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
                    "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>"
                    "<iq type='get' id='d' to='localhost'>"
                    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        answers = await self.answers(client, "prd")
        self.assertEqual({key: answers[key]["type"] for key in "prd"},
                         {"p": "result", "r": "result", "d": "result"})
        features = {child["var"] for child in next(answers["d"].elements()).elements()
                    if child.name == "feature"}
        self.assertTrue({"urn:xmpp:ping", "msgoffline", "urn:xmpp:server-presence"} <= features,
                        features)
        self.assertEqual(await self.server.admin_commands.call(["trust", "list"]), [])

    async def answers(self, client: StreamHarness, ids: str) -> dict:
        """The answers to the IQs of ``ids``, by id, as the storage thread gives them."""
        answers: dict = {}
        for _ in range(500):
            answers.update((element["id"], element) for element in client.elements())
            if set(ids) <= set(answers):
                return answers
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail(f"no answer to {set(ids) - set(answers)}")

    async def test_stopped_plugins_leave_nothing_and_start_again(self):
        loaded = shape(self.server)
        await self.works()
        for name in STOP_ORDER:
            self.registry.stop(name)
        self.assertEqual(list(self.registry.loaded), ["message"])
        self.assertEqual(shape(self.server), await self.bare_server_shape())
        for name in reversed(STOP_ORDER):
            await self.registry.start(name)
        self.assertEqual(list(self.registry.loaded), ["message", *PLUGINS])  # load order
        self.assertEqual(shape(self.server), loaded)
        await self.works()

    async def test_reload_from_the_admin_command_keeps_what_depends_on_it(self):
        loaded = shape(self.server)
        for name in PLUGINS:
            await self.server.admin_commands.call(["plugins", "reload", name])
        self.assertEqual(shape(self.server), loaded)
        await self.works()
        rows = await self.server.admin_commands.call(["plugins", "list"])
        self.assertEqual([(row["plugin"], row["loaded"]) for row in rows],
                         [(name, True) for name in ("message", *PLUGINS)])

    async def test_what_cannot_be_done_is_said(self):
        call = self.server.admin_commands.call
        failure = await self.assertFailure(call(["plugins", "stop", "roster"]), ValueError)
        self.assertIn("'roster' is required by presence", str(failure))
        failure = await self.assertFailure(call(["plugins", "start", "ping"]), ValueError)
        self.assertIn("'ping' is already loaded", str(failure))
        failure = await self.assertFailure(call(["plugins", "reload", "nosuch"]), ValueError)
        self.assertIn("'nosuch' is not loaded", str(failure))
        await call(["plugins", "stop", "incident"])
        with self.assertRaisesRegex(ValueError, "'incident list' is a command of the incident "
                                                "plugin, which is not loaded"):
            call(["incident", "list"])  # a plugin that is not loaded has no commands

    async def test_the_manholes_admin_has_the_loaded_plugins_commands(self):
        from xmppd.admin.api import AdminAPI
        from xmppd.admin.commands import AdminShell

        admin = AdminShell(AdminAPI(self.fixture.storage, self.server.domains, self.server),
                           self.server.admin_commands)
        self.assertIn("trust_request", dir(admin))
        self.assertEqual(await admin.trust_list(), [])
        self.assertEqual(admin.list_sessions(), [])  # the core API, as before
        await admin.plugins_reload("server_trust")
        self.assertEqual(await admin.trust_pending(), [])
        await admin.plugins_stop("incident")
        await admin.plugins_stop("server_trust")
        self.assertNotIn("trust_request", dir(admin))
        self.assertFalse(hasattr(admin, "trust_request"))
