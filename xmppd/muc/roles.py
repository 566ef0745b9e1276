# -*- test-case-name: tests.unit.test_muc_roles -*-
"""Affiliations (long-lived, per bare JID) and roles (per visit), and who may change which
(XEP-0045 §5 and the tables of §5.1.2 and §5.2.1)."""

from __future__ import annotations

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")
RANK = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}


def default_role(affiliation: str, moderated: bool) -> str:
    """The role an occupant gets on entering (§5.1.2): owners and admins moderate, members
    speak, others speak unless the room is moderated; outcasts never enter."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member":
        return "participant"
    if affiliation == "outcast":
        return "none"
    return "visitor" if moderated else "participant"


def may_change_affiliation(actor: str, current: str, new: str) -> bool:
    """An owner changes anyone's; an admin only between none, member and outcast, of people
    who are no higher than member (§9)."""
    if actor == "owner":
        return True
    if actor == "admin":
        return RANK[current] <= RANK["member"] and RANK[new] <= RANK["member"]
    return False


def may_change_role(actor_role: str, actor_affiliation: str, target_affiliation: str,
                    current_role: str, new_role: str) -> bool:
    """Moderators grant and revoke voice and kick; only admins and owners grant or revoke
    moderator; the role of an admin or owner comes with the affiliation and no moderator
    changes it, and a moderator does not kick or silence someone of a higher affiliation
    (§8.2, §8.4, §9.6, §9.7: not-allowed)."""
    if actor_role != "moderator" or target_affiliation in ("owner", "admin"):
        return False
    if RANK[target_affiliation] > RANK[actor_affiliation]:
        return False
    if "moderator" in (current_role, new_role):
        return actor_affiliation in ("owner", "admin")
    return True
