"""XEP-0004 data forms (with XEP-0068 FORM_TYPE and XEP-0128 disco extensions): parse what
peers send, refuse what is malformed with a bad-request naming the field, build our own."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import (
    FORM_TYPE,
    Field,
    Form,
    FormError,
    Option,
    add_extended_info,
    extended_info,
    find_form,
    make_field,
    parse_form,
)
from xmppd.jid import parse_jid
from xmppd.xml.stored import stanza_from_text

PUBSUB_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


def xml(text: str) -> domish.Element:
    element = stanza_from_text(text)
    assert element is not None, text
    return element


def form(body: str, type: str = "submit") -> Form:
    return parse_form(xml(f"<x xmlns='jabber:x:data' type='{type}'>{body}</x>"))


def rejected(body: str, type: str = "submit") -> FormError:
    with pytest.raises(FormError) as caught:
        form(body, type)
    return caught.value


# XEP-0004 §6.1 (trimmed): a configuration form as a bot service sends it.
CONFIG_FORM = """
<x xmlns='jabber:x:data' type='form'>
  <title>Bot Configuration</title>
  <instructions>Fill out this form to configure your new bot!</instructions>
  <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>
  <field type='fixed'><value>Section 1: Bot Info</value></field>
  <field type='text-single' label='The name of your bot' var='botname'/>
  <field type='text-multi' label='Helpful description of your bot' var='description'/>
  <field type='boolean' label='Public bot?' var='public'><required/></field>
  <field type='text-private' label='Password for special access' var='password'/>
  <field type='list-multi' label='What features will the bot support?' var='features'>
    <option label='Contests'><value>contests</value></option>
    <option label='News'><value>news</value></option>
    <option label='Polls'><value>polls</value></option>
    <value>news</value><value>search</value>
  </field>
  <field type='list-single' label='Maximum number of subscribers' var='maxsubs'>
    <value>20</value>
    <option label='10'><value>10</value></option>
    <option label='20'><value>20</value></option>
  </field>
  <field type='jid-multi' label='People to invite' var='invitelist'>
    <desc>Tell all your friends about your new bot!</desc>
  </field>
