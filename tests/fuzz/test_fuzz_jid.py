"""Property tests of JID preparation (xmppd.jid, RFC 7622): whatever text comes in, parsing
either gives a JID or raises InvalidJID (never another exception), and a prepared JID parses
back to itself (preparation is idempotent), part by part as well as whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xmppd.jid import (
    JID,
    InvalidJID,
    domain_or_none,
    jid_from_parts,
    parse_jid,
    prepare_domain,
    prepare_localpart,
    prepare_resource,
)

# Text biased towards what JIDs are made of: separators, dots, width and case variants,
# IDNA, bidi, combining marks, controls and space.
ALPHABET = st.one_of(
    st.sampled_from(list("@/.-_ aAzZ09ßẞİıＡａ。．｡\u200d\u0301\u05d0\u0627\u202e\u00a0\t"
                         "\U0001f600xn--")),
    st.characters(blacklist_categories=("Cs",)),
)
jid_text = st.text(ALPHABET, max_size=40)


def parse_or_invalid(text: str) -> JID | None:
    try:
        return parse_jid(text)
    except InvalidJID:
        return None


@given(jid_text)
def test_parsing_any_text_gives_a_jid_or_invalid_jid(text):
    jid = parse_or_invalid(text)
    if jid is not None:
        assert parse_jid(jid.full()) == jid  # idempotent
        assert parse_jid(jid.full()).full() == jid.full()
        assert parse_jid(jid.bare().full()) == jid.bare()


@given(jid_text, jid_text, jid_text)
def test_parts_prepare_idempotently_or_raise_invalid_jid(user, host, resource):
    for prepare, text in ((prepare_localpart, user), (prepare_domain, host),
                          (prepare_resource, resource)):
        try:
            prepared = prepare(text)
        except InvalidJID:
            continue
        assert prepare(prepared) == prepared
    try:
        jid = jid_from_parts(user or None, host, resource or None)
    except InvalidJID:
        return
    assert parse_jid(jid.full()) == jid


@given(st.text(max_size=2000))
def test_long_and_arbitrary_text_never_raises_anything_else(text):
    parse_or_invalid(text)
    assert domain_or_none(text) is None or prepare_domain(domain_or_none(text)) \
        == domain_or_none(text)


@given(st.binary(max_size=60))
def test_bytes_decoded_as_a_peer_sends_them(data):
    parse_or_invalid(data.decode("utf-8", "replace"))


@pytest.mark.parametrize("text", [
    "ⷋİ⏋@localhost",  # found by atheris: 'İ' lower-cases to two characters, so the error's
    "İ⏋@localhost",  # position is in a longer string than the one given (was IndexError)
    "İİİİ☃@localhost",
    "localhost/İ\u0007",
])
def test_regressions_found_by_the_fuzzers(text):
    with pytest.raises(InvalidJID) as raised:
        parse_jid(text)
    assert "is not allowed" in str(raised.value)
