"""Operating a real server: clean shutdown, xmppdctl while running, bad configs, drop-in
plugins and the SSH manhole, each against a real twistd process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import textwrap

import pytest

from tests.integration.conftest import PASSWORD, LoginFailed, login, logout
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import BIN, XmppdProcess, free_port


def test_sigterm_ends_every_stream_politely_and_exits_zero(tmp_path):
    proc = XmppdProcess(tmp_path)
    proc.start()
    waiting = RawClient(proc.c2s_port)
    waiting.header()
    waiting.read_until(b"</stream:features>")
    proc.process.send_signal(signal.SIGTERM)
    data = waiting.read_until_closed(timeout=10)
    assert b"<system-shutdown" in data
    assert data.endswith(b"</stream:stream>")
    assert proc.process.wait(20) == 0
    assert "xmppd stopped" in proc.log()


def test_xmppdctl_works_while_the_server_runs(server):
    async def scenario():
        assert server.ctl("adduser", "carol@localhost", "first secret").returncode == 0
        carol = await login(server, "carol@localhost", "first secret")
        await logout(carol)
        assert server.ctl("passwd", "carol@localhost", "second secret").returncode == 0
        with pytest.raises(LoginFailed):
            await login(server, "carol@localhost", "first secret")
        carol = await login(server, "carol@localhost", "second secret")
        await logout(carol)
        assert server.ctl("deluser", "carol@localhost").returncode == 0
        with pytest.raises(LoginFailed):
            await login(server, "carol@localhost", "second secret")

    asyncio.run(scenario())
    listing = server.ctl("users").stdout.split()
    assert listing == ["alice@localhost", "bob@localhost"]
    assert "first secret" not in server.log() and "second secret" not in server.log()


def _twistd(config) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "twistd"), "--pidfile=", "-n", "xmppd", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def test_bad_config_stops_start_up_with_a_line_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\ndomains = ["localhost"]\n[c2s]\nrequire_encryption = "yes"\n')
    result = _twistd(config)
    assert result.returncode != 0
    assert "[c2s] require_encryption" in result.stdout + result.stderr


def test_unknown_plugin_stops_start_up(tmp_path):
    proc = XmppdProcess(tmp_path, extra='[plugins]\nenabled = ["ping", "no_such_plugin"]\n')
    result = _twistd(proc.config)
    assert result.returncode != 0
    assert "no_such_plugin" in result.stdout + result.stderr


ECHO_PLUGIN = textwrap.dedent('''
    from twisted.words.xish import domish
    from zope.interface import implementer
    from xmppd.interfaces import IXmppdPlugin

    @implementer(IXmppdPlugin)
    class Shout:
        name, requires = "shout", ()

        def setup(self, ctx):
            self.suffix = ctx.config["suffix"]
            ctx.feature("urn:example:shout")
            ctx.iq("get", "urn:example:shout", "shout", self.on_shout)

        def on_shout(self, stanza, origin):
            answer = domish.Element(("urn:example:shout", "shout"))
            answer.addContent(str(stanza.payload()).upper() + self.suffix)
            return answer

    shout = Shout()
''')


def test_drop_in_plugin_answers_a_real_client(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "shout_plugin.py").write_text(ECHO_PLUGIN)
    proc = XmppdProcess(tmp_path, extra=textwrap.dedent('''
        [plugins]
        enabled = ["disco", "ping", "shout"]
        [plugins.shout]
        suffix = "!"
    ''').replace("[plugins]", f'[plugins]\n# drop-ins from {plugins}', 1))
    text = proc.config.read_text().replace(
        "[server]\n", f'[server]\nplugin_dirs = ["{plugins}"]\n', 1)
    proc.config.write_text(text)
    assert proc.ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
    proc.start()

    async def scenario():
        from slixmpp.xmlstream import ET

        client = await login(proc, "alice@localhost")
        try:
            iq = client.make_iq_get(ito="localhost")
            shout = ET.Element("{urn:example:shout}shout")
            shout.text = "hello"
            iq.append(shout)
            reply = await iq.send(timeout=5)
            answer = reply.xml.find("{urn:example:shout}shout")
            assert answer.text == "HELLO!"
            info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
            assert "urn:example:shout" in info["disco_info"]["features"]
        finally:
            await logout(client)

    try:
        asyncio.run(scenario())
    finally:
        assert proc.stop() == 0


def test_manhole_lists_and_kicks_live_sessions(tmp_path):
    asyncssh = pytest.importorskip("asyncssh")
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "admin_keys").write_text(key.export_public_key().decode())
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=textwrap.dedent(f'''
        [manhole]
        listen = "tcp:{port}:interface=127.0.0.1"
        authorized_keys = "{tmp_path / 'admin_keys'}"
    '''))
    assert proc.ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
    proc.start()

    async def shell(*lines: str) -> str:
        async with asyncssh.connect("127.0.0.1", port, username="admin", client_keys=[key],
                                    known_hosts=None) as connection:
            process = await connection.create_process(term_type="dumb")
            for line in lines:
                process.stdin.write(line + "\n")
                await asyncio.sleep(0.5)
            process.stdin.write_eof()
            output = ""
            try:
                while True:
                    chunk = await asyncio.wait_for(process.stdout.read(65536), 2)
                    if not chunk:
                        break
                    output += chunk
            except TimeoutError:
                pass
            process.close()
            return output

    async def scenario():
        client = await login(proc, "alice@localhost/desk")
        gone = asyncio.get_running_loop().create_future()
        client.add_event_handler("disconnected", lambda *_: gone.done() or gone.set_result(1))
        listing = await shell("print(sorted(s['jid'] for s in admin.list_sessions()))")
        assert "['alice@localhost/desk']" in listing
        kicked = await shell("print('kicked', admin.kick('alice@localhost'))")
        assert "kicked 1" in kicked
        await asyncio.wait_for(gone, 10)

    try:
        asyncio.run(scenario())
    finally:
        assert proc.stop() == 0
    assert "Traceback" not in proc.log()
