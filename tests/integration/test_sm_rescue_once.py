"""XEP-0198 sessions that end without resumption hand their unacknowledged messages to offline
storage (xmppd.sm.rescue) once per message, not once per session that held it: a message
to the bare JID that reached two resources, both of which then vanish, must come back from
offline storage once; with the message archive on, it is archived once per account."""

from __future__ import annotations

from tests.integration.conftest import PASSWORD, stop_cleanly
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_mam_durability import archived
from tests.integration.test_session_hibernation import bound, drop, wait_for_log
from tests.integration.test_stream_management import bodies, enable, online, send_messages

PLUGINS = '"disco", "ping", "roster", "presence", "offline", "smacks", "mam"'


def test_a_message_two_vanished_resources_held_comes_back_once(tmp_path):
    proc = XmppdProcess(tmp_path, extra=f"[plugins]\nenabled = [{PLUGINS}]\n"
                                         "[plugins.smacks]\nresumption_timeout = 1\n")
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    try:
        laptop = online(proc, "alice", "laptop")
        enable(laptop)
        phone = online(proc, "alice", "phone")
        enable(phone)
        bob = online(proc, "bob", "desk")
        send_messages(bob, ["d1", "d2"], to="alice@localhost")
        for client in (laptop, phone):
            client.read_until(b"<body>d2</body>")
            drop(client)
        for resource in ("laptop", "phone"):
            wait_for_log(proc, f"session alice@localhost/{resource} ended after")

        again = bound(proc, "alice", "tablet")
        again.send("<presence/>")
        offline = again.read_until(b"<body>d2</body>")
        again.send("<iq type='get' id='later' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        offline = again.read_until(b"id='later'")
        assert bodies(offline) == ["d1", "d2"], offline
        assert archived(again, "alice") == ["d1", "d2"]
        again.send("</stream:stream>")
        again.read_until_closed()
        bob.close()
    finally:
        stop_cleanly(proc)
