"""A stanza as the router sees it: the element plus its addresses, parsed once."""

from __future__ import annotations

import uuid

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import STANZA_ERROR_TYPES, StanzaError
from xmppd.jid import JID, InvalidJID, parse_jid

KINDS = frozenset(("iq", "message", "presence"))
IQ_TYPES = frozenset(("get", "set", "result", "error"))
MESSAGE_TYPES = frozenset(("normal", "chat", "groupchat", "headline", "error"))
PRESENCE_TYPES = frozenset(
    ("available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
     "probe", "error")
)
_DEFAULT_TYPES = {"message": "normal", "presence": "available"}
_VALID_TYPES = {"iq": IQ_TYPES, "message": MESSAGE_TYPES, "presence": PRESENCE_TYPES}


class Stanza:
    """One stanza with its addresses parsed and type defaulted (RFC 6120 §8, RFC 6121)."""

    __slots__ = ("element", "kind", "type", "sender", "recipient")

    def __init__(self, element: domish.Element, sender: JID | None, recipient: JID | None) -> None:
        self.element = element
        self.kind = element.name
        self.type = element.getAttribute("type") or _DEFAULT_TYPES.get(self.kind, "")
        self.sender = sender
        self.recipient = recipient

    @property
    def id(self) -> str | None:
        return self.element.getAttribute("id")

    def payload(self) -> domish.Element | None:
        """The first child element: the payload that decides an IQ's handler."""
        for child in self.element.elements():
            if child.name != "error":
                return child
        return None

    def __repr__(self) -> str:
        return f"<Stanza {self.kind}/{self.type} from={self.sender} to={self.recipient}>"


def parse_address(element: domish.Element, attribute: str) -> JID | None:
    """Parse the ``to`` or ``from`` attribute; a malformed one is ``jid-malformed``."""
    value = element.getAttribute(attribute)
    if value is None:
        return None
    try:
        return parse_jid(value)
    except InvalidJID as error:
        raise StanzaError("jid-malformed", f"bad '{attribute}' address: {error}") from None


def check_type(stanza: Stanza) -> None:
    """An unknown stanza type, or an IQ without one, is ``bad-request`` (RFC 6120 §8.2.3);
    so is an IQ without an 'id' (§8.1.3), and an IQ get or set without exactly one payload
    element (§8.2.3: nothing to answer, or two questions in one)."""
    if stanza.type not in _VALID_TYPES[stanza.kind]:
        raise StanzaError("bad-request", f"invalid {stanza.kind} type {stanza.type!r}")
    if stanza.kind != "iq":
        return
    if not stanza.element.getAttribute("id"):
        raise StanzaError("bad-request", "an IQ needs an 'id'")
    if stanza.type in ("get", "set"):
        payloads = sum(1 for _ in stanza.element.elements())
        if payloads != 1:
            raise StanzaError("bad-request",
                              f"an IQ {stanza.type} carries one payload element, not {payloads}")


def make_iq_result(request: domish.Element, payload=None) -> domish.Element:
    """The ``result`` answer to an IQ request, with the payload (an element or a list)."""
    reply = domish.Element((None, "iq"))
    reply["type"] = "result"
    if request.hasAttribute("id"):
        reply["id"] = request["id"]
    if request.hasAttribute("from"):
        reply["to"] = request["from"]
    if request.hasAttribute("to"):
        reply["from"] = request["to"]
    if payload is not None:
        for child in payload if isinstance(payload, list | tuple) else (payload,):
            reply.addChild(child)
    return reply


def make_iq_set(sender: JID, recipient: JID, payload: domish.Element,
                id_prefix: str) -> domish.Element:
    """An IQ set we send on our own, with a fresh id that says who sent it (``id_prefix``)."""
    iq = domish.Element((None, "iq"))
    iq["type"] = "set"
    iq["id"] = f"{id_prefix}-{uuid.uuid4().hex[:12]}"
    iq["from"] = sender.full()
    iq["to"] = recipient.full()
    iq.addChild(payload)
    return iq


def stanza_error(element: domish.Element) -> StanzaError:
    """The StanzaError an error stanza carries (RFC 6120 §8.3.2), for whoever waits on the
    request it answers; a condition we do not know is 'undefined-condition'."""
    for error in element.elements():
        if error.name != "error":
            continue
        condition, text = "undefined-condition", None
        for child in error.elements():
            if child.uri != ns.STANZA_ERRORS:
                continue
            if child.name == "text":
                text = str(child)
            elif child.name in STANZA_ERROR_TYPES:
                condition = child.name
        return StanzaError(condition, text, error.getAttribute("type"))
    return StanzaError("undefined-condition", "an error stanza without <error/>")
