"""Group chat (XEP-0045) on conference.localhost over real TLS with slixmpp's own plugins
(xep_0045, xep_0410, xep_0421, xep_0313, xep_0425, xep_0249): room set-up and config,
joining after it, history, messages, private messages, nick changes, leaving, kicks, bans,
invitations, the error paths, persistence across a restart, self-ping, occupant ids, the
room's archive and moderation."""

from __future__ import annotations

import asyncio
import hashlib
import ssl

import pytest
from slixmpp.exceptions import IqError, PresenceError

from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox
from tests.integration.test_pep import close, run, stop

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
           '"carbons", "muc"]\n')
CLIENT_PLUGINS = ("xep_0030", "xep_0045", "xep_0199", "xep_0410", "xep_0421", "xep_0313",
                  "xep_0425", "xep_0249", "xep_0359", "xep_0054", "xep_0092")
ROOM = "lounge@conference.localhost"


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, extra=PLUGINS)
    for user in ("alice", "bob", "carol"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    yield proc
    stop(proc)


async def connect(proc: XmppdProcess, jid: str):
    """A slixmpp client with the MUC plugins, logged in and available."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD, sasl_mech="SCRAM-SHA-256")
    client.enable_direct_tls = False
    context = ssl.create_default_context(cafile=str(proc.cert))
    if getattr(proc, "ca", None) is not None:
        context.load_verify_locations(cafile=str(proc.ca))
    client.ssl_context = context
    for plugin in CLIENT_PLUGINS:
        client.register_plugin(plugin)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(1))
    client.connect("127.0.0.1", proc.c2s_port)
    await asyncio.wait_for(started, 15)
    client.send_presence()
    return client


class RawInbox(Inbox):
    """Every stanza matching an XPath, whatever the plugins make of it."""

    def __init__(self, client, xpath: str) -> None:
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        super().__init__(client, f"raw inbox {xpath}")
        client.register_handler(Callback(f"raw inbox {xpath}", MatchXPath(xpath), self._add))


def muc(client):
    return client.plugin["xep_0045"]


async def configure(client, room: str = ROOM, **values) -> None:
    """Fetch the owner form and submit it with ``values`` (muc#roomconfig_ field names)."""
    form = await muc(client).get_room_config(room, timeout=10)
    submitted = client.plugin["xep_0004"].make_form(ftype="submit")
    submitted.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig",
                        ftype="hidden")
    for var, value in values.items():
        field = form.get_fields()[f"muc#roomconfig_{var}"]
        submitted.add_field(var=f"muc#roomconfig_{var}", value=value, ftype=field["type"])
    await muc(client).set_room_config(room, submitted, timeout=10)


async def create(client, nick: str, room: str = ROOM, **values) -> None:
    """Create a reserved room (locked until configured), then configure it."""
    presence, _subject, _occupants, _history = await muc(client).join_muc_wait(
        room, nick, timeout=10)
    assert {"110", "201"} <= set(status_codes(presence))
    await configure(client, room, **values)


def status_codes(stanza) -> list[str]:
    return [status.get("code") for status in stanza.xml.iter(
        "{http://jabber.org/protocol/muc#user}status")]


def item_of(presence):
    return presence.xml.find("{http://jabber.org/protocol/muc#user}x/"
                             "{http://jabber.org/protocol/muc#user}item")


def body_is(text: str):
    return lambda message: message["body"] == text


def test_room_setup_join_messages_pm_nick_change_and_leave(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        await create(alice, "Alice", roomname="Lounge", persistentroom=True)
        info = await alice.plugin["xep_0030"].get_info(jid=ROOM, timeout=10)
        features = info["disco_info"]["features"]
        assert {"http://jabber.org/protocol/muc", "muc_persistent", "muc_open",
                "muc_semianonymous", "urn:xmpp:occupant-id:0"} <= set(features)
        listed = await bob.plugin["xep_0030"].get_items(jid="conference.localhost", timeout=10)
        assert [jid for jid, _, _ in listed["disco_items"]["items"]] == [ROOM]
        services = await bob.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
        assert "conference.localhost" in [jid for jid, _, _ in services["disco_items"]["items"]]

        alice_messages = Inbox(alice, "groupchat_message")
        bob_messages = Inbox(bob, "groupchat_message")
        bob_presences = Inbox(bob, "muc::%s::presence" % ROOM)
        presence, _, occupants, _ = await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        assert presence["muc"]["role"] == "participant"
        by_nick = {p["from"].resource: p for p in occupants}
        assert set(by_nick) == {"Alice", "Bob"}
        assert by_nick["Alice"]["muc"]["affiliation"] == "owner"
        assert "jid" not in item_of(by_nick["Alice"]).attrib  # semi-anonymous

        alice.send_message(mto=ROOM, mbody="hello room", mtype="groupchat")
        for inbox in (alice_messages, bob_messages):
            got = await inbox.wait_for(body_is("hello room"), timeout=10)
            assert str(got["from"]) == f"{ROOM}/Alice"
            assert got["stanza_id"]["by"] == ROOM and got["stanza_id"]["id"]
            assert got["occupant-id"]["id"]

        pms = Inbox(bob, "message")
        alice.send_message(mto=f"{ROOM}/Bob", mbody="psst", mtype="chat")
        pm = await pms.wait_for(body_is("psst"), timeout=10)
        assert str(pm["from"]) == f"{ROOM}/Alice" and pm["type"] == "chat"

        await muc(bob).set_self_nick(ROOM, "Robert", timeout=10)
        changed = await bob_presences.wait_for(
            lambda p: p["type"] == "unavailable" and "303" in status_codes(p), timeout=10)
        assert item_of(changed).get("nick") == "Robert"
        assert muc(alice).get_roster(ROOM) and "Robert" in muc(alice).get_roster(ROOM)

        alice_presences = Inbox(alice, "muc::%s::presence" % ROOM)
        muc(bob).leave_muc(ROOM, "Robert", "bye")
        gone = await alice_presences.wait_for(
            lambda p: p["type"] == "unavailable" and str(p["from"]) == f"{ROOM}/Robert",
            timeout=10)
        assert gone["status"] == "bye"
        await close(alice, bob)

    run(scenario)


def test_error_paths(server):
    """Password, nick taken, visitor in a moderated room, non-owner configuring,
    members-only."""
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        carol = await connect(server, "carol@localhost/pad")
        await create(alice, "Alice", moderatedroom=True, passwordprotectedroom=True,
                     roomsecret="s3cret")
        with pytest.raises(PresenceError) as refused:
            await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        assert refused.value.condition == "not-authorized"
        presence, *_ = await muc(bob).join_muc_wait(ROOM, "Bob", password="s3cret", timeout=10)
        assert presence["muc"]["role"] == "visitor"
        with pytest.raises(PresenceError) as taken:
            await muc(carol).join_muc_wait(ROOM, "Bob", password="s3cret", timeout=10)
        assert taken.value.condition == "conflict"

        errors = Inbox(bob, "message_error")
        bob.send_message(mto=ROOM, mbody="may I?", mtype="groupchat")
        error = await errors.wait_for(lambda m: True, timeout=10)
        assert error["error"]["condition"] == "forbidden"
        with pytest.raises(IqError) as not_owner:
            await muc(bob).get_room_config(ROOM, timeout=10)
        assert not_owner.value.iq["error"]["condition"] == "forbidden"

        await configure(alice, maxusers="2")
        with pytest.raises(PresenceError) as full:
            await muc(carol).join_muc_wait(ROOM, "Carol", password="s3cret", timeout=10)
        assert full.value.condition == "service-unavailable"

        await configure(alice, membersonly=True, maxusers="10")
        with pytest.raises(PresenceError) as members:
            await muc(carol).join_muc_wait(ROOM, "Carol", password="s3cret", timeout=10)
        assert members.value.condition == "registration-required"
        await close(alice, bob, carol)

    run(scenario)


def test_kick_ban_roles_and_affiliation_lists(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        carol = await connect(server, "carol@localhost/pad")
        await create(alice, "Alice")
        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        await muc(carol).join_muc_wait(ROOM, "Carol", timeout=10)
        bob_presences = Inbox(bob, "muc::%s::presence" % ROOM)
        carol_presences = Inbox(carol, "muc::%s::presence" % ROOM)

        with pytest.raises(IqError) as not_moderator:
            await muc(bob).set_role(ROOM, "Carol", "none", timeout=10)
        assert not_moderator.value.iq["error"]["condition"] == "forbidden"
        await muc(alice).set_role(ROOM, "Bob", "none", reason="calm down", timeout=10)
        kicked = await bob_presences.wait_for(
            lambda p: p["type"] == "unavailable" and "307" in status_codes(p), timeout=10)
        assert "110" in status_codes(kicked)
        assert item_of(kicked).find("{http://jabber.org/protocol/muc#user}actor").get(
            "nick") == "Alice"

        await muc(alice).set_affiliation(ROOM, "outcast", jid="carol@localhost", timeout=10)
        await carol_presences.wait_for(
            lambda p: p["type"] == "unavailable" and "301" in status_codes(p), timeout=10)
        with pytest.raises(PresenceError) as banned:
            await muc(carol).join_muc_wait(ROOM, "Carol", timeout=10)
        assert banned.value.condition == "forbidden"
        outcasts = await muc(alice).get_affiliation_list(ROOM, "outcast", timeout=10)
        assert [str(jid) for jid in outcasts] == ["carol@localhost"]

        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        await muc(alice).set_role(ROOM, "Bob", "moderator", timeout=10)
        moderators = await muc(alice).get_roles_list(ROOM, "moderator", timeout=10)
        assert sorted(moderators) == ["Alice", "Bob"]
        with pytest.raises(IqError) as last_owner:
            await muc(alice).set_affiliation(ROOM, "admin", jid="alice@localhost", timeout=10)
        assert last_owner.value.iq["error"]["condition"] == "conflict"
        await close(alice, bob, carol)

    run(scenario)


def test_invitations_mediated_and_direct(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        carol = await connect(server, "carol@localhost/pad")
        await create(alice, "Alice", membersonly=True)
        invites = Inbox(bob, "groupchat_invite")
        muc(alice).invite(ROOM, "bob@localhost", reason="join us")
        invite = await invites.wait_for(lambda m: True, timeout=10)
        assert str(invite["from"]) == ROOM
        assert invite["muc"]["invite"]["reason"] == "join us"
        presence, *_ = await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        assert presence["muc"]["affiliation"] == "member"

        direct = Inbox(carol, "groupchat_direct_invite")
        bob.plugin["xep_0249"].send_invitation("carol@localhost", ROOM, reason="come")
        got = await direct.wait_for(lambda m: True, timeout=10)
        assert str(got["groupchat_invite"]["jid"]) == ROOM
        with pytest.raises(PresenceError) as members:
            await muc(carol).join_muc_wait(ROOM, "Carol", timeout=10)
        assert members.value.condition == "registration-required"
        await close(alice, bob, carol)

    run(scenario)


def test_history_subject_and_persistence_across_a_restart(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        await create(alice, "Alice", persistentroom=True, roomname="Kept",
                     historylength="2", enablelogging=True)
        muc(alice).set_subject(ROOM, "Today: tests")
        for n in range(3):
            alice.send_message(mto=ROOM, mbody=f"line {n}", mtype="groupchat")
        await asyncio.sleep(0.5)
        await muc(alice).set_affiliation(ROOM, "member", jid="carol@localhost", timeout=10)
        bob = await connect(server, "bob@localhost/pc")
        _, subject, _, history = await muc(bob).join_muc_wait(ROOM, "Bob", maxstanzas=5,
                                                              timeout=10)
        assert [m["body"] for m in history] == ["line 1", "line 2"]
        assert subject["subject"] == "Today: tests"
        await close(alice, bob)

    run(scenario)
    assert server.stop() == 0
    server.start()

    async def after():
        alice = await connect(server, "alice@localhost/phone")
        info = await alice.plugin["xep_0030"].get_info(jid=ROOM, timeout=10)
        assert "muc_persistent" in info["disco_info"]["features"]
        assert [identity[3] for identity in info["disco_info"]["identities"]] == ["Kept"]
        members = await muc(alice).get_affiliation_list(ROOM, "member", timeout=10)
        assert [str(jid) for jid in members] == ["carol@localhost"]
        presence, subject, _, history = await muc(alice).join_muc_wait(ROOM, "Alice",
                                                                       timeout=10)
        assert presence["muc"]["affiliation"] == "owner"
        assert subject["subject"] == "Today: tests"
        # a logging room's history comes back from its archive
        assert [m["body"] for m in history] == ["line 1", "line 2"]
        # the archive's last batch was written at shutdown
        archived = [message async for message in alice.plugin["xep_0313"].iterate(
            jid=ROOM, total=10)]
        assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in archived] == [
            "line 0", "line 1", "line 2"]
        await close(alice)

    run(after)


def test_self_ping_occupant_ids_and_forged_elements(server):
    async def scenario():
        from slixmpp import JID
        from slixmpp.plugins.xep_0410.self_ping import PingStatus

        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        await create(alice, "Alice")
        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        ping = bob.plugin["xep_0410"]
        assert await ping.send_self_ping(JID(f"{ROOM}/Bob"), timeout=10) == PingStatus.JOINED

        # IQs between occupants are relayed, real JIDs hidden: the other client answers
        version = await bob.plugin["xep_0092"].get_version(JID(f"{ROOM}/Alice"), timeout=10)
        assert version["from"] == JID(f"{ROOM}/Alice")
        assert version["software_version"]["name"]
        alice_messages = Inbox(alice, "groupchat_message")
        forged = bob.make_message(mto=ROOM, mbody="forged", mtype="groupchat")
        forged["occupant-id"]["id"] = "i-am-alice"
        forged["stanza_id"]["by"] = ROOM
        forged["stanza_id"]["id"] = "fake"
        forged.send()
        got = await alice_messages.wait_for(body_is("forged"), timeout=10)
        assert got["occupant-id"]["id"] != "i-am-alice"
        assert len(got.xml.findall("{urn:xmpp:occupant-id:0}occupant-id")) == 1
        ids = got.xml.findall("{urn:xmpp:sid:0}stanza-id")
        assert [each.get("id") for each in ids] != ["fake"] and len(ids) == 1
        first_id = got["occupant-id"]["id"]

        # The same account, another nick after leaving: the same occupant id.
        muc(bob).leave_muc(ROOM, "Bob")
        await asyncio.sleep(0.3)
        assert (await ping.send_self_ping(JID(f"{ROOM}/Bob"), timeout=10)
                == PingStatus.DISCONNECTED)
        await muc(bob).join_muc_wait(ROOM, "Bobby", timeout=10)
        bob.send_message(mto=ROOM, mbody="again", mtype="groupchat")
        again = await alice_messages.wait_for(body_is("again"), timeout=10)
        assert again["occupant-id"]["id"] == first_id
        alice.send_message(mto=ROOM, mbody="mine", mtype="groupchat")
        mine = await alice_messages.wait_for(body_is("mine"), timeout=10)
        assert mine["occupant-id"]["id"] != first_id
        await close(alice, bob)

    run(scenario)


def test_multi_session_nick(server):
    """Two clients of one account under one nick: one occupant, both get the messages,
    the others see it leave only when its last session does."""
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob_pc = await connect(server, "bob@localhost/pc")
        bob_phone = await connect(server, "bob@localhost/phone")
        await create(alice, "Alice")
        await muc(bob_pc).join_muc_wait(ROOM, "Bob", timeout=10)
        await muc(bob_phone).join_muc_wait(ROOM, "Bob", timeout=10)
        assert sorted(muc(alice).get_roster(ROOM)) == ["Alice", "Bob"]
        inboxes = [Inbox(client, "groupchat_message") for client in (bob_pc, bob_phone)]
        alice.send_message(mto=ROOM, mbody="to both", mtype="groupchat")
        for inbox in inboxes:
            await inbox.wait_for(body_is("to both"), timeout=10)
        presences = Inbox(alice, "muc::%s::presence" % ROOM)
        muc(bob_phone).leave_muc(ROOM, "Bob")
        await asyncio.sleep(0.5)
        assert not presences.matching(lambda p: p["type"] == "unavailable")
        muc(bob_pc).leave_muc(ROOM, "Bob")
        await presences.wait_for(lambda p: p["type"] == "unavailable", timeout=10)
        await close(alice, bob_pc, bob_phone)

    run(scenario)


def test_room_archive_and_moderation(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        await create(alice, "Alice", enablelogging=True)
        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=10)
        assert {"urn:xmpp:mam:2", "urn:xmpp:message-moderate:1"} <= set(
            info["disco_info"]["features"])
        bob_messages = Inbox(bob, "groupchat_message")
        for text in ("first", "spam", "last"):
            bob.send_message(mto=ROOM, mbody=text, mtype="groupchat")
        spam = await bob_messages.wait_for(body_is("spam"), timeout=10)
        await bob_messages.wait_for(body_is("last"), timeout=10)

        archived = [message async for message in bob.plugin["xep_0313"].iterate(
            jid=ROOM, total=10)]
        forwarded = [m["mam_result"]["forwarded"]["stanza"] for m in archived]
        assert [m["body"] for m in forwarded] == ["first", "spam", "last"]
        assert archived[1]["mam_result"]["id"] == spam["stanza_id"]["id"]
        alice.send_message(mto=ROOM, mbody="from alice", mtype="groupchat")
        await bob_messages.wait_for(body_is("from alice"), timeout=10)
        of_alice = [message async for message in bob.plugin["xep_0313"].iterate(
            jid=ROOM, with_jid=f"{ROOM}/Alice", total=10)]
        assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in of_alice] == [
            "from alice"]

        with pytest.raises(IqError) as not_moderator:
            await bob.plugin["xep_0425"].moderate(spam["from"], spam["stanza_id"]["id"],
                                                  timeout=10)
        assert not_moderator.value.iq["error"]["condition"] == "forbidden"
        retractions = RawInbox(bob, "{jabber:client}message/"
                                    "{urn:xmpp:message-retract:1}retract")
        await alice.plugin["xep_0425"].moderate(spam["from"], spam["stanza_id"]["id"],
                                                reason="spam", timeout=10)
        retraction = await retractions.wait_for(lambda m: True, timeout=10)
        retract = retraction.xml.find("{urn:xmpp:message-retract:1}retract")
        assert retract.get("id") == spam["stanza_id"]["id"]
        assert retract.find("{urn:xmpp:message-moderate:1}moderated").get(
            "by") == f"{ROOM}/Alice"

        archived = [message async for message in bob.plugin["xep_0313"].iterate(
            jid=ROOM, total=10)]
        tombstone = archived[1]["mam_result"]["forwarded"]["stanza"]
        assert not tombstone["body"]
        assert tombstone.xml.find("{urn:xmpp:message-retract:1}retracted") is not None
        assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in archived[:3]] == [
            "first", "", "last"]
        await close(alice, bob)

    run(scenario)


def test_room_vcard(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        await create(alice, "Alice")
        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        vcards = alice.plugin["xep_0054"]
        card = vcards.make_vcard()
        card["PHOTO"]["TYPE"] = "image/png"
        card["PHOTO"]["BINVAL"] = b"not really a png"
        with pytest.raises(IqError) as not_owner:
            await bob.plugin["xep_0054"].publish_vcard(jid=ROOM, **{"vcard": card},
                                                       timeout=10)
        assert not_owner.value.iq["error"]["condition"] == "forbidden"
        updates = RawInbox(bob, "{jabber:client}presence/{vcard-temp:x:update}x")
        await vcards.publish_vcard(jid=ROOM, vcard=card, timeout=10)
        await updates.wait_for(lambda p: str(p["from"]) == ROOM, timeout=10)
        got = await bob.plugin["xep_0054"].get_vcard(jid=ROOM, cached=False, timeout=10)
        assert got["vcard_temp"]["PHOTO"]["BINVAL"] == b"not really a png"
        info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=10)
        form = info["disco_info"]["form"].get_fields()
        assert form["muc#roominfo_avatarhash"]["value"] == [
            hashlib.sha1(b"not really a png").hexdigest()]
        await close(alice, bob)

    run(scenario)


def test_private_messages_are_not_carbon_copied(server):
    """A PM from an occupant reaches the joined session only: the account's other device,
    with carbons on, gets no copy of it (XEP-0280 §6.1), but does get a copy of chat."""
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob_pc = await connect(server, "bob@localhost/pc")
        bob_phone = await connect(server, "bob@localhost/phone")
        bob_phone.register_plugin("xep_0280")
        await bob_phone.plugin["xep_0280"].enable(timeout=10)
        await create(alice, "Alice")
        await muc(bob_pc).join_muc_wait(ROOM, "Bob", timeout=10)
        pc = Inbox(bob_pc, "message")
        phone = RawInbox(bob_phone, "{jabber:client}message/{urn:xmpp:carbons:2}received")
        alice.send_message(mto=f"{ROOM}/Bob", mbody="only for the pc", mtype="chat")
        got = await pc.wait_for(body_is("only for the pc"), timeout=10)
        assert got.xml.find("{http://jabber.org/protocol/muc#user}x") is not None
        alice.send_message(mto="bob@localhost/pc", mbody="direct", mtype="chat")
        carbon = await phone.wait_for(lambda m: True, timeout=10)
        assert "direct" in str(carbon)
        assert not phone.matching(lambda m: "only for the pc" in str(m))
        await close(alice, bob_pc, bob_phone)

    run(scenario)


def test_member_list_voice_request_config_change_and_destroy(server):
    async def scenario():
        alice = await connect(server, "alice@localhost/phone")
        bob = await connect(server, "bob@localhost/pc")
        carol = await connect(server, "carol@localhost/pad")
        await create(alice, "Alice", membersonly=True, whois="anyone")
        for user in ("bob", "carol"):
            await muc(alice).set_affiliation(ROOM, "member", jid=f"{user}@localhost",
                                             timeout=10)
        presence, *_ = await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        assert "100" in status_codes(presence)  # non-anonymous
        # group OMEMO: a member of a members-only non-anonymous room reads the lists
        members = await muc(bob).get_affiliation_list(ROOM, "member", timeout=10)
        assert sorted(str(jid) for jid in members) == ["bob@localhost", "carol@localhost"]
        owners = await muc(bob).get_affiliation_list(ROOM, "owner", timeout=10)
        assert [str(jid) for jid in owners] == ["alice@localhost"]
        with pytest.raises(IqError) as no_outcasts:
            await muc(bob).get_affiliation_list(ROOM, "outcast", timeout=10)
        assert no_outcasts.value.iq["error"]["condition"] == "forbidden"

        config_changes = RawInbox(bob, "{jabber:client}message/"
                                       "{http://jabber.org/protocol/muc#user}x/"
                                       "{http://jabber.org/protocol/muc#user}status")
        await configure(alice, moderatedroom=True)
        change = await config_changes.wait_for(lambda m: True, timeout=10)
        assert "104" in status_codes(change)

        await muc(carol).join_muc_wait(ROOM, "Carol", timeout=10)
        await muc(alice).set_role(ROOM, "Carol", "visitor", timeout=10)
        requests = RawInbox(alice, "{jabber:client}message/{jabber:x:data}x")
        muc(carol).request_voice(ROOM, "participant")
        request = await requests.wait_for(lambda m: True, timeout=10)
        assert "muc#request" in str(request) and "Carol" in str(request)

        venue = "elsewhere@conference.localhost"
        gone = Inbox(bob, "muc::%s::presence" % ROOM)
        with pytest.raises(IqError) as not_owner:
            await muc(bob).destroy(ROOM, timeout=10)
        assert not_owner.value.iq["error"]["condition"] == "forbidden"
        await muc(alice).destroy(ROOM, reason="moving", altroom=venue, timeout=10)
        notice = await gone.wait_for(lambda p: p["type"] == "unavailable", timeout=10)
        destroy = notice.xml.find("{http://jabber.org/protocol/muc#user}x/"
                                  "{http://jabber.org/protocol/muc#user}destroy")
        assert destroy.get("jid") == venue
        with pytest.raises(IqError) as no_room:
            await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=10)
        assert no_room.value.iq["error"]["condition"] == "item-not-found"
        await close(alice, bob, carol)

    run(scenario)


def test_a_user_of_another_server_joins_and_chats(tmp_path):
    from tests.certs import make_test_pki
    from tests.integration.test_federation import A, B, s2s_section

    pki = make_test_pki(tmp_path / "pki", [A, B])  # a.example's covers *.a.example
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    a.config.write_text(a.config.read_text() + PLUGINS
                        + '[plugins.muc]\ncreate = "local"\n'
                        + s2s_section(a, b, pki.ca.ca_path, "secure"))
    b.config.write_text(b.config.read_text() + PLUGINS
                        + s2s_section(b, a, pki.ca.ca_path, "secure")
                        + f'"conference.{A}" = "127.0.0.1:{a.s2s_port}"\n')
    for proc in (a, b):
        proc.ca = pki.ca.ca_path
    assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()
    room = f"lounge@conference.{A}"

    async def scenario():
        alice = await connect(a, f"alice@{A}/home")
        bob = await connect(b, f"bob@{B}/work")
        await create(alice, "Alice", room)
        alice_messages = Inbox(alice, "groupchat_message")
        bob_messages = Inbox(bob, "groupchat_message")
        presence, *_ = await muc(bob).join_muc_wait(room, "Bob", timeout=30)
        assert "110" in status_codes(presence)
        bob.send_message(mto=room, mbody="hello from afar", mtype="groupchat")
        for inbox in (alice_messages, bob_messages):
            got = await inbox.wait_for(body_is("hello from afar"), timeout=20)
            assert str(got["from"]) == f"{room}/Bob"
        alice.send_message(mto=room, mbody="welcome", mtype="groupchat")
        await bob_messages.wait_for(body_is("welcome"), timeout=20)
        # a remote user may not create rooms under create = "local"
        with pytest.raises(PresenceError) as refused:
            await muc(bob).join_muc_wait(f"new@conference.{A}", "Bob", timeout=30)
        assert refused.value.condition == "not-allowed"
        await close(alice, bob)

    try:
        run(scenario, timeout=120)
    finally:
        stop(a, b)


def test_room_stanza_ids_survive_the_accounts_archive(tmp_path):
    """With the accounts' archive on (mam strips stanza-ids forged by our domains or the
    recipient), the ids a room stamps still reach its local occupants."""
    proc = XmppdProcess(tmp_path, extra=PLUGINS.replace('"muc"]', '"muc", "mam"]'))
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()

    async def scenario():
        alice = await connect(proc, "alice@localhost/phone")
        bob = await connect(proc, "bob@localhost/pc")
        await create(alice, "Alice")
        await muc(bob).join_muc_wait(ROOM, "Bob", timeout=10)
        messages = Inbox(bob, "groupchat_message")
        alice.send_message(mto=ROOM, mbody="kept ids", mtype="groupchat")
        got = await messages.wait_for(body_is("kept ids"), timeout=10)
        assert got["stanza_id"]["by"] == ROOM and got["stanza_id"]["id"]
        await close(alice, bob)

    try:
        run(scenario)
    finally:
        stop(proc)
