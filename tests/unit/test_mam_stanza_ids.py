"""What the archive keeps, forged XEP-0359 ids removed, ours added; the caller's element is
never changed."""

from __future__ import annotations

import re

from xmppd import ns
from xmppd.jid import parse_jid
from xmppd.mam.dates import format_stamp, parse_stamp
from xmppd.mam.ids import ID_LENGTH, EntryIds
from xmppd.mam.stanza_ids import archivable, with_stanza_id, without_forged_ids
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text, stanza_to_text

PROTECTED = frozenset(("bob@example.org", "example.org"))


def stanza(xml: str) -> Stanza:
    element = stanza_from_text(xml)
    return Stanza(element, parse_jid("alice@example.org/a"), parse_jid("bob@example.org"))


def sid(by: str, id: str = "x") -> str:
    return f"<stanza-id xmlns='urn:xmpp:sid:0' by='{by}' id='{id}'/>"


def test_archivable_kinds():
    assert archivable(stanza("<message type='chat'><body>hi</body></message>").element)
    assert archivable(stanza("<message><store xmlns='urn:xmpp:hints'/></message>").element)
    assert archivable(stanza("<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/>"
                             "</message>").element)
    for xml in ("<message type='groupchat'><body>hi</body></message>",
                "<message type='headline'><body>hi</body></message>",
                "<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>"
                "</message>",
                "<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>",
                "<message type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/>"
                "</message>"):
        assert not archivable(stanza(xml).element), xml


def test_nothing_forged_allocates_nothing():
    assert without_forged_ids(stanza("<message><body>hi</body></message>"), PROTECTED) is None
    other = stanza(f"<message><body>hi</body>{sid('room@muc.example.com')}{sid('not a jid@')}"
                   f"{sid('bob@example.org/res')}</message>")
    assert without_forged_ids(other, PROTECTED) is None


def test_forged_ids_are_removed_from_a_copy():
    original = stanza(f"<message><body>hi</body>{sid('Bob@Example.org')}{sid('example.org')}"
                      f"{sid('room@muc.example.com', 'kept')}</message>")
    cleaned = without_forged_ids(original, PROTECTED)
    ids = [each["id"] for each in cleaned.element.elements(ns.STANZA_ID, "stanza-id")]
    assert ids == ["kept"]
    assert len(list(original.element.elements(ns.STANZA_ID, "stanza-id"))) == 3
    assert (cleaned.sender, cleaned.recipient) == (original.sender, original.recipient)


def test_our_id_goes_on_a_copy_and_survives_storage():
    original = stanza("<message type='chat'><body>hi</body></message>")
    stamped = with_stanza_id(original, "abc", "bob@example.org")
    assert list(original.element.elements(ns.STANZA_ID, "stanza-id")) == []
    back = stanza_from_text(stanza_to_text(stamped.element))
    (found,) = back.elements(ns.STANZA_ID, "stanza-id")
    assert (found["by"], found["id"]) == ("bob@example.org", "abc")


def test_dates_both_ways():
    assert format_stamp(0.25) == "1970-01-01T00:00:00.250Z"
    assert parse_stamp("start", "1970-01-01T01:00:00+01:00") == 0.0
    assert parse_stamp("start", "2010-08-07T00:00:00.5Z") == 1281139200.5
    for bad in ("2010-08-07", "2010-08-07T00:00:00", "soon"):
        try:
            parse_stamp("start", bad)
        except Exception as error:
            assert error.condition == "bad-request"
        else:
            raise AssertionError(bad)


def test_entry_ids_are_unique_url_safe_and_sort_in_the_order_made():
    ids = EntryIds()
    made = [ids() for _ in range(2000)]  # across several reads from the OS
    assert len(set(made)) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{%d}" % ID_LENGTH, each) for each in made)
    assert made == sorted(made)  # as str: what the archive's (owner, id) index compares


def test_entry_ids_stay_in_order_when_the_clock_goes_back_and_differ_in_their_random_part():
    now = [10**18]
    ids = EntryIds(clock=lambda: now[0])
    first = ids()
    now[0] -= 5_000_000_000  # five seconds back (an NTP step)
    second, third = ids(), ids()
    assert first < second < third
    many = [ids() for _ in range(5000)]  # across a change of the cached high digits
    assert many == sorted(many) and many[0] > third
    assert len({each[-12:] for each in (first, second, third)}) == 3


def test_entry_ids_after_a_restart_sort_after_the_archives_newest_whatever_the_clock():
    before = EntryIds(clock=lambda: 2 * 10**18)
    newest = before()
    behind = EntryIds(clock=lambda: 10**18)  # the clock went back across a restart
    behind.not_before(newest)
    assert behind() > newest


def test_a_stamped_copy_brings_the_bytes_the_serializer_would_write():
    from xmppd.xml.serializer import serialize

    original = stanza("<message type='chat' to='bob@example.org'><body>a &amp; b</body>"
                      "<x xmlns='jabber:x:oob'><url>u</url></x></message>")
    wire = serialize(original.element, ns.CLIENT)
    for by in ("bob@example.org", "o'neil&co@example.org"):
        stamped = with_stanza_id(original, "abc", by, wire)
        assert serialize(stamped.element, ns.CLIENT) is stamped.element.wire
        stamped.element.wire_children = -1  # the guard fails: the serializer walks it
        assert serialize(stamped.element, ns.CLIENT) == stamped.element.wire


def test_a_stamped_copy_changed_afterwards_is_serialized_as_it_is():
    from xmppd.xml.serializer import serialize

    original = stanza("<message type='chat'><body>hi</body></message>")
    stamped = with_stanza_id(original, "abc", "bob@example.org",
                             serialize(original.element, ns.CLIENT))
    stamped.element["to"] = "carol@example.org"
    assert b"carol@example.org" in serialize(stamped.element, ns.CLIENT)
    stamped.element.addElement("thread", content="t")
    assert b"<thread>t</thread>" in serialize(stamped.element, ns.CLIENT)
    assert b"stanza-id" in serialize(stamped.element, "jabber:server")
