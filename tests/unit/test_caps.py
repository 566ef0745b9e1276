"""XEP-0115 entity capabilities: the verification string and hash from the XEP's own examples,
§5.4 processing of a received disco#info, and the <c/> element for presence and features."""

from __future__ import annotations

import base64
import hashlib

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import (
    Caps,
    DiscoInfo,
    Identity,
    find_caps,
    parse_caps,
    parse_disco_info,
    verify,
)
from xmppd.errors import StanzaError
from xmppd.forms import Form, make_field
from xmppd.xml.stored import stanza_from_text

FEATURES = ("http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc")


def xml(text: str) -> domish.Element:
    element = stanza_from_text(text)
    assert element is not None, text
    return element


def query(body: str) -> domish.Element:
    return xml(f"<query xmlns='{ns.DISCO_INFO}'>{body}</query>")


def features_xml(features=FEATURES) -> str:
    return "".join(f"<feature var='{var}'/>" for var in features)


def refused(body: str) -> StanzaError:
    with pytest.raises(StanzaError) as caught:
        parse_disco_info(query(body))
    assert caught.value.condition == "bad-request"
    return caught.value


# XEP-0115 §5.2, in the order a client might send it (not sorted).
SIMPLE = ("<identity category='client' type='pc' name='Exodus 0.9.1'/>"
          + features_xml(reversed(FEATURES)))

# XEP-0115 §5.3, as printed.
COMPLEX = f"""
    <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
    <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
    {features_xml()}
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:dataforms:softwareinfo</value>
      </field>
      <field var='ip_version' type='text-multi' >
        <value>ipv4</value>
        <value>ipv6</value>
      </field>
      <field var='os'>
        <value>Mac</value>
      </field>
      <field var='os_version'>
        <value>10.5.1</value>
      </field>
      <field var='software'>
        <value>Psi</value>
      </field>
      <field var='software_version'>
        <value>0.11</value>
      </field>
    </x>"""


# -- §5.2 and §5.3


def test_simple_generation_example():
    info = parse_disco_info(query(SIMPLE))
    assert info.verification_string() == (
        "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<"
        "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
        "http://jabber.org/protocol/muc<")
    assert info.ver() == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_complex_generation_example():
    info = parse_disco_info(query(COMPLEX))
    assert info.verification_string() == (
        "client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<"
        "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
        "http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<"
        "ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<")
    assert info.ver() == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    assert verify(Caps("http://psi-im.org", "q07IKJEyjvHSyhy//CH0CxmKi8w="), info)


def test_the_same_info_built_locally_hashes_the_same():
    info = DiscoInfo(
        identities=(Identity("client", "pc", "en", "Psi 0.11"),
                    Identity("client", "pc", "el", "\u03a8 0.11")),
        features=FEATURES,
        forms=(Form.build("result", [
            make_field("software_version", "0.11"), make_field("software", "Psi"),
            make_field("os_version", "10.5.1"), make_field("os", "Mac"),
            make_field("ip_version", ["ipv6", "ipv4"], type="text-multi"),
        ], form_type="urn:xmpp:dataforms:softwareinfo"),))
    assert info.ver() == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    # And it survives a trip through XML, identities with xml:lang included.
    element = domish.Element((ns.DISCO_INFO, "query"))
    for identity in info.identities:
        element.addChild(identity.to_element())
    for feature in info.features:
        element.addElement("feature")["var"] = feature
    element.addChild(info.forms[0].to_element())
    assert parse_disco_info(element).ver() == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    assert parse_disco_info(xml(element.toXml())).ver() == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_other_hashes():
    info = parse_disco_info(query(SIMPLE))
    text = info.verification_string().encode()
    for name, algorithm in (("sha-256", hashlib.sha256), ("sha-512", hashlib.sha512)):
        assert info.ver(name) == base64.b64encode(algorithm(text).digest()).decode()
        assert verify(Caps("n", info.ver(name), name), info)
    with pytest.raises(ValueError):
        info.ver("md5")


def test_sorting_is_by_octets_and_by_category_then_type():
    info = DiscoInfo(
        identities=(Identity("client", "pc"), Identity("a-b", "x"), Identity("a", "z"),
                    Identity("client", "bot", "", "\u00e9"), Identity("client", "bot", "", "Z")),
        features=("\u00e9", "b", "B", "a"))
    # Category before type ("a" < "a-b" as fields, though "a/" > "a-" as text); octets,
    # so upper case before lower and "é" (C3 A9) after ASCII.
    assert info.verification_string() == (
        "a/z//<a-b/x//<client/bot//Z<client/bot//\u00e9<client/pc//<B<a<b<\u00e9<")


def test_forms_without_a_hidden_form_type_are_left_out():
    base = parse_disco_info(query(SIMPLE))
    extra = SIMPLE + ("<x xmlns='jabber:x:data' type='result'><field var='a'><value>b</value>"
                      "</field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'"
                      " type='text-single'><value>urn:x</value></field></x>")
    with_forms = parse_disco_info(query(extra))
    assert len(with_forms.forms) == 2
    assert with_forms.ver() == base.ver() == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_forms_are_sorted_by_form_type():
    form_b = "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>" \
             "<value>urn:b</value></field><field var='v'><value>2</value></field></x>"
    form_a = form_b.replace("urn:b", "urn:a").replace(">2<", ">1<")
    info = parse_disco_info(query(SIMPLE + form_b + form_a))
    assert info.verification_string().endswith("muc<urn:a<v<1<urn:b<v<2<")


# -- §5.4 processing


