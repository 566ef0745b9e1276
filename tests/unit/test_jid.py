"""RFC 7622 addresses: the RFC examples, preparing each part, the JID object, the cache."""

from __future__ import annotations

import copy
import pickle
import random

import precis_i18n
import pytest

from xmppd import jid as jid_module
from xmppd.jid import (
    JID,
    InvalidJID,
    clear_jid_cache,
    jid_cache_info,
    jid_from_parts,
    parse_jid,
    prepare_domain,
    prepare_localpart,
    prepare_password,
    prepare_resource,
)

# --------------------------------------------------------------------------- RFC 7622 §3.5

# Table 1, as (text, localpart, domainpart, resourcepart) after preparation.
RFC7622_VALID = [
    ("juliet@example.com", "juliet", "example.com", None),
    ("juliet@example.com/foo", "juliet", "example.com", "foo"),
    ("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    ("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar", "example.com", None),
    ("fussball@example.com", "fussball", "example.com", None),
    ("fu\u00dfball@example.com", "fu\u00dfball", "example.com", None),
    ("\u03c0@example.com", "\u03c0", "example.com", None),
    ("\u03a3@example.com/foo", "\u03c3", "example.com", "foo"),  # capital sigma is lower-cased
    ("\u03c3@example.com/foo", "\u03c3", "example.com", "foo"),
    ("\u03c2@example.com/foo", "\u03c2", "example.com", "foo"),  # final sigma stays itself
    ("king@example.com/\u265a", "king", "example.com", "\u265a"),
    ("example.com", None, "example.com", None),
    ("example.com/foobar", None, "example.com", "foobar"),
    ("a.example.com/b@example.net", None, "a.example.com", "b@example.net"),
]

# Table 2, with the part each is refused for. "juliet@example.com/ foo" is in that table too but
# is left out on purpose: OpaqueString (RFC 8265 §4.2), which RFC 7622 §3.4 makes normative for
# the resourcepart, allows a leading space, and so do other RFC 7622 implementations.
RFC7622_INVALID = [
    ('"juliet"@example.com', "localpart"),  # quotation marks
    ("foo bar@example.com", "localpart"),  # space
    ("@example.com/", "localpart"),  # empty localpart and resourcepart
    ("henry\u2163@example.com", "localpart"),  # ROMAN NUMERAL FOUR, a compatibility character
    ("\u265a@example.com", "localpart"),  # BLACK CHESS KING, a symbol
    ("juliet@", "domainpart"),  # no domainpart
    ("/foobar", "domainpart"),  # no domainpart
]


@pytest.mark.parametrize(("text", "user", "host", "resource"), RFC7622_VALID)
def test_rfc7622_valid_examples(text, user, host, resource):
    jid = parse_jid(text)
    assert (jid.user, jid.host, jid.resource) == (user, host, resource)


@pytest.mark.parametrize(("text", "part"), RFC7622_INVALID)
def test_rfc7622_invalid_examples(text, part):
    with pytest.raises(InvalidJID) as caught:
        parse_jid(text)
    assert caught.value.part == part
    assert str(caught.value).startswith(f"invalid {part}: ")


def test_leading_space_in_resource_is_kept_as_opaquestring_says():
    assert parse_jid("juliet@example.com/ foo").resource == " foo"


# --------------------------------------------------------------------------- splitting (§3.1)


@pytest.mark.parametrize(
    ("text", "user", "host", "resource"),
    [
        ("a@b/c/d", "a", "b", "c/d"),  # only the first '/' splits
        ("a@b/c@d", "a", "b", "c@d"),  # '@' after the first '/' belongs to the resource
        ("b/c@d/e", None, "b", "c@d/e"),
        ("a@b//", "a", "b", "/"),
    ],
)
def test_splitting_follows_rfc7622(text, user, host, resource):
    jid = parse_jid(text)
    assert (jid.user, jid.host, jid.resource) == (user, host, resource)


@pytest.mark.parametrize(
    ("text", "part", "reason"),
    [
        ("", "domainpart", "empty"),
        ("a@b/", "resourcepart", "empty"),
        ("@b", "localpart", "empty"),
        ("juliet@@example.com", "domainpart", "U+0040 (COMMERCIAL AT)"),
        ("a@b@c", "domainpart", "U+0040 (COMMERCIAL AT)"),
    ],
)
def test_malformed_addresses(text, part, reason):
    with pytest.raises(InvalidJID) as caught:
        parse_jid(text)
    assert caught.value.part == part
    assert reason in caught.value.reason


def test_parse_jid_refuses_non_strings():
    with pytest.raises(TypeError):
        parse_jid(b"juliet@example.com")


# --------------------------------------------------------------------------- localpart


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("Juliet", "juliet"),
        ("JULIET", "juliet"),
        ("\u00c9milie", "\u00e9milie"),  # É lower-cased
        ("E\u0301milie", "\u00e9milie"),  # NFC composes e + combining acute
        ("\uff2a\uff55\uff4c\uff49\uff45\uff54", "juliet"),  # full-width letters map to ASCII
        ("foo.bar+tag", "foo.bar+tag"),
    ],
)
def test_localpart_preparation(raw, prepared):
    assert prepare_localpart(raw) == prepared


