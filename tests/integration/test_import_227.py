"""What ``xmppdctl import`` writes is what the plugins serve: a XEP-0227 file as Prosody writes
it (SCRAM-SHA-1 keys only, roster, request, vCard, private XML, PEP bookmarks, a MAM archive,
an offline message) imported into a stopped server; then a slixmpp client of the running
server logs in with the old password and gets each of them over the protocol, the archive
with the old server's ids."""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream import ET

from tests.integration.conftest import login, logout
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox
from tests.unit.test_xep0227 import DOMAIN, PASSWORD, PROSODY_FILE
from xmppd.config import DEFAULT_PLUGINS

PLUGINS = "[plugins]\nenabled = [" + ", ".join(f'"{p}"' for p in (*DEFAULT_PLUGINS, "mam")) + "]\n"


def test_imported_data_is_served_by_the_plugins(tmp_path):
    export = tmp_path / "juliet.xml"
    export.write_text(PROSODY_FILE)
    server = XmppdProcess(tmp_path / "xmppd", domain=DOMAIN, extra=PLUGINS)
    imported = server.ctl("import", str(export))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.endswith("imported 1 account, skipped 0\n"), imported.stdout
    server.start()
    try:
        asyncio.run(as_juliet(server))
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log()


async def as_juliet(server: XmppdProcess) -> None:
    juliet = await login(server, f"juliet@{DOMAIN}/balcony", PASSWORD, mechanism="SCRAM-SHA-1")
    for plugin in ("xep_0313", "xep_0060", "xep_0054"):
        juliet.register_plugin(plugin)
    inbox = Inbox(juliet, "message")
    requests = Inbox(juliet, "presence_subscribe")
    juliet.auto_authorize = None  # leave the request unanswered
    juliet.send_presence()  # the offline message and the pending request come
    offline = await inbox.wait_for(lambda message: message["body"], 10)
    assert str(offline["body"]) == "Neither, fair saint"
    assert offline["delay"]["stamp"].year == 1999
    request = await requests.wait_for(lambda presence: True, 10)
    assert str(request["from"]) == "tybalt@capulet.lit"

    archived = [(str(m["mam_result"]["id"]), str(m["mam_result"]["forwarded"]["stanza"]["body"]))
                async for m in juliet.plugin["xep_0313"].iterate(rsm={"max": 10})]
    assert archived == [("28482-98726-73623", "Call me but love"),
                        ("5d398-28273-f7382", "What man art thou")]

    roster = (await juliet.get_roster(timeout=10))["roster"]["items"]
    assert sorted(str(jid) for jid in roster) == [f"nurse@{DOMAIN}", "romeo@montague.net"]
    vcard = await juliet.plugin["xep_0054"].get_vcard(f"juliet@{DOMAIN}", local=False,
                                                     timeout=10)
    assert str(vcard["vcard_temp"]["FN"]) == "Juliet Capulet"

    ask = juliet.make_iq_get(queryxmlns="jabber:iq:private")
    ask["query"] = "jabber:iq:private"
    ask.xml.find("{jabber:iq:private}query").append(ET.Element("{storage:bookmarks}storage"))
    answer = await ask.send(timeout=10)
    conference = answer.xml.find("{jabber:iq:private}query/{storage:bookmarks}storage/"
                                 "{storage:bookmarks}conference")
    assert conference is not None and conference.get("jid") == f"room@conference.{DOMAIN}"

    items = await juliet.plugin["xep_0060"].get_items(f"juliet@{DOMAIN}", "urn:xmpp:bookmarks:1",
                                                      timeout=10)
    assert [item["id"] for item in items["pubsub"]["items"]] == [
        f"room@conference.{DOMAIN}", f"other@conference.{DOMAIN}"]
    await logout(juliet)
