"""Debian's profanity (libstrophe) in tmux, as a real user, with today's group chat, HTTP
upload and carbons against a real ``twistd xmppd``: profanity trusts the test certificate
through its ``/tls certpath`` (a hashed CA directory the test makes, used by libstrophe for
the XMPP stream and by libcurl for the upload), creates a room with ``/join`` and accepts
its default configuration, chats with bob (slixmpp, an occupant) both ways, changes nick,
makes bob an admin with ``/affiliation``, sets the subject, names the room in the owner's
form (``/room config``: every option labelled, no '(null)'), sends a file with
``/sendfile`` (XEP-0363 over HTTPS; bob fetches the URL and gets the same bytes; a file over
the limit is refused with the XEP's error, whose text profanity shows). alice's
other resource (slixmpp) joins the room under her nick (one occupant, two sessions) and
speaks there, and profanity shows it; profanity sees what that resource says to bob, and
what bob says to it alone, copied by carbons.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl
import subprocess
import urllib.request

import pytest

from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_im import Inbox
from tests.integration.test_muc import body_is, connect, item_of, muc, status_codes
from tests.interop.test_profanity import DEADLINE, PASSWORD, Tmux
from xmppd.config import DEFAULT_PLUGINS
from xmppd.stream.selfsigned import make_self_signed

ROOM = "lounge@conference.localhost"
MAX_FILE_SIZE = 4096

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("profanity") is None,
    reason="needs tmux and profanity (Debian's packages; .ci/run installs them)",
)


def start_server(tmp_path, server_keys: str = "") -> XmppdProcess:
    """xmppd with the default plugins and upload, HTTPS on a port of its own, alice and bob;
    one certificate for localhost and its services, which profanity finds in a hashed
    directory (``proc.capath``). ``server_keys``: lines added to its [server] section."""
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = tls / "localhost.crt", tls / "localhost.key"
    make_self_signed(cert, key, ["localhost", "conference.localhost", "upload.localhost"])
    capath = tmp_path / "capath"
    capath.mkdir()
    shutil.copy(cert, capath / "localhost.pem")
    subprocess.run(["openssl", "rehash", str(capath)], check=True, capture_output=True)
    http_port = free_port()
    enabled = ", ".join(f'"{name}"' for name in (*DEFAULT_PLUGINS, "upload"))
    proc = XmppdProcess(tmp_path / "xmppd", certificate=(cert, key), extra=f"""
[http]
https = ["tcp:{http_port}:interface=127.0.0.1"]
external_url = "https://localhost:{http_port}"

[plugins]
enabled = [{enabled}]