@pytest.mark.parametrize(("body", "words"), [
    ("<identity category='client' type='pc'/><identity category='client' type='pc'/>",
     "identity 'client/pc//' twice"),
    ("<identity category='client' type='pc' xml:lang='en' name='a'/>"
     "<identity category='client' type='pc' xml:lang='en' name='a'/>", "identity"),
    ("<feature var='urn:a'/><feature var='urn:a'/>", "feature 'urn:a' twice"),
    ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
     "<value>urn:a</value></field></x><x xmlns='jabber:x:data' type='result'>"
     "<field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>",
     "FORM_TYPE 'urn:a' twice"),
    ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
     "<value>urn:a</value><value>urn:b</value></field></x>", "FORM_TYPE"),
    ("<identity type='pc'/>", "category and a type"),
    ("<identity category='client'/>", "category and a type"),
    ("<feature/>", "needs a var"),
    ("<x xmlns='jabber:x:data' type='form'/>", "type result"),
    ("<x xmlns='jabber:x:data' type='result'><field var='a'/><field var='a'/></x>", "twice"),
])
def test_ill_formed_disco_info_is_refused(body, words):
    assert words in refused(body).text


def test_identities_differing_only_by_lang_or_name_are_fine():
    info = parse_disco_info(query(
        "<identity category='client' type='pc' xml:lang='en'/>"
        "<identity category='client' type='pc' xml:lang='de'/>"
        "<identity category='client' type='pc' name='x'/>"))
    assert len(info.identities) == 3


def test_not_a_disco_info_query():
    with pytest.raises(StanzaError, match="bad-request"):
        parse_disco_info(xml("<query xmlns='http://jabber.org/protocol/disco#items'/>"))


def test_foreign_children_are_ignored():
    info = parse_disco_info(query(SIMPLE + "<feature xmlns='urn:other' var='x'/>"
                                           "<y xmlns='urn:y'/>"))
    assert info.ver() == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_verify():
    disco = query(SIMPLE)
    good = Caps("http://code.google.com/p/exodus", "QgayPKawpkPSDYmwT/WM94uAlu0=")
    assert verify(good, disco)
    assert not verify(Caps(good.node, "66/0NaeaBKkwk85efJTGmU47vXI="), disco)
    # An unknown or legacy hash cannot be checked: keep the features for that JID only.
    assert not verify(Caps(good.node, good.ver, "sha-1024"), disco)
    assert not verify(Caps(good.node, good.ver, None), disco)
    assert not verify(Caps(good.node, good.ver, "SHA-1"), disco)
    with pytest.raises(StanzaError):
        verify(good, query(SIMPLE + "<feature var='urn:a'/><feature var='urn:a'/>"))


def test_a_separator_inside_a_string_is_never_trusted_for_other_jids():
    # The §9.3 trick: one feature "a<b" hashes like the two features "a" and "b".
    honest = DiscoInfo((Identity("client", "pc"),), ("a", "b"))
    forged = DiscoInfo((Identity("client", "pc"),), ("a<b",))
    assert honest.ver() == forged.ver()
    assert verify(Caps("n", honest.ver()), honest)
    assert forged.is_ambiguous() and not verify(Caps("n", honest.ver()), forged)
    named = DiscoInfo((Identity("client", "pc", "", "x<y"),), ())
    assert named.is_ambiguous()
    in_form = DiscoInfo((), (), (Form.build("result", [make_field("v", "1<2")],
                                            form_type="urn:x"),))
    assert in_form.is_ambiguous()
    assert not honest.is_ambiguous()


# -- <c/>


def test_caps_element_for_presence_and_stream_features():
    info = parse_disco_info(query(SIMPLE))
    caps = Caps.of(info, "http://code.google.com/p/exodus")
    assert caps == Caps("http://code.google.com/p/exodus", "QgayPKawpkPSDYmwT/WM94uAlu0=",
                        "sha-1")
    assert caps.to_element().toXml() == (
        f"<c xmlns='{ns.CAPS}' hash='sha-1' node='http://code.google.com/p/exodus' "
        "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>")
    assert caps.disco_node == "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0="
    presence = xml(f"<presence><c xmlns='{ns.CAPS}' hash='sha-1' "
                   "node='http://code.google.com/p/exodus' "
                   "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>")
    assert find_caps(presence) == caps
    features = xml(f"<stream:features xmlns:stream='{ns.STREAMS}'><c xmlns='{ns.CAPS}' "
                   "hash='sha-1' node='http://jabberd.org' ver='ItBTI0XLDFvVxZ72NQElAzKS9sU='/>"
                   "</stream:features>")
    assert find_caps(features) == Caps("http://jabberd.org", "ItBTI0XLDFvVxZ72NQElAzKS9sU=")
    assert find_caps(xml("<presence/>")) is None


def test_legacy_caps():
    legacy = parse_caps(xml(f"<c xmlns='{ns.CAPS}' node='http://psi-im.org/caps' ver='0.9' "
                            "ext='ftrans xhtml'/>"))
    assert legacy.is_legacy and not legacy.is_verifiable
    assert legacy.ext == "ftrans xhtml"
    assert legacy.to_element().toXml() == (
        f"<c xmlns='{ns.CAPS}' node='http://psi-im.org/caps' ver='0.9' ext='ftrans xhtml'/>")


@pytest.mark.parametrize("text", [
    f"<c xmlns='{ns.CAPS}' hash='sha-1' ver='x'/>",
    f"<c xmlns='{ns.CAPS}' hash='sha-1' node='n'/>",
    f"<c xmlns='{ns.CAPS}' hash='sha-1' node='' ver='x'/>",
    "<c xmlns='urn:other' hash='sha-1' node='n' ver='x'/>",
])
def test_ill_formed_caps_are_refused(text):
    with pytest.raises(StanzaError) as caught:
        parse_caps(xml(text))
    assert caught.value.condition == "bad-request"
