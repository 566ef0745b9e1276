"""Moving in from a real Prosody 0.12: accounts made with prosodyctl, a roster, a pending
subscription request, a vCard, a PEP nickname and a chat message (kept in Prosody's MAM
archive) given through the protocol by slixmpp, exported with
Prosody's own prosody-migrator (internal store in, ``xep0227`` store out), imported with
``xmppdctl import``; then slixmpp logs in to xmppd with the OLD password and finds it all
(the archive over MAM, the nickname over PEP).

Prosody keeps SCRAM-SHA-1 keys only: xmppd's SCRAM-SHA-1 takes them as they are; SCRAM-SHA-256
has no keys until the user logs in once with PLAIN (or changes the password), after which it
works too. A client that insists on SCRAM-SHA-256 is refused before that.

prosody-migrator's ``xep0227`` output goes to Prosody's data directory, which the migrator
takes from its built-in CFG_DATADIR (``/var/lib/prosody``) rather than from ``path``: the test
runs a copy of the script with that one line pointing to a temporary directory of its own.
The migrator drops to the ``prosody`` user, so the directory is made outside the test's
(root-only) tmp_path and handed to that user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import LoginFailed, login, logout
from tests.integration.serverproc import XmppdProcess
from tests.interop import prosody as prosody_harness
from tests.interop.moving_in import check_data, give_data
from tests.interop.prosody import PASSWORD, ProsodyProcess
from xmppd.config import DEFAULT_PLUGINS

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not prosody_harness.available(),
                                 reason=prosody_harness.SKIP_REASON)]

DOMAIN = "move.example"  # served by Prosody, then by xmppd
MIGRATOR = "/usr/bin/prosody-migrator"
BOB_PASSWORD = "bob's own password"
NICK = "Ally"
CHAT = "Meet me at the tea party"
NICK_NODE = "http://jabber.org/protocol/nick"
XMPPD_PLUGINS = ("[plugins]\nenabled = [" + ", ".join(f'"{p}"' for p in (*DEFAULT_PLUGINS, "mam"))
                 + "]\n")


def export_with_prosody_migrator(prosody: ProsodyProcess, destination: Path) -> list[Path]:
    """Prosody's data as XEP-0227 files (one per account) in ``destination``."""
    work = Path(tempfile.mkdtemp(prefix="xmppd-migrator-"))
    try:
        shutil.copytree(prosody.directory / "data", work / "data")
        (work / "out").mkdir()
        script = Path(MIGRATOR).read_text()
        script, replaced = re.subn(r"(?m)^CFG_DATADIR=.*$",
                                   f"CFG_DATADIR='{work / 'out'}';", script)
        assert replaced == 1, "prosody-migrator no longer sets CFG_DATADIR"
        (work / "migrator.lua").write_text(script)
        stores = '"accounts", "roster", "vcard", "private", "pep-pubsub", "archive-archive"'
        (work / "migrator.cfg.lua").write_text(
            f'input {{ hosts = {{ ["{DOMAIN}"] = {{ {stores} }} }}; type = "internal"; '
            f'path = "{work / "data"}"; }}\n'
            f'output {{ type = "xep0227"; path = "{work / "out"}"; }}\n')
        user = pwd.getpwnam("prosody")
        for root, dirs, files in os.walk(work):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, user.pw_uid, user.pw_gid)
        interpreter = Path(MIGRATOR).read_text().splitlines()[0].split()[-1]  # lua5.4
        result = subprocess.run([interpreter, str(work / "migrator.lua"), "--config",
                                 str(work / "migrator.cfg.lua"), "input", "output"],
                                capture_output=True, text=True, timeout=120, cwd=work)
        assert result.returncode == 0, result.stdout + result.stderr
        files = sorted((work / "out").glob("*.xml"))
        destination.mkdir(parents=True)
        for file in files:
            shutil.copy(file, destination / file.name)
        return sorted(destination.glob("*.xml"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_accounts_rosters_and_vcards_move_in_from_prosody(tmp_path):
    prosody = ProsodyProcess(tmp_path / "prosody", DOMAIN,
                             modules=["vcard", "private", "pep", "mam"])
    prosody.register("alice", PASSWORD)
    prosody.register("bob", BOB_PASSWORD)
    prosody.start()
    try:
        async def on_prosody() -> None:
            alice = await prosody_harness.login(prosody, "alice")
            alice.register_plugin("xep_0054")
            alice.register_plugin("xep_0172")
            await give_data(alice, f"bob@{DOMAIN}")
            await alice.plugin["xep_0172"].publish_nick(NICK, timeout=10)
            alice.send_message(mto=f"bob@{DOMAIN}", mbody=CHAT, mtype="chat")
            await asyncio.sleep(0.5)  # archived
            await logout(alice)

        asyncio.run(on_prosody())
    finally:
        assert prosody.stop() == 0, prosody.log()

    files = export_with_prosody_migrator(prosody, tmp_path / "export")
    assert [f.name for f in files] == [f"alice@{DOMAIN}.xml", f"bob@{DOMAIN}.xml"]
    exported = files[0].read_text()
    assert "SCRAM-SHA-1" in exported and PASSWORD not in exported  # keys, no password

    xmppd = XmppdProcess(tmp_path / "xmppd", domain=DOMAIN, extra=XMPPD_PLUGINS)
    imported = xmppd.ctl("import", str(tmp_path / "export"))
    assert imported.returncode == 0, imported.stderr
    assert (f"imported alice@{DOMAIN}: 1 contacts, 0 requests, a vCard, 0 private XML, "
            "0 offline, 1 PEP nodes, 1 archived") in imported.stdout
    assert f"imported bob@{DOMAIN}: 0 contacts, 1 requests" in imported.stdout
    assert imported.stdout.endswith("imported 2 accounts, skipped 0\n"), imported.stdout
    assert "SCRAM-SHA-1 keys only" in imported.stdout
    again = xmppd.ctl("import", str(tmp_path / "export"))  # nothing is overwritten
    assert again.returncode == 0 and again.stdout.endswith("imported 0 accounts, skipped 2\n")

    xmppd.start()
    try:
        async def on_xmppd() -> None:
            with pytest.raises(LoginFailed):  # no SHA-256 keys yet: Prosody kept SHA-1 only
                await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD, mechanism="SCRAM-SHA-256")
            alice = await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD,
                                mechanism="SCRAM-SHA-1")
            await check_data(alice, f"bob@{DOMAIN}")
            alice.register_plugin("xep_0313")
            alice.register_plugin("xep_0060")
            archived = [(str(m["mam_result"]["forwarded"]["stanza"]["to"].bare),
                         str(m["mam_result"]["forwarded"]["stanza"]["body"]))
                        async for m in alice.plugin["xep_0313"].iterate(rsm={"max": 10})]
            assert archived == [(f"bob@{DOMAIN}", CHAT)]
            nick = await alice.plugin["xep_0060"].get_items(f"alice@{DOMAIN}", NICK_NODE,
                                                            timeout=10)
            (item,) = nick["pubsub"]["items"]
            assert item.xml.findtext(f"{{{NICK_NODE}}}nick") == NICK
            await logout(alice)

            bob = await login(xmppd, f"bob@{DOMAIN}/phone", BOB_PASSWORD,
                              mechanism="SCRAM-SHA-1")
            requests = []
            bob.add_event_handler("presence_subscribe",
                                  lambda presence: requests.append(str(presence["from"])))
            bob.send_presence()
            for _ in range(50):
                if requests:
                    break
                await asyncio.sleep(0.1)
            assert requests == [f"alice@{DOMAIN}"]  # the request waited through the move
            await logout(bob)

            # One login with PLAIN derives the SCRAM-SHA-256 keys from the password.
            plain = await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD, mechanism="PLAIN")
            await logout(plain)
            modern = await login(xmppd, f"alice@{DOMAIN}/desk", PASSWORD,
                                 mechanism="SCRAM-SHA-256")
            await logout(modern)

        asyncio.run(on_xmppd())
    finally:
        assert xmppd.stop() == 0, xmppd.log()
    assert PASSWORD not in xmppd.log() and BOB_PASSWORD not in xmppd.log()