@pytest.mark.parametrize("char", sorted('"&\'/:<>@'))
def test_localpart_refuses_rfc7622_forbidden_characters(char):
    with pytest.raises(InvalidJID) as caught:
        prepare_localpart(f"a{char}b")
    assert f"U+{ord(char):04X}" in str(caught.value)
    assert "RFC 7622 §3.3.1" in str(caught.value)


def test_localpart_forbidden_character_reached_through_width_mapping():
    # FULLWIDTH COMMERCIAL AT maps to '@', which the localpart must not hold.
    with pytest.raises(InvalidJID, match="U\\+0040"):
        prepare_localpart("a\uff20b")


def test_localpart_error_says_which_character_and_why():
    with pytest.raises(InvalidJID) as caught:
        prepare_localpart("foo\tbar")
    assert str(caught.value) == (
        "invalid localpart: U+0009 at position 4 is not allowed (controls)"
    )


# The ASCII fast paths must agree with precis_i18n exactly; check every printable character and
# a few thousand random strings of them.
_ASCII = [chr(c) for c in range(0x00, 0x80)]


def _precis_or_none(profile: str, s: str) -> str | None:
    try:
        return precis_i18n.get_profile(profile).enforce(s)
    except UnicodeError:
        return None


def _ours_or_none(prepare, s: str) -> str | None:
    try:
        return prepare(s)
    except InvalidJID:
        return None


def _ascii_samples() -> list[str]:
    rng = random.Random(7622)
    samples = list(_ASCII)
    samples += ["".join(rng.choices(_ASCII[0x1F:], k=rng.randint(1, 12))) for _ in range(3000)]
    return samples


def test_ascii_localpart_fast_path_agrees_with_precis():
    for s in _ascii_samples():
        expected = _precis_or_none("UsernameCaseMapped", s)
        if expected is not None and set(expected) & jid_module.LOCALPART_FORBIDDEN:
            expected = None
        assert _ours_or_none(prepare_localpart, s) == expected, repr(s)


def test_ascii_resource_fast_path_agrees_with_precis():
    for s in _ascii_samples():
        assert _ours_or_none(prepare_resource, s) == _precis_or_none("OpaqueString", s), repr(s)


# --------------------------------------------------------------------------- resourcepart


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("Balcony", "Balcony"),  # case is kept
        ("foo\u00a0bar", "foo bar"),  # non-ASCII space becomes ASCII space
        ("e\u0301", "\u00e9"),  # NFC
        ("\u265a", "\u265a"),
    ],
)
def test_resource_preparation(raw, prepared):
    assert prepare_resource(raw) == prepared


def test_resource_refuses_controls():
    with pytest.raises(InvalidJID, match=r"^invalid resourcepart: U\+0000 at position 2"):
        prepare_resource("a\x00")