[plugins.upload]
max_file_size = {MAX_FILE_SIZE}
""")
    proc.config.write_text(proc.config.read_text().replace("[server]\n",
                                                           f"[server]\n{server_keys}", 1))
    proc.capath, proc.http_port = capath, http_port
    for user in ("alice", "bob"):
        result = proc.ctl("adduser", f"{user}@localhost", PASSWORD)
        assert result.returncode == 0, result.stderr
    proc.start()
    return proc


def stop_server(proc: XmppdProcess) -> None:
    assert proc.stop(signal.SIGTERM) == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture
def server(tmp_path):
    proc = start_server(tmp_path)
    yield proc
    stop_server(proc)


async def login(tmux: Tmux, server: XmppdProcess) -> None:
    """profanity trusts the hashed CA directory, then logs in as alice without a prompt."""
    await tmux.wait_for(r"Type '/help'")
    await tmux.type(f"/tls certpath set {server.capath}")
    await tmux.wait_for(r"Certificate path set to")
    await tmux.type(f"/connect alice@localhost server 127.0.0.1 port {server.c2s_port} "
                    f"tls force")
    await tmux.wait_for(r"Enter password:")
    await tmux.type(PASSWORD)
    screen = await tmux.wait_for(r"/tls allow", r"logged in successfully")
    assert "/tls allow" not in screen, f"profanity did not trust the CA path:\n{screen}"


def https_get(server: XmppdProcess, url: str) -> bytes:
    context = ssl.create_default_context(cafile=str(server.cert))
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        return answer.read()


def test_profanity_in_a_room_with_upload_and_carbons(server, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"hello from profanity's /sendfile\n" * 20)

    async def scenario() -> None:
        tmux = Tmux(tmp_path)
        await tmux.start()
        bob = phone = None
        try:
            await login(tmux, server)
            await tmux.type(f"/join {ROOM} nick alice")
            await tmux.wait_for(r"/room accept")  # a new reserved room waits for its owner
            await tmux.type("/room accept")
            await tmux.wait_for(r"[Rr]oom unlocked")

            bob = await connect(server, "bob@localhost/desk")
            groupchat = Inbox(bob, "groupchat_message")
            presences = Inbox(bob, f"muc::{ROOM}::presence")
            await muc(bob).join_muc_wait(ROOM, "bob", maxstanzas=0, timeout=DEADLINE)
            await tmux.wait_for(r"Participants[^\n]*\n[^\n]*\bbob\b")  # its occupants list

            await tmux.type("hello room from profanity")
            said = await groupchat.wait_for(
                lambda m: m["body"] == "hello room from profanity", DEADLINE)
            assert said["from"].full == f"{ROOM}/alice"
            bob.send_message(mto=ROOM, mbody="hi from slixmpp", mtype="groupchat")
            await tmux.wait_for(r"bob: hi from slixmpp")

            await tmux.type("/nick alice2")
            changed = await presences.wait_for(
                lambda p: "303" in status_codes(p) and p["from"].resource == "alice", DEADLINE)
            assert item_of(changed).get("nick") == "alice2"
            await presences.wait_for(lambda p: p["from"].full == f"{ROOM}/alice2", DEADLINE)
            # profanity 0.13.1 prints no line for its own change (the 110/303 presences are
            # in its log); its occupants list shows the new nick
            await tmux.wait_for(r"Moderators[^\n]*\n[^\n]*\balice2\b")

            await tmux.type("/affiliation set admin bob@localhost")
            await presences.wait_for(lambda p: p["from"].full == f"{ROOM}/bob"
                                     and item_of(p).get("affiliation") == "admin", DEADLINE)
            subjects = Inbox(bob, "groupchat_subject")  # before: the subject may come at once
            await tmux.type("/subject set Today's topic")
            subject = await subjects.wait_for(
                lambda m: m["subject"] == "Today's topic", DEADLINE)
            assert subject["from"].full == f"{ROOM}/alice2"

            await tmux.type("/room config")  # the owner's form, in a window of its own
            screen = await tmux.wait_for(r"Use '/form submit'")
            assert "[field1] Natural-language room name" in screen, screen
            assert "(null)" not in screen, screen  # every option has a label
            await tmux.type("/field1 Lounge")
            await tmux.wait_for(r"Field updated")
            await tmux.type("/form submit")
            await tmux.wait_for(r"Room configuration successful")
            info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=DEADLINE)
            assert [name for _, _, _, name in info["disco_info"]["identities"]] == [
                "Lounge"]
            await tmux.type("/win 2")  # the room's window again

            await tmux.type(f"/sendfile {upload}")
            shared = await groupchat.wait_for(
                lambda m: (m["body"] or "").startswith("https://"), DEADLINE)
            url = shared["body"].strip()
            assert url.startswith(f"https://localhost:{server.http_port}/"), url
            assert await asyncio.to_thread(https_get, server, url) == upload.read_bytes()
            too_big = tmp_path / "too-big.bin"
            too_big.write_bytes(b"x" * (MAX_FILE_SIZE + 1))
            await tmux.type(f"/sendfile {too_big}")  # refused with the XEP's error, whose
            await tmux.type("/win 1")  # text profanity shows in its console
            await tmux.wait_for(r"Uploading '\S+too-big.bin' failed for upload.localhost: "
                                rf"the file is larger than the {MAX_FILE_SIZE}")
            await tmux.type("/win 2")

            # alice's phone joins under her nick: one occupant with two sessions
            phone = await connect(server, "alice@localhost/phone")
            seen = len(presences.items)
            await muc(phone).join_muc_wait(ROOM, "alice2", maxstanzas=0, timeout=DEADLINE)
            phone.send_message(mto=ROOM, mbody="said on the phone", mtype="groupchat")
            said = await groupchat.wait_for(body_is("said on the phone"), DEADLINE)
            assert said["from"].full == f"{ROOM}/alice2"
            await tmux.wait_for(r"alice2: said on the phone")
            assert [p for p in presences.items[seen:]
                    if p["from"].resource == "alice2" and p["type"] == "unavailable"] == []

            # carbons: what alice's phone says to bob shows on profanity in bob's chat
            phone.send_message(mto="bob@localhost", mbody="sent from the phone", mtype="chat")
            await tmux.type("/win 1")  # in a room window /msg names an occupant
            await tmux.type("/msg bob@localhost")
            await tmux.wait_for(r"me: sent from the phone")
            bob.send_message(mto="alice@localhost/phone", mbody="only to the phone",
                             mtype="chat")
            await tmux.wait_for(r"bob@localhost\S*: only to the phone")
        finally:
            print(await tmux.screen())  # shown by pytest when the test fails
            await tmux.stop()
            for client in (bob, phone):
                if client is not None:
                    client.disconnect()
                    await asyncio.wait_for(client.disconnected, DEADLINE)

    asyncio.run(scenario())
    log = server.log()
    assert PASSWORD not in log and "Bearer" not in log, log

