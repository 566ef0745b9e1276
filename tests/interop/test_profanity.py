"""Debian's profanity (libstrophe) as a real user drives it, in tmux, against an xmppd started
here: it connects over STARTTLS, accepts the test certificate at its trust prompt, chats with
bob (today's slixmpp, who answers every message) and pings the server.

profanity runs with HOME and the XDG folders in the test's own directory, and tmux on a socket
of its own with no config file, so neither touches the user's profile or tmux sessions. Every
wait polls the screen until the expected text appears or a deadline passes: waiting for output,
not for time.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal

import pytest

from tests.integration.serverproc import XmppdProcess

PASSWORD = "correct horse battery staple"
DEADLINE = 20.0  # seconds for one expected line to appear on the screen

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("profanity") is None,
    reason="needs tmux and profanity (Debian's packages; .ci/run installs them)",
)


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path / "xmppd")
    for user in ("alice", "bob"):
        result = proc.ctl("adduser", f"{user}@localhost", PASSWORD)
        assert result.returncode == 0, result.stderr
    proc.start()
    yield proc
    assert proc.stop(signal.SIGTERM) == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


class Tmux:
    """One profanity in a tmux server of its own (``-S`` socket, ``-f /dev/null``)."""

    def __init__(self, directory) -> None:
        self.socket = str(directory / "tmux.sock")
        self.home = directory / "home"
        self.home.mkdir()

    async def run(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-S", self.socket, "-f", "/dev/null", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, (args, err.decode())
        return out.decode(errors="replace")

    async def start(self) -> None:
        home = str(self.home)
        env = {"HOME": home, "XDG_CONFIG_HOME": f"{home}/.config",
               "XDG_DATA_HOME": f"{home}/.local/share", "XDG_CACHE_HOME": f"{home}/.cache"}
        command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        await self.run("new-session", "-d", "-s", "p", "-x", "200", "-y", "50",
                       f"{command} profanity")

    async def type(self, line: str) -> None:
        await self.run("send-keys", "-t", "p", "-l", line)
        await self.run("send-keys", "-t", "p", "Enter")

    async def screen(self) -> str:
        return await self.run("capture-pane", "-p", "-J", "-t", "p")

    async def wait_for(self, *patterns: str) -> str:
        """The screen once one of the regular expressions matches it; fails at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            screen = await self.screen()
            # profanity wraps a long line itself, going on indented below: join those
            unwrapped = re.sub(r" *\n {2,}", " ", screen)
            if any(re.search(pattern, text) for pattern in patterns
                   for text in (screen, unwrapped)):
                return screen
            if loop.time() > deadline:
                pytest.fail(f"none of {patterns} on profanity's screen:\n{screen}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.run("kill-server")


async def echo_bob(server):
    """bob, with today's slixmpp: available, and answering every message with 'echo: '."""
    import ssl

    from slixmpp import ClientXMPP

    bob = ClientXMPP("bob@localhost/echo", PASSWORD)
    bob.enable_plaintext = False
    bob.ssl_context = ssl.create_default_context(cafile=str(server.cert))
    started = asyncio.get_running_loop().create_future()
    bob.add_event_handler("session_start",
                          lambda _event: started.done() or started.set_result(None))

    def answer(message) -> None:
        if message["type"] in ("chat", "normal") and message["body"]:
            message.reply(f"echo: {message['body']}").send()

    bob.add_event_handler("message", answer)
    bob.connect("127.0.0.1", server.c2s_port)
    await asyncio.wait_for(started, DEADLINE)
    bob.send_presence()
    await bob.get_roster(timeout=DEADLINE)  # answered after the presence: bob is available
    return bob


def test_profanity_logs_in_chats_and_pings(server, tmp_path):
    async def scenario() -> str:
        bob = await echo_bob(server)
        tmux = Tmux(tmp_path)
        await tmux.start()
        try:
            await tmux.wait_for(r"Type '/help'")
            await tmux.type(f"/connect alice@localhost server 127.0.0.1 "
                            f"port {server.c2s_port} tls force")
            await tmux.wait_for(r"Enter password:")
            await tmux.type(PASSWORD)
            screen = await tmux.wait_for(r"/tls allow", r"logged in successfully")
            if "logged in successfully" not in screen:
                await tmux.type("/tls allow")  # the test's self-signed certificate
            await tmux.wait_for(r"alice@localhost/\S+ logged in successfully")

            await tmux.type("/msg bob@localhost hello from profanity")
            screen = await tmux.wait_for(r"echo: hello from profanity")
            assert re.search(r"bob@localhost\S*: echo: hello from profanity", screen), screen
            await tmux.type("/close")  # back to the console

            # after a round trip: profanity knows the server's features (its disco#info at
            # login) only once they are answered, and says "not supported" until then
            await tmux.type("/ping")  # profanity pings the server with no 'to'
            screen = await tmux.wait_for(r"Ping response from server", r"[Pp]ing.*not support",
                                         r"Ping error")
            assert re.search(r"Ping response from server: \d+ms", screen), screen
            return screen
        finally:
            await tmux.stop()
            bob.disconnect()
            await asyncio.wait_for(bob.disconnected, DEADLINE)

    console = asyncio.run(scenario())
    assert "not supported" not in console and "does not support ping" not in console, console
    log = server.log()
    assert re.search(r"alice@localhost authenticated with SCRAM-SHA-\S+ from", log), log
    assert not [line for line in log.splitlines()
                if "SASL failure" in line and "alice@localhost" in line], log
    assert PASSWORD not in log
