"""Moving in from a real ejabberd 23.01: accounts made with ``ejabberdctl register``, a roster,
a pending subscription request, a vCard and a message to an offline user given through the
protocol by slixmpp, exported
with ``ejabberdctl export_piefxis`` (a <server-data/> file XIncluding one file per host),
imported with ``xmppdctl import``; then slixmpp logs in to xmppd with the OLD password.

Both of ejabberd's password formats: ``plain`` (23.01's default: the export carries the
password, which xmppd turns into SCRAM-SHA-1 and SCRAM-SHA-256 keys at once and never
stores) and ``scram`` (the export carries ``scram:...`` SHA-1 keys in the password
attribute; SCRAM-SHA-256 comes with the first PLAIN login, as for Prosody).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil

import pytest

from tests.integration.conftest import LoginFailed, login, logout
from tests.integration.serverproc import XmppdProcess
from tests.interop import ejabberd as ejabberd_harness
from tests.interop.ejabberd import PASSWORD, USER, EjabberdProcess
from tests.interop.moving_in import check_data, give_data, login_as_clients_do

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not ejabberd_harness.available(),
                                 reason=ejabberd_harness.SKIP_REASON)]

DOMAIN = "move.example"  # served by ejabberd, then by xmppd
BOB_PASSWORD = "bob's own password"
WHILE_AWAY = "Curiouser and curiouser"


def export_piefxis(server: EjabberdProcess, destination) -> None:
    """ejabberd's own export into ``destination`` (its files are copied out of the
    directory the ejabberd user may write)."""
    out = server.work / "export"
    out.mkdir()
    account = pwd.getpwnam(USER)
    os.chown(out, account.pw_uid, account.pw_gid)
    result = server.ctl("export_piefxis", str(out), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + server.log()[-3000:]
    shutil.copytree(out, destination)


@pytest.mark.parametrize("password_format", ["plain", "scram"])
def test_accounts_rosters_and_vcards_move_in_from_ejabberd(tmp_path, password_format):
    server = EjabberdProcess(tmp_path / "ejabberd", DOMAIN,
                             modules=["mod_vcard", "mod_private", "mod_offline"])
    with open(server.work / "ejabberd.yml", "a") as config:
        config.write(f"auth_password_format: {password_format}\n")
    try:
        server.start()
        server.register("alice", PASSWORD)
        server.register("bob", BOB_PASSWORD)

        async def on_ejabberd() -> None:
            alice = await ejabberd_harness.login(server, "alice")
            alice.register_plugin("xep_0054")
            await give_data(alice, f"bob@{DOMAIN}")
            alice.send_message(mto=f"bob@{DOMAIN}", mbody=WHILE_AWAY, mtype="chat")
            await asyncio.sleep(0.5)  # in bob's offline storage
            await logout(alice)

        asyncio.run(on_ejabberd())
        export_piefxis(server, tmp_path / "export")
        assert server.stop() == 0, server.log()
    finally:
        server.stop()
        server.cleanup()

    texts = "".join(path.read_text() for path in (tmp_path / "export").iterdir())
    assert "xi:include" in texts or "XInclude" in texts  # the shape ejabberd writes
    assert (PASSWORD in texts) == (password_format == "plain")

    xmppd = XmppdProcess(tmp_path / "xmppd", domain=DOMAIN)
    imported = xmppd.ctl("import", str(tmp_path / "export"))
    assert imported.returncode == 0, imported.stderr
    assert f"imported alice@{DOMAIN}: 1 contacts, 0 requests, a vCard" in imported.stdout
    assert (f"imported bob@{DOMAIN}: 0 contacts, 1 requests, no vCard, 0 private XML, "
            "1 offline") in imported.stdout
    assert imported.stdout.endswith("imported 2 accounts, skipped 0\n"), imported.stdout
    assert ("SCRAM-SHA-1 keys only" in imported.stdout) == (password_format == "scram")
    assert PASSWORD not in imported.stdout + imported.stderr

    xmppd.start()
    try:
        async def on_xmppd() -> None:
            if password_format == "scram":
                with pytest.raises(LoginFailed):  # SHA-1 keys only, until a PLAIN login
                    await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD,
                                mechanism="SCRAM-SHA-256")
                # slixmpp left to choose tries SCRAM-SHA-256 first, then the next one
                anyhow, failed = await login_as_clients_do(xmppd, f"alice@{DOMAIN}/desk",
                                                           PASSWORD)
                assert failed == ["SCRAM-SHA-256"]
                await logout(anyhow)
                alice = await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD,
                                    mechanism="SCRAM-SHA-1")
            else:
                alice = await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD)  # SCRAM-SHA-256
            await check_data(alice, f"bob@{DOMAIN}")
            await logout(alice)

            bob = await login(xmppd, f"bob@{DOMAIN}/phone", BOB_PASSWORD,
                              mechanism="SCRAM-SHA-1")
            requests, bodies = [], []
            bob.add_event_handler("presence_subscribe",
                                  lambda presence: requests.append(str(presence["from"])))
            bob.add_event_handler("message", lambda message: bodies.append(str(message["body"])))
            bob.send_presence()
            for _ in range(50):
                if requests and bodies:
                    break
                await asyncio.sleep(0.1)
            assert requests == [f"alice@{DOMAIN}"]
            assert bodies == [WHILE_AWAY]  # kept offline on ejabberd, delivered by xmppd
            await logout(bob)

        asyncio.run(on_xmppd())
    finally:
        assert xmppd.stop() == 0, xmppd.log()
    assert PASSWORD not in xmppd.log() and BOB_PASSWORD not in xmppd.log()
    database = (tmp_path / "xmppd" / "data" / "xmppd.sqlite").read_bytes()
    assert PASSWORD.encode() not in database
