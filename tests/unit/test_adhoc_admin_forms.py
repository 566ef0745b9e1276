"""XEP-0133 forms as clients display them: profanity 0.13 prints a field's value only when
the field has a type, and an option's label ('(null)' without one). The counts are typed
text-single (as XEP-0133's field registry says) and the max_items options are labelled (as
in its examples); the chosen value is still checked against the bare choices."""

from __future__ import annotations

from twisted.internet import defer

from xmppd import ns
from xmppd.adhoc.admin import AdminCommands, _first, _max_items_form
from xmppd.adhoc.commands import Request
from xmppd.forms import Form, make_field
from xmppd.jid import parse_jid

REQUEST = Request(parse_jid("root@localhost/console"), parse_jid("localhost"))


class Accounts:
    def list_users(self, host: str):
        return defer.succeed(["alice@localhost", "bob@localhost"])


class Sessions:
    def all(self):
        return []


def fields(form: Form) -> dict:
    """var -> <field/> element of the form as sent."""
    element = form.to_element()
    return {field["var"]: field for field in element.elements(ns.DATA_FORMS, "field")}


def test_counts_are_typed_text_single_fields_with_their_value():
    commands = AdminCommands(Accounts(), Sessions(), send=None, motd_store=None,
                             admins=lambda: [], disabled=lambda: None)
    registered = []
    commands.registered_count(REQUEST, None).addCallback(registered.append)
    online = commands.online_count(REQUEST, None)
    for outcome, var, value in ((registered[0], "registeredusersnum", "2"),
                                (online, "onlineusersnum", "0")):
        field = fields(outcome.form)[var]
        assert field.getAttribute("type") == "text-single"
        assert [str(v) for v in field.elements(ns.DATA_FORMS, "value")] == [value]


def test_max_items_options_have_labels_and_the_choice_still_limits():
    field = fields(_max_items_form(REQUEST))["max_items"]
    options = list(field.elements(ns.DATA_FORMS, "option"))
    assert [(o.getAttribute("label"), str(next(o.elements(ns.DATA_FORMS, "value"))))
            for o in options] == [("25", "25"), ("50", "50"), ("75", "75"), ("100", "100"),
                                  ("150", "150"), ("200", "200"), ("None", "none")]
    submitted = Form.build("submit", [make_field("max_items", "25")])
    assert _first([str(n) for n in range(30)], submitted) == [str(n) for n in range(25)]
