"""XEP-0050 ad-hoc commands and XEP-0133 administration, driven by slixmpp's xep_0050 against
a real server: an admin adds an account (which then logs in with its password), changes a
password, lists who is online, sends an announcement and a message of the day, ends a
session and deletes an account; someone who is not an admin sees no command and runs none.
XEP-0157 contact addresses appear in the server's disco#info."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from tests.integration.conftest import LoginFailed, login, logout, serve
from tests.integration.serverproc import XmppdProcess

ADMIN = "http://jabber.org/protocol/admin#"


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, extra="""
[plugins]
enabled = ["disco", "ping", "roster", "presence", "adhoc", "contact_info", "account_status"]

[plugins.contact_info]
abuse = ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
security = "https://localhost/security.txt"
""")
    admins = '[server]\nadmins = ["root@localhost"]\n'
    proc.config.write_text(proc.config.read_text().replace("[server]\n", admins, 1))
    yield from serve(proc, users=("root", "alice", "bob"))


def _form(client, fields: dict, form_type: str = "http://jabber.org/protocol/admin"):
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


async def _run(client, node: str, fields: dict | None):
    """Execute, then complete with ``fields``; the completed <command/>."""
    adhoc = client.plugin["xep_0050"]
    started = await adhoc.send_command("localhost", ADMIN + node)
    command = started["command"]
    if fields is None:
        return command
    assert command["status"] == "executing"
    assert command["form"]["type"] == "form"
    done = await adhoc.send_command("localhost", ADMIN + node, action="complete",
                                    sessionid=command["sessionid"],
                                    payload=_form(client, fields))
    assert done["command"]["status"] == "completed"
    return done["command"]


def _admin_client(client):
    client.register_plugin("xep_0004")
    client.register_plugin("xep_0050")
    return client


def test_an_admin_runs_the_service_administration_commands(server):
    async def scenario():
        root = _admin_client(await login(server, "root@localhost/console"))
        items = await root.plugin["xep_0050"].get_commands("localhost")
        nodes = {item[1] for item in items["disco_items"]["items"]}
        assert {ADMIN + "add-user", ADMIN + "delete-user", ADMIN + "get-online-users-list",
                ADMIN + "announce", ADMIN + "set-motd"} <= nodes

        done = await _run(root, "add-user", {"accountjid": "carol@localhost",
                                             "password": "carol's secret words",
                                             "password-verify": "carol's secret words"})
        assert "carol@localhost" in done["notes"][0][1]
        carol = await login(server, "carol@localhost/pad", "carol's secret words")

        with pytest.raises(IqError) as caught:  # exists already
            await _run(root, "add-user", {"accountjid": "carol@localhost", "password": "x" * 12,
                                          "password-verify": "x" * 12})
        assert caught.value.condition == "conflict"

        carol.send_presence()
        alice = await login(server, "alice@localhost/laptop")
        alice.send_presence()
        await asyncio.sleep(0.3)
        online = await _run(root, "get-online-users-list", {"max_items": "none"})
        listed = set(online["form"]["values"]["onlineuserjids"])
        assert {"root@localhost", "carol@localhost", "alice@localhost"} == listed
        count = await _run(root, "get-online-users-num", None)
        assert count["form"]["values"]["onlineusersnum"] == "3"
        registered = await _run(root, "get-registered-users-num", None)
        assert registered["form"]["values"]["registeredusersnum"] == "4"

        heard = asyncio.get_running_loop().create_future()
        alice.add_event_handler("message", lambda msg: heard.done() or heard.set_result(msg))
        await _run(root, "announce", {"subject": "maintenance",
                                      "announcement": ["down at noon", "for ten minutes"]})
        announcement = await asyncio.wait_for(heard, 10)
        assert announcement["type"] == "headline" and announcement["from"] == "localhost"
        assert announcement["body"] == "down at noon\nfor ten minutes"

        await _run(root, "change-user-password", {"accountjid": "carol@localhost",
                                                  "password": "carol's new words"})
        gone = asyncio.get_running_loop().create_future()
        carol.add_event_handler("disconnected", lambda _: gone.done() or gone.set_result(1))
        await _run(root, "end-user-session", {"accountjids": ["carol@localhost"]})
        await asyncio.wait_for(gone, 10)
        with pytest.raises(LoginFailed):
            await login(server, "carol@localhost/pad", "carol's secret words")
        carol = await login(server, "carol@localhost/pad", "carol's new words")
        await logout(carol)

        await _run(root, "set-motd", {"subject": "Welcome", "motd": ["be nice"]})
        bob = await login(server, "bob@localhost/phone")
        motd = asyncio.get_running_loop().create_future()
        bob.add_event_handler("message", lambda msg: motd.done() or motd.set_result(msg))
        bob.send_presence()
        told = await asyncio.wait_for(motd, 10)
        assert (told["subject"], told["body"]) == ("Welcome", "be nice")
        await logout(bob)

        deleted = await _run(root, "delete-user", {"accountjids": ["carol@localhost",
                                                                   "nobody@localhost"]})
        assert deleted["notes"][0][0] == "warn"
        assert "carol@localhost" in deleted["notes"][0][1]
        with pytest.raises(LoginFailed):
            await login(server, "carol@localhost/pad", "carol's new words")

        await logout(alice)
        await logout(root)

    asyncio.run(scenario())
    assert "carol's new words" not in server.log() and "carol's secret" not in server.log()


def test_a_user_who_is_not_an_admin_sees_and_runs_nothing(server):
    async def scenario():
        alice = _admin_client(await login(server, "alice@localhost/laptop"))
        items = await alice.plugin["xep_0050"].get_commands("localhost")
        assert not items["disco_items"]["items"]
        with pytest.raises(IqError) as caught:
            await alice.plugin["xep_0050"].send_command("localhost", ADMIN + "add-user")
        assert caught.value.condition == "forbidden"
        with pytest.raises(IqError) as caught:
            await alice.plugin["xep_0050"].send_command("localhost", ADMIN + "no-such-thing")
        assert caught.value.condition == "item-not-found"
        await logout(alice)

    asyncio.run(scenario())


def test_sessions_are_the_requesters_own_and_forms_are_required(server):
    async def scenario():
        root = _admin_client(await login(server, "root@localhost/console"))
        other = _admin_client(await login(server, "root@localhost/other"))
        adhoc = root.plugin["xep_0050"]
        started = await adhoc.send_command("localhost", ADMIN + "add-user")
        session = started["command"]["sessionid"]
        with pytest.raises(IqError) as caught:  # another resource of the same admin
            await other.plugin["xep_0050"].send_command(
                "localhost", ADMIN + "add-user", action="complete", sessionid=session,
                payload=_form(other, {"accountjid": "eve@localhost", "password": "p" * 12}))
        assert caught.value.condition == "bad-request"
        assert caught.value.iq.xml.find(
            "{jabber:client}error/{http://jabber.org/protocol/commands}bad-sessionid") \
            is not None
        with pytest.raises(IqError) as caught:  # completed without its form
            await adhoc.send_command("localhost", ADMIN + "add-user", action="complete",
                                     sessionid=session)
        assert caught.value.condition == "bad-request"
        started = await adhoc.send_command("localhost", ADMIN + "add-user")
        canceled = await adhoc.send_command("localhost", ADMIN + "add-user", action="cancel",
                                            sessionid=started["command"]["sessionid"])
        assert canceled["command"]["status"] == "canceled"
        with pytest.raises(IqError) as caught:  # a canceled session is gone
            await adhoc.send_command("localhost", ADMIN + "add-user", action="complete",
                                     sessionid=started["command"]["sessionid"],
                                     payload=_form(root, {"accountjid": "eve@localhost"}))
        assert caught.value.condition == "bad-request"
        with pytest.raises(IqError) as caught:  # a mismatch of the two passwords
            await _run(root, "add-user", {"accountjid": "eve@localhost", "password": "a" * 12,
                                          "password-verify": "b" * 12})
        assert caught.value.condition == "not-acceptable"
        with pytest.raises(IqError) as caught:  # an account of a domain we do not serve
            await _run(root, "add-user", {"accountjid": "eve@elsewhere.example",
                                          "password": "a" * 12, "password-verify": "a" * 12})
        assert caught.value.condition == "bad-request"
        await logout(other)
        await logout(root)

    asyncio.run(scenario())


def test_a_disabled_account_is_refused_until_enabled_again(server):
    async def scenario():
        root = _admin_client(await login(server, "root@localhost/console"))
        alice = await login(server, "alice@localhost/laptop")
        gone = asyncio.get_running_loop().create_future()
        alice.add_event_handler("disconnected", lambda _: gone.done() or gone.set_result(1))
        await _run(root, "disable-user", {"accountjids": ["alice@localhost"]})
        await asyncio.wait_for(gone, 10)  # her session ended with it
        with pytest.raises(LoginFailed) as caught:
            await login(server, "alice@localhost/laptop")
        assert caught.value.condition == "account-disabled"
        listed = await _run(root, "get-disabled-users-list", {"max_items": "25"})
        assert listed["form"]["values"]["disableduserjids"] == ["alice@localhost"]

        # the same from xmppdctl, over the control socket of the running server
        assert server.ctl("disable", "bob@localhost").returncode == 0
        with pytest.raises(LoginFailed):
            await login(server, "bob@localhost/phone")
        shown = server.ctl("disabled")
        assert "alice@localhost" in shown.stdout and "bob@localhost" in shown.stdout
        assert server.ctl("enable", "bob@localhost").returncode == 0
        bob = await login(server, "bob@localhost/phone")

        enabled = await _run(root, "reenable-user", {"accountjids": ["alice@localhost"]})
        assert "alice@localhost" in enabled["notes"][0][1]
        alice = await login(server, "alice@localhost/laptop")
        count = await _run(root, "get-disabled-users-num", None)
        assert count["form"]["values"]["disabledusersnum"] == "0"
        for client in (alice, bob, root):
            await logout(client)

    asyncio.run(scenario())


def test_contact_addresses_in_the_servers_disco(server):
    async def scenario():
        alice = await login(server, "alice@localhost/laptop")
        info = await alice.plugin["xep_0030"].get_info("localhost")
        forms = info["disco_info"].xml.findall("{jabber:x:data}x")
        values = {}
        for form in forms:
            for field in form.findall("{jabber:x:data}field"):
                values[field.get("var")] = [v.text for v in field.findall("{jabber:x:data}value")]
        assert values["FORM_TYPE"] == ["http://jabber.org/network/serverinfo"]
        assert values["abuse-addresses"] == ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
        assert values["security-addresses"] == ["https://localhost/security.txt"]
        assert "admin-addresses" not in values
        features = info["disco_info"]["features"]
        assert "http://jabber.org/protocol/commands" in features
        await logout(alice)

    asyncio.run(scenario())