# --------------------------------------------------------------------------- domainpart


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),  # one trailing dot is stripped
        ("localhost", "localhost"),
        ("xn--mller-kva.example", "m\u00fcller.example"),  # A-labels become U-labels
        ("XN--MLLER-KVA.example", "m\u00fcller.example"),
        ("M\u00dcLLER.example", "m\u00fcller.example"),
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\u3002com", "example.com"),  # width, 。
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("a-b.c0.example", "a-b.c0.example"),
        ("x" * 63 + ".example", "x" * 63 + ".example"),
    ],
)
def test_domain_preparation(raw, prepared):
    assert prepare_domain(raw) == prepared


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        (".", "empty"),
        ("example.com..", "empty label"),
        ("a..b", "empty label"),
        ("a_b.example", "U+005F (LOW LINE) is not allowed in a domain name"),
        ("-a.example", "starts or ends with '-'"),
        ("a-.example", "starts or ends with '-'"),
        ("ab--c.example", "'--' in its 3rd and 4th places"),
        ("xn--abc.example", "bad A-label 'xn--abc'"),
        ("xn---bbk.example", "bad A-label 'xn---bbk'"),  # not the canonical Punycode
        ("x" * 64 + ".example", "label longer than 63 octets"),
        ("\u00fc" * 60 + ".example", "label"),  # its A-label is longer than 63 octets
        ("exa mple.com", "U+0020 (SPACE)"),
        ("\u2603.example", "label '\u2603'"),  # a symbol is not IDNA2008-valid
        ("256.1.1.1", "neither an IPv4 address nor a domain name"),
        ("1.2.3", "neither an IPv4 address nor a domain name"),
        ("example.123", "neither an IPv4 address nor a domain name"),
        ("[::1", "not a bracketed IPv6 address"),
        ("[1.2.3.4]", "not a bracketed IPv6 address"),
        ("[fe80::1%eth0]", "not a bracketed IPv6 address"),  # zone indexes are host-local
    ],
)
def test_domain_errors(raw, reason):
    with pytest.raises(InvalidJID) as caught:
        prepare_domain(raw)
    assert caught.value.part == "domainpart"
    assert reason in caught.value.reason


def test_domain_length_limits():
    label = "a" * 63
    fits = ".".join([label] * 16)  # 16 * 64 - 1 = 1023 octets
    assert prepare_domain(fits) == fits
    with pytest.raises(InvalidJID, match="longer than 1023 octets"):
        prepare_domain(fits + ".b")


def test_idna2003_fallback_checks_labels_the_same_way():
    # Used only when the idna package is missing; exercised directly so it cannot rot.
    assert jid_module._ulabel_idna2003("xn--mller-kva") == "m\u00fcller"
    jid_module._check_ulabel_idna2003("m\u00fcller")
    for label in ("stra\u00dfe", "m\u00fc_ller"):  # IDNA2003 would change it / not LDH
        with pytest.raises(InvalidJID):
            jid_module._check_ulabel_idna2003(label)
    with pytest.raises(InvalidJID):
        jid_module._ulabel_idna2003("xn--abc")


# --------------------------------------------------------------------------- lengths


def test_each_part_is_at_most_1023_octets():
    assert prepare_localpart("a" * 1023) == "a" * 1023
    assert prepare_resource("r" * 1023) == "r" * 1023
    with pytest.raises(InvalidJID, match="^invalid localpart: longer than 1023 octets$"):
        prepare_localpart("a" * 1024)
    with pytest.raises(InvalidJID, match="^invalid resourcepart: longer than 1023 octets$"):
        prepare_resource("r" * 1024)
    # 342 three-octet characters are 1026 octets.
    with pytest.raises(InvalidJID, match="longer than 1023 octets"):
        prepare_resource("\u265a" * 342)


def test_huge_input_is_refused_before_preparation():
    with pytest.raises(InvalidJID, match="longer than 1023 octets"):
        parse_jid("a" * 100_000 + "@example.com")


# --------------------------------------------------------------------------- the JID object


def test_equality_after_normalization():
    a = parse_jid("Juliet@Example.COM/Balcony")
    b = parse_jid("juliet@example.com/Balcony")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != parse_jid("juliet@example.com/balcony")  # resources keep their case


