"""The owner's muc#roomconfig form both ways, the room's disco features and roominfo form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xmppd import ns
from xmppd.forms import Form, FormError, make_field
from xmppd.muc.config import RoomConfig, apply_form, config_form, room_features, roominfo_form


def submit(**values) -> Form:
    fields = [make_field(f"muc#roomconfig_{var}", value) for var, value in values.items()]
    return Form.build("submit", fields, form_type=ns.MUC_ROOMCONFIG)


def test_the_form_shows_every_standard_field_with_its_value():
    config = RoomConfig(name="Lounge", persistent=True, history_length=7)
    form = config_form(config, max_users=200, max_history=50)
    assert form.form_type == ns.MUC_ROOMCONFIG
    for var in ("roomname", "persistentroom", "publicroom", "membersonly", "moderatedroom",
                "passwordprotectedroom", "roomsecret", "maxusers", "whois", "allowpm",
                "changesubject", "historylength", "enablelogging"):
        assert f"muc#roomconfig_{var}" in form
    assert form.get_text("muc#roomconfig_roomname") == "Lounge"
    assert form.get_bool("muc#roomconfig_persistentroom") is True
    assert form.get_text("muc#roomconfig_historylength") == "7"


def test_submitted_values_change_only_what_they_name():
    config = apply_form(RoomConfig(name="old"), submit(membersonly=True, whois="anyone",
                                                       maxusers="30"), 200, 50)
    assert config == dataclasses.replace(RoomConfig(name="old"), members_only=True,
                                         whois="anyone", max_users=30)
    assert config.non_anonymous


def test_password_needs_a_secret_and_off_clears_it():
    with pytest.raises(FormError) as error:
        apply_form(RoomConfig(), submit(passwordprotectedroom=True), 200, 50)
    assert error.value.condition == "not-acceptable"
    on = apply_form(RoomConfig(), submit(passwordprotectedroom=True, roomsecret="x"), 200, 50)
    assert on.password == "x"
    assert apply_form(on, submit(passwordprotectedroom=False), 200, 50).password == ""


@pytest.mark.parametrize("values", [{"maxusers": "500"}, {"historylength": "51"},
                                    {"whois": "nobody"}, {"unknownfield": "1"},
                                    {"allowpm": "everyone"}])
def test_bad_values_are_refused_naming_the_field(values):
    with pytest.raises(FormError) as error:
        apply_form(RoomConfig(), submit(**values), 200, 50)
    assert error.value.condition == "bad-request"
    assert error.value.field == f"muc#roomconfig_{next(iter(values))}"


def test_presence_broadcast_roles():
    form = Form.build("submit", [make_field("muc#roomconfig_presencebroadcast",
                                            ["participant", "moderator"])],
                      form_type=ns.MUC_ROOMCONFIG)
    config = apply_form(RoomConfig(), form, 200, 50)
    assert config.presence_broadcast == ("moderator", "participant")
    assert RoomConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    bad = Form.build("submit", [make_field("muc#roomconfig_presencebroadcast", ["owner"])],
                     form_type=ns.MUC_ROOMCONFIG)
    with pytest.raises(FormError):
        apply_form(RoomConfig(), bad, 200, 50)


def test_a_form_or_result_type_is_not_a_submission():
    form = Form.build("form", [], form_type=ns.MUC_ROOMCONFIG)
    with pytest.raises(FormError):
        apply_form(RoomConfig(), form, 200, 50)


def test_features_reflect_the_config():
    assert set(room_features(RoomConfig())) == {
        "muc_temporary", "muc_public", "muc_open", "muc_unmoderated", "muc_unsecured",
        "muc_semianonymous"}
    assert set(room_features(RoomConfig(persistent=True, public=False, members_only=True,
                                        moderated=True, password="p", whois="anyone"))) == {
        "muc_persistent", "muc_hidden", "muc_membersonly", "muc_moderated",
        "muc_passwordprotected", "muc_nonanonymous"}


def test_roominfo_form():
    form = roominfo_form(RoomConfig(description="about"), 3, "topic", "abc")
    assert form.form_type == ns.MUC_ROOMINFO
    assert form.get_text("muc#roominfo_occupants") == "3"
    assert form.get_text("muc#roominfo_subject") == "topic"
    assert form.get_values("muc#roominfo_avatarhash") == ("abc",)


def test_persisted_dict_round_trip_ignores_unknown_keys():
    config = RoomConfig(name="n", enable_logging=True)
    assert RoomConfig.from_dict({**config.to_dict(), "gone": 1}) == config


def test_every_option_of_the_form_has_a_label():
    """profanity 0.13 prints an option's label, '(null)' when it has none (XEP-0045's own
    form labels every option); the values submitted are still the bare choices."""
    form = config_form(RoomConfig(), max_users=250, max_history=50)
    for field in form.fields.values():
        assert all(option.label for option in field.options), field
    labels = {option.value: option.label
              for option in form.fields["muc#roomconfig_allowpm"].options}
    assert labels == {"anyone": "Anyone", "participants": "Anyone with Voice",
                      "moderators": "Moderators Only", "none": "Nobody"}
    maxusers = [(o.value, o.label) for o in form.fields["muc#roomconfig_maxusers"].options]
    assert maxusers[-1] == ("250", "250")
    changed = apply_form(RoomConfig(), submit(allowpm="moderators", maxusers="20",
                                              presencebroadcast=["moderator"]),
                         max_users=250, max_history=50)
    assert (changed.allow_pms, changed.max_users, changed.presence_broadcast) == (
        "moderators", 20, ("moderator",))
