# -*- test-case-name: tests.unit.test_muc_admin -*-
"""The ``muc#admin`` IQs (XEP-0045 §8-§9): lists of roles and affiliations, and changes to
them (kick, voice, ban, membership, moderator, admin, owner), all or none of a request's
items applied; and the ``muc#owner`` IQs (§10): the config form, its submission, the
instant room, cancelling a new room's set-up, destruction with an alternate venue."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import FormError, find_form
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.muc import presence as codes
from xmppd.muc.config import AFFILIATION_FIELDS, RoomConfig, apply_form, config_form
from xmppd.muc.join import leave
from xmppd.muc.occupants import Occupant
from xmppd.muc.roles import AFFILIATIONS, ROLES, may_change_affiliation, may_change_role
from xmppd.muc.room import Room


@dataclasses.dataclass(frozen=True)
class Limits:
    """What an owner may configure at most: ``[plugins.muc]`` max_users, max_history."""

    max_users: int = 200
    max_history: int = 50


def actor_of(room: Room, sender: JID) -> tuple[str, str, Occupant | None]:
    """The sender's affiliation, role (none when not in the room) and occupant."""
    occupant = room.occupants.of_session(sender)
    return room.affiliation(sender), occupant.role if occupant else "none", occupant


# -- muc#admin get

def get_list(room: Room, sender: JID, query: domish.Element) -> domish.Element:
    item = _single_item(query)
    affiliation, role = item.getAttribute("affiliation"), item.getAttribute("role")
    mine, my_role, occupant = actor_of(room, sender)
    answer = domish.Element((ns.MUC_ADMIN, "query"))
    if affiliation is not None:
        if affiliation not in AFFILIATIONS or affiliation == "none":
            raise StanzaError("bad-request", f"no affiliation list {affiliation!r}")
        members_see = (room.config.members_only and room.config.non_anonymous
                       and mine in ("owner", "admin", "member"))
        if mine not in ("owner", "admin") and not (members_see and affiliation != "outcast"):
            raise StanzaError("forbidden", "only admins and owners see this list")
        for jid, each in sorted(room.affiliations.items(), key=lambda pair: pair[0].full()):
            if each == affiliation:
                entry = answer.addElement("item")
                entry["affiliation"], entry["jid"] = each, jid.full()
                nick = room.nicks.get(jid) or next(
                    (o.nick for o in room.occupants.of_account(jid)), None)
                if nick is not None:
                    entry["nick"] = nick
        return answer
    if role not in ("moderator", "participant"):
        raise StanzaError("bad-request", "ask for an affiliation or the moderator or "
                                         "participant list")
    if my_role != "moderator":
        raise StanzaError("forbidden", "only moderators see the roles")
    for each in room.occupants:
        if each.role == role:
            entry = answer.addElement("item")
            entry["role"], entry["nick"] = each.role, each.nick
            entry["affiliation"] = each.affiliation
            if room.sees_jids(occupant):
                entry["jid"] = each.bare.full()
    return answer


def _single_item(query: domish.Element) -> domish.Element:
    items = [child for child in query.elements() if child.name == "item"]
    if len(items) != 1:
        raise StanzaError("bad-request", "a list request has one <item/>")
    return items[0]


# -- muc#admin set

@dataclasses.dataclass(frozen=True)
class Change:
    reason: str | None
    nick: str | None = None
    role: str | None = None
    jid: JID | None = None
    affiliation: str | None = None


def set_list(room: Room, sender: JID, query: domish.Element) -> None:
    """Every item checked first, then applied in order (§9, the modify-list requests)."""
    items = [child for child in query.elements() if child.name == "item"]
    if not items:
        raise StanzaError("bad-request", "no <item/> to change")
    changes = [_change(room, sender, item) for item in items]
    owners = set(room.owners())
    for change in changes:
        if change.affiliation is not None:
            bare = change.jid.bare()
            (owners.add if change.affiliation == "owner" else owners.discard)(bare)
    if not owners:
        raise StanzaError("conflict", "a room keeps at least one owner")
    actor = room.occupants.of_session(sender)
    for change in changes:
        if change.role is not None:
            _apply_role(room, change, actor)
        else:
            _apply_affiliation(room, change, actor)
    if any(change.affiliation is not None for change in changes):
        room.changed(room)


