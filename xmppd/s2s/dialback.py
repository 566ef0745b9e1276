"""Server dialback (XEP-0220) elements: build them and read them, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.jid import InvalidJID, prepare_domain


@dataclass(frozen=True)
class DialbackElement:
    """A <db:result/> or <db:verify/>, with its domains prepared."""

    name: str  # "result" or "verify"
    sender: str  # 'from' domain
    receiver: str  # 'to' domain
    type: str | None  # None (a request), "valid", "invalid" or "error"
    key: str  # the text: the dialback key on requests
    id: str | None  # db:verify carries the stream id


def read(element: domish.Element) -> DialbackElement:
    """A dialback element from the wire; a missing or bad domain is improper-addressing."""
    try:
        sender = prepare_domain(element.getAttribute("from") or "")
        receiver = prepare_domain(element.getAttribute("to") or "")
    except (InvalidJID, ValueError):
        raise StreamError("improper-addressing", "dialback needs valid 'from' and 'to'") from None
    kind = element.getAttribute("type")
    if kind not in (None, "valid", "invalid", "error"):
        raise StreamError("bad-format", f"unknown dialback type {kind!r}")
    return DialbackElement(element.name, sender, receiver, kind, str(element).strip(),
                           element.getAttribute("id"))


def request(name: str, sender: str, receiver: str, key: str,
            stream_id: str | None = None) -> domish.Element:
    """<db:result/> (name 'result') or <db:verify/> (name 'verify') carrying a key."""
    element = domish.Element((ns.DIALBACK, name))
    element["from"], element["to"] = sender, receiver
    if stream_id is not None:
        element["id"] = stream_id
    element.addContent(key)
    return element


def answer(name: str, sender: str, receiver: str, valid: bool,
           stream_id: str | None = None) -> domish.Element:
    element = domish.Element((ns.DIALBACK, name))
    element["from"], element["to"] = sender, receiver
    element["type"] = "valid" if valid else "invalid"
    if stream_id is not None:
        element["id"] = stream_id
    return element


def error(name: str, sender: str, receiver: str, condition: str) -> domish.Element:
    """A dialback error (XEP-0220 §2.5): a stanza error inside the db element."""
    element = domish.Element((ns.DIALBACK, name))
    element["from"], element["to"], element["type"] = sender, receiver, "error"
    failure = element.addElement("error")
    failure["type"] = "cancel" if condition != "remote-server-timeout" else "wait"
    failure.addElement((ns.STANZA_ERRORS, condition))
    return element
