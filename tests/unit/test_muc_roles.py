"""Who may change which affiliation and role (XEP-0045 §5, §8, §9)."""

from __future__ import annotations

import pytest

from xmppd.muc.roles import default_role, may_change_affiliation, may_change_role


@pytest.mark.parametrize(("affiliation", "moderated", "role"), [
    ("owner", False, "moderator"), ("admin", True, "moderator"),
    ("member", True, "participant"), ("none", False, "participant"),
    ("none", True, "visitor"), ("outcast", False, "none")])
def test_default_roles(affiliation, moderated, role):
    assert default_role(affiliation, moderated) == role


def test_owners_change_any_affiliation_admins_only_below_admin():
    assert may_change_affiliation("owner", "admin", "outcast")
    assert may_change_affiliation("admin", "member", "outcast")
    assert not may_change_affiliation("admin", "owner", "outcast")
    assert not may_change_affiliation("admin", "none", "admin")
    assert not may_change_affiliation("member", "none", "member")


def test_roles():
    # a moderator (a participant made moderator, affiliation none) kicks and voices
    assert may_change_role("moderator", "none", "none", "participant", "none")
    assert may_change_role("moderator", "none", "none", "visitor", "participant")
    assert may_change_role("moderator", "member", "member", "participant", "visitor")
    # but not someone of a higher affiliation
    assert not may_change_role("moderator", "none", "member", "participant", "none")
    # but never touches an admin's or owner's role, nor grants or revokes moderator
    assert not may_change_role("moderator", "admin", "owner", "moderator", "none")
    assert not may_change_role("moderator", "none", "none", "participant", "moderator")
    assert not may_change_role("moderator", "none", "none", "moderator", "participant")
    assert may_change_role("moderator", "admin", "member", "participant", "moderator")
    assert not may_change_role("participant", "member", "none", "participant", "none")
