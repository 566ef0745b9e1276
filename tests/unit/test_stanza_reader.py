"""xmppd.xml.stored.StanzaReader: one parser kept open for many stanzas reads each as
stanza_from_text does, refuses what is not exactly one well-formed stanza (as the network's
restricted parser does), and goes on reading after a refusal."""

from __future__ import annotations

from xmppd.xml.stored import StanzaReader, stanza_from_text

MESSAGE = ("<message xmlns='jabber:client' to='bob@localhost/a b' type='chat' id='1'>"
           "<body>one &amp; two &#233;</body><x xmlns='urn:x' y='&lt;'/></message>")


def test_reads_each_stanza_as_stanza_from_text_does():
    reader = StanzaReader()
    for _ in range(3):
        element = reader.read(MESSAGE)
        assert element.toXml() == stanza_from_text(MESSAGE).toXml()
        assert element.parent is None
    iq = reader.read("<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert (iq.name, iq.uri, iq["id"]) == ("iq", "jabber:client", "2")


def test_refuses_what_is_not_one_stanza_and_recovers():
    reader = StanzaReader(max_stanza_size=1000)
    for junk in ("", "text", "<message>", "<a/><b/>", "</stream:stream>", "<x>&foo;</x>",
                 "<!-- c --><a/>", "<?pi x?><a/>", "<!DOCTYPE a><a/>",
                 "<message><body>" + "a" * 2000 + "</body></message>"):
        assert reader.read(junk) is None, junk
        assert reader.read(MESSAGE) is not None, f"not read after {junk!r}"
    # many stanzas well under the limit never add up to it
    assert all(reader.read("<m>" + "a" * 500 + "</m>") is not None for _ in range(50))
