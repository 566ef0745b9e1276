"""XML namespaces, in one place: a bare string used as a namespace does not pass review."""

STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SERVER = "jabber:server"
XML = "http://www.w3.org/XML/1998/namespace"

STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440 channel-binding types

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
PING = "urn:xmpp:ping"
VERSION = "jabber:iq:version"
ROSTER = "jabber:iq:roster"
DELAY = "urn:xmpp:delay"
MSG_OFFLINE = "msgoffline"  # XEP-0160 disco feature: offline messages are kept
ROSTER_VER = "urn:xmpp:features:rosterver"  # RFC 6121 §2.6.1 stream feature
PRE_APPROVAL = "urn:xmpp:features:pre-approval"  # RFC 6121 §3.4.1 stream feature
DIALBACK = "jabber:server:dialback"  # XEP-0220 <db:result/> and <db:verify/>
DIALBACK_FEATURE = "urn:xmpp:features:dialback"  # XEP-0220 §2.1 stream feature
BIDI = "urn:xmpp:bidi"  # XEP-0288 <bidi/> request
BIDI_FEATURE = "urn:xmpp:features:bidi"  # XEP-0288 stream feature
SERVER_PRESENCE = "urn:xmpp:server-presence"  # XEP-0267 disco feature: server buddies
INCIDENT = "urn:xmpp:incident:2"  # XEP-0268 incident reports
IODEF = "urn:ietf:params:xml:ns:iodef-1.0"  # RFC 5070 incident documents, inside XEP-0268
XMPP_JID = "urn:xmpp:jid:0"  # XEP-0268 <jid/>: an XMPP address in IODEF AdditionalData
HINTS = "urn:xmpp:hints"  # XEP-0334 message processing hints (<store/>, <no-store/>)
CHAT_STATES = "http://jabber.org/protocol/chatstates"  # XEP-0085
OMEMO = "urn:xmpp:omemo:2"  # XEP-0384 OMEMO
OMEMO_LEGACY = "eu.siacs.conversations.axolotl"  # XEP-0384 0.3, still the most deployed
OPENPGP = "urn:xmpp:openpgp:0"  # XEP-0373
LEGACY_PGP = "jabber:x:encrypted"  # XEP-0027
MUC_USER = "http://jabber.org/protocol/muc#user"  # XEP-0045 (mediated invitations)
X_CONFERENCE = "jabber:x:conference"  # XEP-0249 direct invitations
DATA_FORMS = "jabber:x:data"  # XEP-0004 data forms
RSM = "http://jabber.org/protocol/rsm"  # XEP-0059 result set management
CAPS = "http://jabber.org/protocol/caps"  # XEP-0115 entity capabilities (<c/>, stream feature)
