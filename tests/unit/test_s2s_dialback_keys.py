"""Dialback keys: XEP-0185's own example values, constant-time verification, the secret file."""

from __future__ import annotations

import hmac
import os
import stat

import pytest

from xmppd.s2s import dialback_keys
from xmppd.s2s.dialback_keys import (
    DialbackSecretError,
    dialback_key,
    load_or_create_secret,
    verify_key,
)

# XEP-0185 §3 example values.
SECRET = b"s3cr3tf0rd14lb4ck"
RECEIVING = "xmpp.example.com"
ORIGINATING = "example.org"
STREAM_ID = "D60000229F"
XEP_KEY = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"


def test_key_matches_xep_0185_example():
    assert dialback_key(SECRET, RECEIVING, ORIGINATING, STREAM_ID) == XEP_KEY


def test_key_is_lowercase_hex_sha256():
    key = dialback_key(b"another secret", "a.example", "b.example", "id-1")
    assert len(key) == 64
    assert key == key.lower()
    int(key, 16)


@pytest.mark.parametrize("change", [
    {"secret": b"other secret"},
    {"receiving": "xmpp.example.net"},
    {"originating": "example.net"},
    {"stream_id": "D60000229G"},
])
def test_every_input_changes_the_key(change):
    args = {"secret": SECRET, "receiving": RECEIVING, "originating": ORIGINATING,
            "stream_id": STREAM_ID} | change
    assert dialback_key(**args) != XEP_KEY


def test_receiving_and_originating_are_not_interchangeable():
    swapped = dialback_key(SECRET, ORIGINATING, RECEIVING, STREAM_ID)
    assert swapped != XEP_KEY


def test_unicode_domains_are_utf8_encoded():
    # Computed independently of the module: same formula, UTF-8 text.
    hmac_key = b"a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc"
    text = "bücher.example example.org abc".encode()
    expected = hmac.new(hmac_key, text, "sha256").hexdigest()
    assert dialback_key(SECRET, "bücher.example", "example.org", "abc") == expected


@pytest.mark.parametrize("receiving, originating, stream_id, message", [
    ("", "example.org", "id", "empty receiving domain"),
    ("example.com", "", "id", "empty originating domain"),
    ("example.com", "example.org", "", "empty stream id"),
    ("example .com", "example.org", "id", "whitespace in receiving domain"),
    ("example.com", "example.org\t", "id", "whitespace in originating domain"),
])
def test_bad_inputs_raise_value_error(receiving, originating, stream_id, message):
    with pytest.raises(ValueError, match=message):
        dialback_key(SECRET, receiving, originating, stream_id)


def test_verify_accepts_the_xep_example_key():
    assert verify_key(SECRET, RECEIVING, ORIGINATING, STREAM_ID, XEP_KEY)


def test_verify_ignores_surrounding_whitespace():
    assert verify_key(SECRET, RECEIVING, ORIGINATING, STREAM_ID, f"\n    {XEP_KEY}\n")


@pytest.mark.parametrize("key", [
    XEP_KEY[:-1] + "4",
    XEP_KEY[:-1],
    XEP_KEY + "0",
    XEP_KEY.upper(),
    "",
    "not hex at all",
    "ключ",  # non-ASCII must be a plain False, not a TypeError
])
def test_verify_rejects_other_keys(key):
    assert not verify_key(SECRET, RECEIVING, ORIGINATING, STREAM_ID, key)


def test_verify_rejects_key_for_other_stream():
    assert not verify_key(SECRET, RECEIVING, ORIGINATING, "D60000229E", XEP_KEY)


def test_verify_with_impossible_input_is_false_not_an_error():
    assert not verify_key(SECRET, RECEIVING, ORIGINATING, "", XEP_KEY)
    assert not verify_key(SECRET, "a b", ORIGINATING, STREAM_ID, XEP_KEY)


def test_verify_uses_constant_time_compare(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(dialback_keys.hmac, "compare_digest", spy)
    assert verify_key(SECRET, RECEIVING, ORIGINATING, STREAM_ID, XEP_KEY)
    assert calls == [(XEP_KEY.encode(), XEP_KEY.encode())]


# --------------------------------------------------------------------------- secret file


def test_secret_is_created_with_32_random_bytes_and_mode_0600(tmp_path):
    path = tmp_path / "a" / "b" / "dialback.secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_secret_is_kept_across_loads(tmp_path):
    path = tmp_path / "dialback.secret"
    assert load_or_create_secret(path) == load_or_create_secret(str(path))


def test_two_servers_get_different_secrets(tmp_path):
    assert load_or_create_secret(tmp_path / "one") != load_or_create_secret(tmp_path / "two")


def test_existing_secret_is_used_and_loose_mode_tightened(tmp_path):
    path = tmp_path / "dialback.secret"
    path.write_bytes(b"x" * 40)
    path.chmod(0o644)
    assert load_or_create_secret(path) == b"x" * 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_too_short_secret_is_a_clear_error(tmp_path):
    path = tmp_path / "dialback.secret"
    path.write_bytes(b"short")
    with pytest.raises(DialbackSecretError, match=r"dialback.secret: 5 bytes, at least 16"):
        load_or_create_secret(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_secret_is_a_clear_error(tmp_path):
    path = tmp_path / "dialback.secret"
    path.write_bytes(b"x" * 32)
    path.chmod(0)
    try:
        with pytest.raises(DialbackSecretError, match="Permission denied"):
            load_or_create_secret(path)
    finally:
        path.chmod(0o600)


def test_secret_in_a_path_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(DialbackSecretError, match="blocker/dialback.secret"):
        load_or_create_secret(blocker / "dialback.secret")
