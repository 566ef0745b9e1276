"""Debian's profanity (libstrophe) in tmux as the server's admin: XEP-0050 ad-hoc commands
with XEP-0133's set, run from profanity's ``/cmd`` and its form window against a real
``twistd xmppd`` whose ``[server] admins`` names alice. She lists the commands, reads the
number of registered users (a result form: profanity printed no value while the field had
no type), opens the list form (whose options profanity printed as '(null)' while they had no
label), and adds carol with the add-user form; carol then logs in with slixmpp. bob, no
admin, is offered none of them.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from tests.integration.conftest import login as slixmpp_login
from tests.interop.test_profanity import DEADLINE, PASSWORD, Tmux
from tests.interop.test_profanity_muc import login, start_server, stop_server

ADMIN = "http://jabber.org/protocol/admin#"
CAROL_PASSWORD = "carols-own-pass"

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("profanity") is None,
    reason="needs tmux and profanity (Debian's packages; .ci/run installs them)",
)


@pytest.fixture
def server(tmp_path):
    proc = start_server(tmp_path, 'admins = ["alice@localhost"]\n')
    yield proc
    stop_server(proc)
    assert CAROL_PASSWORD not in proc.log()


async def command_list(tmux: Tmux) -> str:
    """``/cmd list`` once profanity knows the server's features (its disco#info comes after
    the login line: until then it says the server has no ad-hoc commands)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        await tmux.type("/cmd list")
        screen = await tmux.wait_for(r"Ad hoc commands:", r"does not support ad hoc",
                                     r"[Nn]o commands")
        if "Ad hoc commands:" in screen or loop.time() > deadline:
            return screen
        await tmux.type("/clear")
        await asyncio.sleep(0.5)


def test_profanity_runs_admin_commands(server, tmp_path):
    async def scenario() -> None:
        tmux = Tmux(tmp_path)
        await tmux.start()
        try:
            await login(tmux, server)
            screen = await command_list(tmux)
            for name in ("add-user", "get-registered-users-num", "get-online-users-list",
                         "announce"):
                assert f"{ADMIN}{name}" in screen, screen

            await tmux.type(f"/cmd exec {ADMIN}get-registered-users-num")
            await tmux.wait_for(r"The number of registered users: 2\b")
            await tmux.type("/form cancel")

            await tmux.type(f"/cmd exec {ADMIN}get-online-users-list")
            screen = await tmux.wait_for(r"Maximum number of items to show")
            assert "(null)" not in screen and re.search(r"\[none\] None", screen), screen
            await tmux.type("/form submit")
            await tmux.wait_for(r"The list of all online users:\s*\n\S+ - +alice@localhost")
            await tmux.type("/form cancel")

            await tmux.type(f"/cmd exec {ADMIN}add-user")
            await tmux.wait_for(r"\[field3\] Retype password")
            for field, value in (("field1", "carol@localhost"), ("field2", CAROL_PASSWORD),
                                 ("field3", CAROL_PASSWORD)):
                await tmux.type(f"/{field} {value}")
                await tmux.wait_for(rf"Field updated\.\.\.\s*\n\S+ - \[{field}\]")
            await tmux.type("/form submit")
            await tmux.wait_for(r"carol@localhost was added")
        finally:
            print(await tmux.screen())  # shown by pytest when the test fails
            await tmux.stop()

        carol = await slixmpp_login(server, "carol@localhost/phone", CAROL_PASSWORD)
        carol.disconnect()
        await asyncio.wait_for(carol.disconnected, DEADLINE)

        bob = await slixmpp_login(server, "bob@localhost/desk", PASSWORD)
        bob.register_plugin("xep_0050")
        try:
            offered = await bob.plugin["xep_0050"].get_commands("localhost", timeout=DEADLINE)
            nodes = [node for _, node, _ in offered["disco_items"]["items"]]
            assert not [node for node in nodes if node.startswith(ADMIN)], nodes
        finally:
            bob.disconnect()
            await asyncio.wait_for(bob.disconnected, DEADLINE)

    asyncio.run(scenario())
