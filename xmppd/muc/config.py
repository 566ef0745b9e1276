# -*- test-case-name: tests.unit.test_muc_config -*-
"""A room's configuration: the owner's ``muc#roomconfig`` form both ways (XEP-0045 §10.2 and
§15.5.3), the ``muc#roominfo`` form and the features of its disco#info (§6.4, §15.5.4), and
the JSON kept for persistent rooms."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from xmppd import ns
from xmppd.forms import Field, Form, FormError, make_field

WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
BROADCAST_ROLES = ("moderator", "participant", "visitor")
# every option labelled, as in XEP-0045's form (§15.5.3): profanity prints '(null)' otherwise
ALLOW_PM_OPTIONS = (("anyone", "Anyone"), ("participants", "Anyone with Voice"),
                    ("moderators", "Moderators Only"), ("none", "Nobody"))
BROADCAST_OPTIONS = tuple((role, role.capitalize()) for role in BROADCAST_ROLES)


@dataclass(frozen=True)
class RoomConfig:
    """What an owner configures; the defaults are those of a new room."""

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""  # empty: no password
    max_users: int = 100
    whois: str = "moderators"  # 'anyone': non-anonymous
    allow_pms: str = "anyone"
    change_subject: bool = False  # occupants other than moderators may change it
    history_length: int = 20
    enable_logging: bool = False  # the room's XEP-0313 archive
    allow_invites: bool = False  # occupants other than admins may invite to members-only
    language: str = ""
    # the roles whose presence every occupant sees; others see only their own
    presence_broadcast: tuple[str, ...] = BROADCAST_ROLES

    @property
    def non_anonymous(self) -> bool:
        return self.whois == "anyone"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> RoomConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        fields = {key: item for key, item in value.items() if key in known}
        if "presence_broadcast" in fields:  # JSON keeps it as a list
            fields["presence_broadcast"] = tuple(fields["presence_broadcast"])
        return cls(**fields)


AFFILIATION_FIELDS = {"muc#roomconfig_roomowners": "owner",
                      "muc#roomconfig_roomadmins": "admin"}


def config_form(config: RoomConfig, max_users: int, max_history: int,
                owners: Sequence[str] = (), admins: Sequence[str] = ()) -> Form:
    """The form an owner fills (§10.2): every field with the room's current value, the
    owners and admins (bare JIDs) among them."""
    options = [str(n) for n in (10, 20, 30, 50, 100, 200, 500, 1000) if n <= max_users]
    if str(max_users) not in options:
        options.append(str(max_users))
    fields = [
        make_field("muc#roomconfig_roomname", config.name, type="text-single",
                   label="Natural-language room name"),
        make_field("muc#roomconfig_roomdesc", config.description, type="text-single",
                   label="Short description of the room"),
        make_field("muc#roomconfig_lang", config.language, type="text-single",
                   label="Natural language of the room's discussions"),
        make_field("muc#roomconfig_persistentroom", config.persistent, type="boolean",
                   label="Make room persistent"),
        make_field("muc#roomconfig_publicroom", config.public, type="boolean",
                   label="Make room publicly searchable"),
        make_field("muc#roomconfig_membersonly", config.members_only, type="boolean",
                   label="Make room members-only"),
        make_field("muc#roomconfig_moderatedroom", config.moderated, type="boolean",
                   label="Make room moderated"),
        make_field("muc#roomconfig_passwordprotectedroom", bool(config.password),
                   type="boolean", label="Password required to enter"),
        make_field("muc#roomconfig_roomsecret", config.password, type="text-private",
                   label="Password"),
        make_field("muc#roomconfig_maxusers", str(config.max_users), type="list-single",
                   label="Maximum number of occupants", options=[(n, n) for n in options]),
        make_field("muc#roomconfig_whois", config.whois, type="list-single",
                   label="Who may discover real JIDs",
                   options=[("moderators", "Moderators only"), ("anyone", "Anyone")]),
        make_field("muc#roomconfig_allowpm", config.allow_pms, type="list-single",
                   label="Who may send private messages", options=ALLOW_PM_OPTIONS),
        make_field("muc#roomconfig_changesubject", config.change_subject, type="boolean",
                   label="Allow occupants to change the subject"),
        make_field("muc#roomconfig_allowinvites", config.allow_invites, type="boolean",
                   label="Allow occupants to invite others"),
        make_field("muc#roomconfig_presencebroadcast", list(config.presence_broadcast),
                   type="list-multi", label="Roles whose presence is broadcast",
                   options=BROADCAST_OPTIONS),
        make_field("muc#roomconfig_historylength", str(config.history_length),
                   type="text-single",
                   label=f"Messages of history sent on join (at most {max_history})"),
        make_field("muc#roomconfig_enablelogging", config.enable_logging, type="boolean",
                   label="Archive the room's messages (XEP-0313)"),
        make_field("muc#roomconfig_roomowners", list(owners), type="jid-multi",
                   label="Full list of room owners"),
        make_field("muc#roomconfig_roomadmins", list(admins), type="jid-multi",
                   label="Full list of room admins"),
    ]
    return Form.build("form", fields, form_type=ns.MUC_ROOMCONFIG,
                      title="Room configuration")


# field var -> (attribute, how to read it)
_BOOLS = {
    "muc#roomconfig_persistentroom": "persistent",
    "muc#roomconfig_publicroom": "public",
    "muc#roomconfig_membersonly": "members_only",
    "muc#roomconfig_moderatedroom": "moderated",
    "muc#roomconfig_changesubject": "change_subject",
    "muc#roomconfig_allowinvites": "allow_invites",
    "muc#roomconfig_enablelogging": "enable_logging",
}
_TEXTS = {
    "muc#roomconfig_roomname": "name",
    "muc#roomconfig_roomdesc": "description",
    "muc#roomconfig_lang": "language",
}
KNOWN_FIELDS = (*_BOOLS, *_TEXTS, "muc#roomconfig_passwordprotectedroom",
                "muc#roomconfig_roomsecret", "muc#roomconfig_maxusers",
                "muc#roomconfig_whois", "muc#roomconfig_allowpm",
                "muc#roomconfig_historylength", "muc#roomconfig_presencebroadcast",
                *AFFILIATION_FIELDS)


def apply_form(config: RoomConfig, form: Form, max_users: int,
               max_history: int) -> RoomConfig:
    """The config an owner's submitted form makes of ``config``: fields left out keep their
    value; a field we do not know or a bad value is FormError (bad-request, naming it); a
    password-protected room needs a password (not-acceptable)."""
    if form.type != "submit":
        raise FormError(f"a room configuration is a submit form, not '{form.type}'")
    if form.form_type is not None:
        form.expect_form_type(ns.MUC_ROOMCONFIG)
    unknown = form.unknown_fields(KNOWN_FIELDS)
    if unknown:
        raise FormError(f"field '{unknown[0][:60]}' is not supported here", unknown[0])
    changes: dict = {}
    for var, attribute in _BOOLS.items():
        if var in form:
            changes[attribute] = form.get_bool(var, getattr(config, attribute))
    for var, attribute in _TEXTS.items():
        if var in form:
            changes[attribute] = form.get_text(var, "") or ""
    if "muc#roomconfig_maxusers" in form:
        changes["max_users"] = form.get_int("muc#roomconfig_maxusers", config.max_users, minimum=1,
                                            maximum=max_users)
    if "muc#roomconfig_historylength" in form:
        changes["history_length"] = form.get_int(
            "muc#roomconfig_historylength", config.history_length, minimum=0,
            maximum=max_history)
    if "muc#roomconfig_whois" in form:
        changes["whois"] = form.get_choice("muc#roomconfig_whois", WHOIS, config.whois)
    if "muc#roomconfig_presencebroadcast" in form:
        changes["presence_broadcast"] = tuple(
            role for role in BROADCAST_ROLES
            if role in form.get_choices("muc#roomconfig_presencebroadcast", BROADCAST_ROLES))
    if "muc#roomconfig_allowpm" in form:
        changes["allow_pms"] = form.get_choice("muc#roomconfig_allowpm", ALLOW_PM,
                                              config.allow_pms)
    protected = form.get_bool("muc#roomconfig_passwordprotectedroom",
                              bool(config.password))
    secret = form.get_text("muc#roomconfig_roomsecret", config.password) or ""
    if protected and not secret:
        raise FormError("a password-protected room needs muc#roomconfig_roomsecret",
                        "muc#roomconfig_roomsecret", "not-acceptable")
    changes["password"] = secret if protected else ""
    return dataclasses.replace(config, **changes)


def room_features(config: RoomConfig) -> list[str]:
    """The disco#info features that describe the room (§15.5.4)."""
    def pick(flag: bool, yes: str, no: str) -> str:
        return yes if flag else no

    return [
        pick(config.persistent, "muc_persistent", "muc_temporary"),
        pick(config.public, "muc_public", "muc_hidden"),
        pick(config.members_only, "muc_membersonly", "muc_open"),
        pick(config.moderated, "muc_moderated", "muc_unmoderated"),
        pick(bool(config.password), "muc_passwordprotected", "muc_unsecured"),
        pick(config.non_anonymous, "muc_nonanonymous", "muc_semianonymous"),
    ]


def roominfo_form(config: RoomConfig, occupants: int, subject: str,
                  avatar_hash: str | None) -> Form:
    """The ``muc#roominfo`` result form of the room's disco#info (§6.4, XEP-0486)."""
    fields: list[Field] = [
        make_field("muc#roominfo_description", config.description),
        make_field("muc#roominfo_occupants", str(occupants)),
        make_field("muc#roominfo_subject", subject),
        make_field("muc#roominfo_subjectmod", config.change_subject, type="boolean"),
        make_field("muc#roomconfig_roomname", config.name),
        make_field("muc#roomconfig_changesubject", config.change_subject, type="boolean"),
        make_field("muc#roomconfig_allowinvites", config.allow_invites, type="boolean"),
        make_field("muc#roomconfig_allowpm", config.allow_pms),
        make_field("muc#roomconfig_whois", config.whois),
        make_field("muc#maxhistoryfetch", str(config.history_length)),
    ]
    if config.language:
        fields.append(make_field("muc#roominfo_lang", config.language))
    if avatar_hash:
        fields.append(make_field("muc#roominfo_avatarhash", [avatar_hash], type="text-multi"))
    return Form.build("result", fields, form_type=ns.MUC_ROOMINFO)