def _change(room: Room, sender: JID, item: domish.Element) -> Change:
    mine, my_role, _ = actor_of(room, sender)
    reason = next((str(child) for child in item.elements() if child.name == "reason"), None)
    role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
    if role is not None:
        if role not in ROLES:
            raise StanzaError("bad-request", f"no role {role!r}")
        target = room.occupants.get(item.getAttribute("nick") or "")
        if target is None:
            raise StanzaError("item-not-found", "nobody has this nick in the room")
        if my_role != "moderator":
            raise StanzaError("forbidden", "only moderators change roles")
        if not may_change_role(my_role, mine, target.affiliation, target.role, role):
            raise StanzaError("not-allowed", "you may not change this occupant's role")
        return Change(reason, nick=target.nick, role=role)
    if affiliation is None or affiliation not in AFFILIATIONS:
        raise StanzaError("bad-request", "an item names a role or an affiliation")
    jid = _item_jid(room, item)
    if mine not in ("owner", "admin"):
        raise StanzaError("forbidden", "only admins and owners change affiliations")
    if not may_change_affiliation(mine, room.affiliation(jid), affiliation):
        raise StanzaError("not-allowed", "you may not make this change of affiliation")
    return Change(reason, jid=jid.bare(), affiliation=affiliation)


def _item_jid(room: Room, item: domish.Element) -> JID:
    text = item.getAttribute("jid")
    if text is None:
        nick = item.getAttribute("nick")
        occupant = room.occupants.get(nick or "")
        if occupant is None:
            raise StanzaError("bad-request", "an affiliation change names a jid")
        return occupant.bare
    try:
        return parse_jid(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", "the item's jid is malformed") from None


def _apply_role(room: Room, change: Change, actor: Occupant | None) -> None:
    target = room.occupants.get(change.nick)
    if target is None:
        return
    by = actor.nick if actor else None
    if change.role == "none":
        remove_occupant(room, target, [codes.KICKED], by, change.reason)
        return
    was_shown = room.shows(target)
    target.role = change.role
    if was_shown and not room.shows(target):  # the others see it go
        for viewer, jid in room.occupants.sessions():
            if viewer is not target:
                room.send(room.presence_of(target, viewer, jid, (), "unavailable"))
    room.broadcast_presence(target, actor=by, reason=change.reason)


def _apply_affiliation(room: Room, change: Change, actor: Occupant | None) -> None:
    room.set_affiliation(change.jid, change.affiliation)
    by = actor.nick if actor else None
    for occupant in room.occupants.of_account(change.jid):
        occupant.affiliation = change.affiliation
        if change.affiliation == "outcast":
            remove_occupant(room, occupant, [codes.BANNED], by, change.reason)
        elif room.config.members_only and change.affiliation == "none":
            remove_occupant(room, occupant, [codes.AFFILIATION_CHANGED], by, change.reason)
        else:
            occupant.role = room.role_for(change.affiliation)
            room.broadcast_presence(occupant, reason=change.reason)


def remove_occupant(room: Room, occupant: Occupant, status: list[int], actor: str | None,
                    reason: str | None) -> None:
    """Every session of the occupant out, with the status codes saying why."""
    occupant.role = "none"
    sessions = occupant.jids()
    for jid in sessions[:-1]:
        room.occupants.remove_session(jid)
    leave(room, occupant, sessions[-1], None, status, actor=actor, reason=reason)
    for jid in sessions[:-1]:
        room.send(room.presence_of(occupant, occupant, jid, status, "unavailable",
                                   actor=actor, reason=reason))


# -- muc#owner

def get_config(room: Room, sender: JID, limits: Limits) -> domish.Element:
    if room.affiliation(sender) != "owner":
        raise StanzaError("forbidden", "only owners configure the room")
    query = domish.Element((ns.MUC_OWNER, "query"))
    owners, admins = ([jid.full() for jid, each in sorted(room.affiliations.items(),
                                                         key=lambda pair: pair[0].full())
                       if each == wanted] for wanted in ("owner", "admin"))
    query.addChild(config_form(room.config, limits.max_users, limits.max_history, owners,
                               admins).to_element())
    return query


def set_owner(room: Room, sender: JID, query: domish.Element, limits: Limits,
              destroy: Callable[[Room, domish.Element | None], None]) -> None:
    """A submitted or cancelled form, or ``<destroy/>``."""
    if room.affiliation(sender) != "owner":
        raise StanzaError("forbidden", "only owners configure or destroy the room")
    for child in query.elements():
        if child.name == "destroy":
            destroy(room, child)
            return
    form = find_form(query)
    if form is None:
        raise StanzaError("bad-request", "a form or <destroy/> is expected")
    if form.type == "cancel":
        if room.locked:
            destroy(room, None)
        return
    config = apply_form(room.config, form, limits.max_users, limits.max_history)
    changes = affiliation_fields(room, form)
    configure(room, config)
    actor = room.occupants.of_session(sender)
    for change in changes:
        _apply_affiliation(room, change, actor)


def affiliation_fields(room: Room, form) -> list[Change]:
    """The changes that the full lists of owners and admins in a submitted form make: those
    listed get the affiliation, those no longer listed lose it (to none); a room keeps an
    owner (not-acceptable)."""
    changes: dict[JID, Change] = {}
    for var, affiliation in AFFILIATION_FIELDS.items():
        if var not in form:
            continue
        listed = {jid.bare() for jid in form.get_jids(var)}
        if affiliation == "owner" and not listed:
            raise FormError("a room keeps at least one owner", var, "not-acceptable")
        for jid, each in room.affiliations.items():
            if each == affiliation and jid not in listed and jid not in changes:
                changes[jid] = Change(None, jid=jid, affiliation="none")
        for jid in listed:
            if room.affiliation(jid) != affiliation:
                changes[jid] = Change(None, jid=jid, affiliation=affiliation)
    return list(changes.values())


def configure(room: Room, config: RoomConfig) -> None:
    """A new config in effect: the room unlocked, occupants told what changed (§10.2.1),
    non-members out of a room made members-only, the history resized."""
    old, room.config, was_locked = room.config, config, room.locked
    room.locked = False
    room.history.resize(config.history_length)
    status = [codes.CONFIG_CHANGED]
    if old.non_anonymous != config.non_anonymous:
        status.append(codes.NOW_NON_ANONYMOUS if config.non_anonymous
                      else codes.NOW_SEMI_ANONYMOUS)
    if old.enable_logging != config.enable_logging:
        status.append(codes.LOGGING_ON if config.enable_logging else codes.LOGGING_OFF)
    if not was_locked:
        for _, jid in room.occupants.sessions():
            room.send(codes.status_message(room.jid, jid, status))
    if config.members_only and not old.members_only:
        for occupant in room.occupants:
            if occupant.affiliation == "none":
                remove_occupant(room, occupant, [codes.MEMBERS_ONLY], None, None)
    room.changed(room)


def destruction_notice(room: Room, destroy: domish.Element | None) -> None:
    """§10.9: every occupant out, told of the alternate venue and reason."""
    extra = []
    if destroy is not None:
        notice = domish.Element((ns.MUC_USER, "destroy"))
        venue = destroy.getAttribute("jid")
        if venue:
            notice["jid"] = venue
        for child in destroy.elements():
            if child.name in ("reason", "password"):
                notice.addElement(child.name, content=str(child))
        extra.append(notice)
    for occupant in room.occupants:
        for jid in occupant.jids():
            presence = codes.occupant_presence(
                None, room.nick_jid(occupant.nick), jid,
                codes.Item(occupant.affiliation, "none"), (), room.occupant_id(occupant.bare),
                "unavailable", extra)
            room.send(presence)
        room.occupants.remove(occupant)
