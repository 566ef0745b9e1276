"""A trial TestCase with a real server (tests.helpers.ServerFixture) that also loads drop-in
plugins from a directory, as an operator's ``plugin_dirs`` would, and forgets them after."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.helpers import ServerFixture, StreamHarness
from xmppd.registry import PluginRegistry

PASSWORD = "pencil and paper"


class PluginServerCase(TestCase):
    """``drop_ins`` (file name → source) are written to a plugin directory, ``enabled`` join
    the default plugins but ``without``, ``users`` are created; ``self.server`` is the
    running server."""

    drop_ins: Mapping[str, str] = {}
    enabled: tuple[str, ...] = ()
    without: tuple[str, ...] = ()  # default plugins a test of other mechanisms leaves out
    sections: Mapping[str, dict] = {}
    users: tuple[str, ...] = ("alice",)

    def setUp(self):
        directory = Path(self.mktemp())
        self.plugin_dir = directory / "plugins"
        self.plugin_dir.mkdir(parents=True)
        for name, text in self.drop_ins.items():
            (self.plugin_dir / name).write_text(text)
        self.fixture = ServerFixture(directory)
        self.server = self.fixture.server
        self.clock = self.fixture.clock
        self.fixture.registry = PluginRegistry(
            self.server, tuple(name for name in self.server.config.plugins.enabled
                               if name not in self.without) + self.enabled, self.sections,
            [self.plugin_dir])
        self.addCleanup(self._forget_drop_ins)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.fixture.start()
        for user in self.users:
            await self.fixture.add_user(user, PASSWORD)
        await self.started()

    async def started(self) -> None:
        """Hook: more set-up once the server runs."""

    def _forget_drop_ins(self) -> None:
        import xmppd.plugins

        for name in self.drop_ins:
            sys.modules.pop(f"xmppd.plugins.{Path(name).stem}", None)
        if str(self.plugin_dir) in xmppd.plugins.__path__:
            xmppd.plugins.__path__.remove(str(self.plugin_dir))

    async def client(self, user: str, resource: str, available: bool = False) -> StreamHarness:
        """A bound client; ``available`` sends initial presence and waits for its echo."""
        harness = StreamHarness(self.server)
        await harness.login(user, PASSWORD, resource)
        if available:
            harness.feed("<presence/>")
            await harness.wait_for_element("presence")
            await harness.settle()  # its echo can come before the presence's work is done
        return harness