</x>"""


# -- parsing


def test_parse_form_keeps_everything_in_document_order():
    parsed = parse_form(xml(CONFIG_FORM))
    assert parsed.type == "form"
    assert parsed.title == "Bot Configuration"
    assert parsed.instructions == ("Fill out this form to configure your new bot!",)
    assert parsed.form_type == "jabber:bot"
    assert [f.var for f in parsed.field_list] == [
        FORM_TYPE, None, "botname", "description", "public", "password", "features",
        "maxsubs", "invitelist"]
    assert parsed.field_list[1].values == ("Section 1: Bot Info",)
    assert parsed.fields["public"].required and not parsed.fields["botname"].required
    assert parsed.fields["features"].options == (
        Option("contests", "Contests"), Option("news", "News"), Option("polls", "Polls"))
    assert parsed.fields["features"].values == ("news", "search")
    assert parsed.fields["maxsubs"].label == "Maximum number of subscribers"
    assert parsed.fields["invitelist"].desc == "Tell all your friends about your new bot!"
    assert "botname" in parsed and "nope" not in parsed


def test_a_submitted_form_reads_as_typed_values():
    submitted = form("""
      <field var='FORM_TYPE'><value>jabber:bot</value></field>
      <field var='botname'><value>The Jabber Google Bot</value></field>
      <field var='description'><value>one</value><value>two</value></field>
      <field var='public'><value>0</value></field>
      <field var='features'><value>news</value><value>search</value></field>
      <field var='maxsubs'><value>20</value></field>
      <field var='invitelist'><value>juliet@Capulet.lit</value><value>juliet@capulet.lit</value>
        <value>benvolio@montague.net/x</value></field>""")
    # XEP-0068 §7: an untyped FORM_TYPE in a submitted form is the FORM_TYPE.
    assert submitted.form_type == "jabber:bot"
    submitted.expect_form_type("jabber:bot")
    assert submitted.get_text("botname") == "The Jabber Google Bot"
    assert submitted.get_values("description") == ("one", "two")
    assert submitted.get_bool("public") is False
    assert submitted.get_choices("features", {"news", "search", "polls"}) == ("news", "search")
    assert submitted.get_int("maxsubs", minimum=10, maximum=50) == 20
    assert submitted.get_choice("maxsubs", {"10", "20"}) == "20"
    # XEP-0004 §3.3: duplicate JIDs in a jid-multi are ignored, once prepared.
    assert submitted.get_jids("invitelist") == (
        parse_jid("juliet@capulet.lit"), parse_jid("benvolio@montague.net/x"))


@pytest.mark.parametrize(("text", "expected"),
                         [("1", True), ("true", True), ("0", False), ("false", False)])
def test_booleans_take_the_four_spellings(text, expected):
    parsed = form(f"<field var='b' type='boolean'><value>{text}</value></field>")
    assert parsed.get_bool("b") is expected


def test_absent_and_empty_fields_give_the_default():
    parsed = form("<field var='empty'/><field var='blank'><value/></field>")
    for var in ("missing", "empty", "blank"):
        assert parsed.get_bool(var, True) is True
        assert parsed.get_int(var, 7) == 7
        assert parsed.get_choice(var, {"a"}, "a") == "a"
        assert parsed.get_jid(var) is None
        assert parsed.get_jids(var) == ()
    assert parsed.get_text("missing", "d") == "d"
    # A field sent without a value is an explicit "unset" (XEP-0004 §3.6), not the default.
    assert parsed.get_text("empty", "d") == ""
    assert parsed.get_text("blank", "d") == ""


def test_get_jid_prepares_the_address():
    parsed = form("<field var='owner'><value>Romeo@Montague.lit</value></field>")
    assert parsed.get_jid("owner") == parse_jid("romeo@montague.lit")


def test_unknown_fields_are_kept_for_the_caller_to_judge():
    parsed = form(f"""<field var='FORM_TYPE' type='hidden'><value>{PUBSUB_OPTIONS}</value></field>
      <field var='pubsub#access_model'><value>presence</value></field>
      <field var='x-custom'><value>1</value></field>""")
    assert parsed.unknown_fields({"pubsub#access_model"}) == ["x-custom"]
    assert parsed.fields["x-custom"].values == ("1",)


def test_an_unknown_field_type_is_text_single():
    parsed = form("<field var='v' type='colour'><value>red</value></field>", type="form")
    assert parsed.fields["v"].type == "colour"
    assert parsed.get_text("v") == "red"
    assert rejected("<field var='v' type='colour'><value>a</value><value>b</value></field>",
                    type="form").field == "v"


def test_multi_item_results_are_read_as_a_table():
    parsed = form("""<reported><field var='name' label='Name' type='text-single'/>
      <field var='url' type='text-single'/></reported>
      <item><field var='name'><value>Comune di Verona</value></field>
        <field var='url'><value>http://www.comune.verona.it/</value></field></item>
      <item><field var='name'><value>Verona</value></field><field var='url'><value/></field></item>
      """, type="result")
    assert [f.var for f in parsed.reported] == ["name", "url"]
    assert [[f.values for f in row] for row in parsed.items] == [
        [("Comune di Verona",), ("http://www.comune.verona.it/",)], [("Verona",), ("",)]]


def test_cancel_form():
    assert form("", type="cancel") == Form("cancel")


def test_text_is_read_whole_and_unescaped():
    parsed = form("<field var='t'><value>a &amp; &lt;b&gt;</value></field>")
    assert parsed.get_text("t") == "a & <b>"


# -- XEP-0068 FORM_TYPE


def test_form_type_only_counts_when_hidden_in_form_and_result():
    for type in ("form", "result"):
        visible = form("<field var='FORM_TYPE' type='text-single'><value>urn:x</value></field>",
                       type=type)
        assert visible.form_type is None  # XEP-0068 §5.3: an ordinary text-single field
        assert visible.get_text(FORM_TYPE) == "urn:x"
        untyped = form("<field var='FORM_TYPE'><value>urn:x</value></field>", type=type)
        assert untyped.form_type is None
    assert form("<field var='a'/>").form_type is None


def test_expect_form_type_refuses_another_or_none():
    with pytest.raises(FormError, match="FORM_TYPE 'urn:other'") as caught:
        form("<field var='FORM_TYPE' type='hidden'><value>urn:other</value></field>"
             ).expect_form_type("urn:xmpp:mam:2")
    assert caught.value.condition == "bad-request" and caught.value.field == FORM_TYPE
    with pytest.raises(FormError, match="no FORM_TYPE"):
        form("").expect_form_type("urn:xmpp:mam:2")


def test_a_form_type_with_two_different_values_is_malformed():
    assert rejected("<field var='FORM_TYPE' type='hidden'><value>a</value><value>b</value>"
                    "</field>").field == FORM_TYPE
    assert rejected("<field var='FORM_TYPE' type='hidden'/>").field == FORM_TYPE
    same = form("<field var='FORM_TYPE' type='hidden'><value>a</value><value>a</value></field>")
    assert same.form_type == "a"


# -- malformed input: one exception type, bad-request, naming the field


@pytest.mark.parametrize(("body", "field", "words"), [
    ("<field type='text-single'/>", None, "needs a var"),
    ("<field/>", None, "needs a var"),
    ("<field var='a'/><field var='a'/>", "a", "appears twice"),
    ("<field var='a' type='text-single'><value>1</value><value>2</value></field>", "a",
     "takes one value"),
    ("<field var='a' type='list-single'><value>1</value><value>2</value></field>", "a",
     "takes one value"),
    ("<field var='b' type='boolean'><value>yes</value></field>", "b", "boolean"),
    ("<field var='b' type='boolean'><value>True</value></field>", "b", "boolean"),
    ("<field var='j' type='jid-single'><value>@example.com</value></field>", "j", "bad JID"),
    ("<field var='j' type='jid-multi'><value>a@b</value><value>a@b@c/</value></field>", "j",
     "bad JID"),
    ("<field var='t' type='text-single'><option><value>x</value></option></field>", "t",
     "cannot have options"),
    ("<field var='l' type='list-single'><option label='x'/></field>", "l", "exactly one value"),
    ("<field var='l' type='list-multi'><option><value>x</value><value>y</value></option>"
     "</field>", "l", "exactly one value"),
    ("<field var='l' type='list-multi'><option><value>x</value></option>"
     "<option><value>x</value></option></field>", "l", "same option twice"),
    ("<field var='d'><desc>a</desc><desc>b</desc></field>", "d", "more than one <desc/>"),
])
def test_malformed_fields_are_bad_requests_naming_the_field(body, field, words):
    error = rejected(body)
    assert isinstance(error, StanzaError)
    assert error.condition == "bad-request" and error.type == "modify"
    assert error.field == field
    assert words in error.text
    if field is not None:
        assert f"'{field}'" in error.text


def test_an_untyped_field_in_a_form_is_text_single():
    assert rejected("<field var='a'><value>1</value><value>2</value></field>",
                    type="form").field == "a"
    # In a submission the type comes from context, so only the getter can tell.
    submitted = form("<field var='a'><value>1</value><value>2</value></field>")
    with pytest.raises(FormError, match="'a' takes one value"):
        submitted.get_text("a")


@pytest.mark.parametrize("text", [
    "<x xmlns='jabber:x:data'/>",
    "<x xmlns='jabber:x:data' type='error'/>",
    "<x xmlns='jabber:x:data' type='Submit'/>",
    "<x xmlns='jabber:x:oob' type='submit'/>",
    "<query xmlns='jabber:x:data' type='submit'/>",
    "<x xmlns='jabber:x:data' type='form'><title>a</title><title>b</title></x>",
    "<x xmlns='jabber:x:data' type='result'><reported/><reported/></x>",
    "<x xmlns='jabber:x:data' type='result'><item><field var='a'/><field var='a'/></item></x>",
])
def test_malformed_forms_are_bad_requests(text):
    with pytest.raises(FormError) as caught:
        parse_form(xml(text))
    assert caught.value.condition == "bad-request"


@pytest.mark.parametrize(("value", "words"), [
    ("ten", "is an integer, not 'ten'"),
    ("1.5", "is an integer"),
    ("\u0663", "is an integer"),  # ARABIC-INDIC DIGIT THREE: int() would take it
    ("1_000", "is an integer"),
    (" 7", "is an integer"),
    ("9" * 40, "is an integer"),
    ("0", "from 1 up to 100, not 0"),
    ("101", "from 1 up to 100, not 101"),
])
def test_get_int_refuses_non_integers_and_out_of_bounds(value, words):
    parsed = form(f"<field var='pubsub#max_items'><value>{value}</value></field>")
    with pytest.raises(FormError, match=words) as caught:
        parsed.get_int("pubsub#max_items", minimum=1, maximum=100)
    assert caught.value.field == "pubsub#max_items"
    assert "'pubsub#max_items'" in caught.value.text


def test_get_int_with_one_bound_and_signs():
    parsed = form("<field var='n'><value>-5</value></field><field var='p'><value>+5</value>"
                  "</field>")
    assert parsed.get_int("n") == -5 and parsed.get_int("p") == 5
    with pytest.raises(FormError, match="from 0, not -5"):
        parsed.get_int("n", minimum=0)
    with pytest.raises(FormError, match="up to 4, not 5"):
        parsed.get_int("p", maximum=4)


def test_typed_getters_refuse_bad_values_in_untyped_fields():
    parsed = form("<field var='b'><value>maybe</value></field>"
                  "<field var='c'><value>open</value><value>roster</value></field>"
                  "<field var='j'><value>not a jid@</value></field>")
    with pytest.raises(FormError, match="'b' is a boolean"):
        parsed.get_bool("b")
    with pytest.raises(FormError, match="'c' takes one value"):
        parsed.get_choice("c", {"open", "roster"})
    with pytest.raises(FormError, match="'c' is one of open, whitelist, not 'roster'"):
        parsed.get_choices("c", {"open", "whitelist"})
    with pytest.raises(FormError, match="'j' holds a bad JID"):
        parsed.get_jid("j")
    with pytest.raises(FormError, match="'j' holds a bad JID"):
        parsed.get_jids("j")


def test_a_caller_can_answer_with_another_condition():
    error = FormError("field 'x' is too big", "x", condition="not-acceptable")
    assert error.condition == "not-acceptable" and error.type == "modify"
    with pytest.raises(ValueError):
        FormError("nonsense", condition="not-a-condition")


# -- building


def test_build_a_form_with_labels_options_and_defaults_and_read_it_back():
    built = Form.build("form", [
        make_field("pubsub#title", "Princely Musings", type="text-single", label="A title"),
        make_field("pubsub#deliver_payloads", True, type="boolean", required=True,
                   desc="Deliver payloads with event notifications"),
        make_field("pubsub#max_items", 10, type="text-single"),
        make_field("pubsub#access_model", "open", type="list-single",
                   options=[("open", "Anyone"), "presence", Option("roster", "Roster groups")]),
        make_field("pubsub#contact", [parse_jid("hamlet@denmark.lit"), "horatio@denmark.lit"],
                   type="jid-multi"),
        make_field(None, "Notification options", type="fixed"),
    ], form_type="http://jabber.org/protocol/pubsub#node_config", title="Configure",
        instructions=["Fill it in"])
    element = built.to_element()
    assert (element.uri, element.name, element["type"]) == (ns.DATA_FORMS, "x", "form")
    back = parse_form(xml(element.toXml()))
    assert back == built
    assert back.form_type == "http://jabber.org/protocol/pubsub#node_config"
    assert back.field_list[0] == Field(FORM_TYPE, "hidden",
                                       ("http://jabber.org/protocol/pubsub#node_config",))
    assert back.get_bool("pubsub#deliver_payloads") is True
    assert back.get_int("pubsub#max_items") == 10
    assert back.fields["pubsub#access_model"].options == (
        Option("open", "Anyone"), Option("presence"), Option("roster", "Roster groups"))
    assert back.get_jids("pubsub#contact") == (parse_jid("hamlet@denmark.lit"),
                                               parse_jid("horatio@denmark.lit"))
    assert back.fields["pubsub#deliver_payloads"].required
    assert back.field_list[-1].var is None


def test_build_a_result_form():
    built = Form.build("result", [make_field("count", 3), make_field("flag", False)],
                       form_type="urn:example")
    element = built.to_element()
    fields = list(element.elements())
    assert [f.getAttribute("var") for f in fields] == [FORM_TYPE, "count", "flag"]
    assert [str(next(f.elements())) for f in fields] == ["urn:example", "3", "0"]
    assert not fields[1].hasAttribute("type")


def test_build_refuses_programming_errors():
    with pytest.raises(ValueError):
        Form.build("nonsense")
    with pytest.raises(ValueError):
        Form.build("form", [make_field("a"), make_field("a")])
    with pytest.raises(ValueError):
        Form.build("result", [make_field(FORM_TYPE, "x")], form_type="y")


def test_find_form_picks_by_form_type():
    query = xml(f"""<query xmlns='urn:xmpp:mam:2'><other xmlns='urn:x'/>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>{PUBSUB_OPTIONS}</value></field></x>
    </query>""")
    assert find_form(query).form_type == "urn:a"
    assert find_form(query, PUBSUB_OPTIONS).form_type == PUBSUB_OPTIONS
    assert find_form(query, "urn:none") is None
    assert find_form(xml("<query xmlns='urn:xmpp:mam:2'/>")) is None


# -- XEP-0128


DISCO_SERVER = """<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='server' type='im' name='shakespeare.lit jabber server'/>
  <feature var='jabber:iq:version'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='os'><value>Windows</value></field>
    <field var='os_version'><value>XP</value></field>
    <field var='software'><value>Exodus</value></field>
    <field var='software_version'><value>0.9.1</value></field>
  </x>
  <x xmlns='jabber:x:data' type='result'><field var='x'><value>y</value></field></x>