def test_full_userhost_and_str():
    jid = parse_jid("Juliet@Example.COM/Balcony")
    assert jid.full() == str(jid) == "juliet@example.com/Balcony"
    assert jid.userhost() == "juliet@example.com"
    assert parse_jid("example.com/r").userhost() == "example.com"
    assert repr(jid) == "<JID juliet@example.com/Balcony>"


def test_bare():
    full = parse_jid("juliet@example.com/balcony")
    bare = full.bare()
    assert not full.is_bare()
    assert bare.is_bare()
    assert (bare.user, bare.host, bare.resource) == ("juliet", "example.com", None)
    assert bare == parse_jid("juliet@example.com")
    assert full.bare() is bare  # cached
    assert bare.bare() is bare


def test_jid_is_immutable():
    jid = parse_jid("juliet@example.com")
    with pytest.raises(AttributeError):
        jid.user = "romeo"
    with pytest.raises(AttributeError):
        del jid.host
    with pytest.raises(AttributeError):
        jid.anything = 1  # __slots__: no instance dict


def test_jid_does_not_equal_strings():
    assert parse_jid("example.com") != "example.com"


def test_jid_survives_pickle_and_copy():
    import twisted.persisted.styles  # noqa: F401 - it changes how bound methods pickle

    jid = parse_jid("juliet@example.com/balcony")
    assert pickle.loads(pickle.dumps(jid)) == jid
    assert copy.copy(jid) is jid
    assert copy.deepcopy(jid) is jid


def test_jid_from_parts_prepares_each_part():
    jid = jid_from_parts("Juliet", "EXAMPLE.com.", "Balcony")
    assert jid == parse_jid("juliet@example.com/Balcony")
    assert jid_from_parts(None, "example.com", None) == parse_jid("example.com")
    with pytest.raises(InvalidJID, match="^invalid localpart"):
        jid_from_parts("foo bar", "example.com", None)
    with pytest.raises(InvalidJID, match="^invalid resourcepart: empty$"):
        jid_from_parts("juliet", "example.com", "")
    with pytest.raises(InvalidJID, match="^invalid domainpart"):
        jid_from_parts("juliet", "", None)


def test_constructor_prepares_like_jid_from_parts():
    assert JID("Juliet", "Example.com", "r") == parse_jid("juliet@example.com/r")
    with pytest.raises(InvalidJID):
        JID("a@b", "example.com")


# --------------------------------------------------------------------------- passwords


def test_prepare_password():
    assert prepare_password("correct horse") == "correct horse"
    assert prepare_password("p\u00e4ss\u00a0word") == "p\u00e4ss word"  # NBSP → space
    assert prepare_password("Pa\u0301") == "P\u00e1"  # NFC


@pytest.mark.parametrize("bad", ["", "secret\x00", "tab\there"])
def test_prepare_password_errors_never_quote_the_password(bad):
    with pytest.raises(ValueError) as caught:
        prepare_password(bad)
    message = str(caught.value)
    assert message.startswith("password: ")
    assert not (bad and bad[:3] in message)


# --------------------------------------------------------------------------- the cache


def test_cache_hits_return_the_same_object():
    clear_jid_cache()
    first = parse_jid("romeo@example.net/orchard")
    again = parse_jid("romeo@example.net/orchard")
    assert again is first
    assert jid_cache_info().hits == 1


def test_cache_never_grows_past_maxsize():
    clear_jid_cache()
    maxsize = jid_cache_info().maxsize
    assert maxsize == jid_module.JID_CACHE_SIZE
    for i in range(maxsize + 500):
        parse_jid(f"user{i}@example.com")
        assert jid_cache_info().currsize <= maxsize
    assert jid_cache_info().currsize == maxsize


def test_long_and_invalid_texts_are_not_cached():
    clear_jid_cache()
    parse_jid("a" * jid_module.JID_CACHE_MAX_TEXT + "@example.com")
    with pytest.raises(InvalidJID):
        parse_jid("foo bar@example.com")
    assert jid_cache_info().currsize == 0
