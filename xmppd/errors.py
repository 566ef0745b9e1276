"""Stream and stanza errors (RFC 6120 §4.9 and §8.3) as exceptions that know their XML."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns

# RFC 6120 §8.3.3: the error type each defined condition takes by default.
STANZA_ERROR_TYPES = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

STREAM_ERROR_CONDITIONS = frozenset(
    """bad-format bad-namespace-prefix conflict connection-timeout host-gone host-unknown
    improper-addressing internal-server-error invalid-from invalid-namespace invalid-xml
    not-authorized not-well-formed policy-violation remote-connection-failed reset
    resource-constraint restricted-xml see-other-host system-shutdown undefined-condition
    unsupported-encoding unsupported-feature unsupported-stanza-type unsupported-version""".split()
)


class StreamError(Exception):
    """A condition that ends the whole stream (RFC 6120 §4.9)."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in STREAM_ERROR_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text

    def to_element(self) -> domish.Element:
        error = domish.Element((ns.STREAMS, "error"))
        error.addElement((ns.STREAM_ERRORS, self.condition))
        if self.text:
            error.addElement((ns.STREAM_ERRORS, "text"), content=self.text)
        return error


class StanzaError(Exception):
    """A condition that answers one stanza (RFC 6120 §8.3); the stream goes on."""

    def __init__(self, condition: str, text: str | None = None, type: str | None = None) -> None:
        if condition not in STANZA_ERROR_TYPES:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.type = type or STANZA_ERROR_TYPES[condition]

    def to_element(self, by: str | None = None) -> domish.Element:
        error = domish.Element((None, "error"))
        error["type"] = self.type
        if by:
            error["by"] = by
        error.addElement((ns.STANZA_ERRORS, self.condition))
        if self.text:
            error.addElement((ns.STANZA_ERRORS, "text"), content=self.text)
        return error

    def to_response(self, stanza: domish.Element, by: str | None = None) -> domish.Element:
        """The error reply to ``stanza``: addresses swapped, payload kept (RFC 6120 §8.3.1)."""
        reply = domish.Element((stanza.uri, stanza.name))
        for key in ("id", "xml:lang"):
            if stanza.hasAttribute(key):
                reply[key] = stanza[key]
        if stanza.hasAttribute("from"):
            reply["to"] = stanza["from"]
        if stanza.hasAttribute("to"):
            reply["from"] = stanza["to"]
        reply["type"] = "error"
        for child in stanza.elements():
            if child.name != "error":
                reply.addChild(child)
        reply.addChild(self.to_element(by))
        return reply


class SASLFailure(Exception):
    """A SASL <failure/> condition (RFC 6120 §6.5); the stream stays open for another try."""

    CONDITIONS = frozenset(
        """aborted account-disabled credentials-expired encryption-required incorrect-encoding
        invalid-authzid invalid-mechanism malformed-request mechanism-too-weak not-authorized
        temporary-auth-failure""".split()
    )

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in self.CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text

    def to_element(self) -> domish.Element:
        failure = domish.Element((ns.SASL, "failure"))
        failure.addElement(self.condition)
        if self.text:
            failure.addElement("text", content=self.text)
        return failure