</query>"""


def test_extended_info_reads_the_result_forms_of_disco_info():
    forms = extended_info(xml(DISCO_SERVER))
    assert [f.form_type for f in forms] == ["urn:xmpp:dataforms:softwareinfo", None]
    assert forms[0].get_text("software_version") == "0.9.1"


def test_extended_info_refuses_a_form_that_is_not_a_result():
    with pytest.raises(FormError, match="type result, not 'form'"):
        extended_info(xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                          "<x xmlns='jabber:x:data' type='form'/></query>"))


def test_add_extended_info_appends_a_hidden_form_type_result_form():
    query = domish.Element((ns.DISCO_INFO, "query"))
    add_extended_info(query, "http://jabber.org/network/serverinfo",
                      [make_field("abuse-addresses", ["mailto:abuse@shakespeare.lit"])])
    (parsed,) = extended_info(xml(query.toXml()))
    assert parsed.type == "result"
    assert parsed.form_type == "http://jabber.org/network/serverinfo"
    assert parsed.get_values("abuse-addresses") == ("mailto:abuse@shakespeare.lit",)


def test_error_texts_do_not_echo_huge_peer_values():
    huge = "x" * 5000
    parsed = form(f"<field var='{huge}'><value>{huge}</value></field>")
    with pytest.raises(FormError) as caught:
        parsed.get_bool(huge)
    assert caught.value.field == huge
    assert len(caught.value.text) < 200
