# -*- test-case-name: tests.unit.test_sasl2 -*-
"""XEP-0388's elements: reading <authenticate/>, writing the features, <challenge/>,
<success/> and <failure/>.

Base64 here has no '=' special case (XEP-0388 §4): an empty element is empty data, a missing
<initial-response/> is no initial response.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import SASLFailure
from xmppd.sasl2 import SASL2, UserAgent

MAX_USER_AGENT_ID = 256  # a UUID is 36; anything much longer is not an id


@dataclass
class Attempt:
    """One <authenticate/>: the mechanism, its initial response and the inline requests.

    ``mechanism`` and ``localpart`` are filled in as the exchange goes (the mechanism object
    once made, the prepared localpart once it succeeded)."""

    element: domish.Element
    mechanism_name: str | None
    initial_response: bytes | None
    user_agent: UserAgent = field(default_factory=UserAgent)
    mechanism: object = None
    localpart: str | None = None
    state: dict = field(default_factory=dict)  # what extensions note between their steps

    def child(self, namespace: str, name: str) -> domish.Element | None:
        """The <authenticate/> child ``{namespace}name``, or None."""
        for child in self.element.elements(namespace, name):
            return child
        return None


def parse_authenticate(element: domish.Element) -> Attempt:
    """An Attempt, or SASLFailure: incorrect-encoding for bad base64, malformed-request for
    a repeated <initial-response/> or <user-agent/>, or an unusable user-agent id."""
    responses = list(element.elements(SASL2, "initial-response"))
    agents = list(element.elements(SASL2, "user-agent"))
    if len(responses) > 1 or len(agents) > 1:
        raise SASLFailure("malformed-request", "repeated initial-response or user-agent")
    initial = decode(responses[0]) if responses else None
    agent = UserAgent()
    if agents:
        agent_id = agents[0].getAttribute("id")
        if agent_id is not None and not 0 < len(agent_id) <= MAX_USER_AGENT_ID:
            raise SASLFailure("malformed-request", "bad user-agent id")
        agent = UserAgent(agent_id, _text(agents[0], "software"), _text(agents[0], "device"))
    return Attempt(element, element.getAttribute("mechanism"), initial, agent)


def _text(parent: domish.Element, name: str) -> str | None:
    for child in parent.elements(SASL2, name):
        return str(child)[:256]
    return None


def decode(element: domish.Element) -> bytes:
    """The base64 content of ``element``; empty content is empty data."""
    text = "".join(str(element).split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure("incorrect-encoding") from None


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def authentication_feature(mechanisms: Sequence[str], inline: Sequence[domish.Element]
                           ) -> domish.Element:
    """<authentication/> with the mechanisms and the <inline/> features."""
    authentication = domish.Element((SASL2, "authentication"))
    for name in mechanisms:
        authentication.addElement("mechanism", content=name)
    if inline:
        container = authentication.addElement("inline")
        for feature in inline:
            container.addChild(feature)
    return authentication


def challenge(data: bytes) -> domish.Element:
    element = domish.Element((SASL2, "challenge"))
    element.addContent(encode(data))
    return element


def success(identifier: str, additional_data: bytes | None,
            children: Sequence[domish.Element]) -> domish.Element:
    element = domish.Element((SASL2, "success"))
    if additional_data is not None:
        element.addElement("additional-data", content=encode(additional_data))
    element.addElement("authorization-identifier", content=identifier)
    for child in children:
        element.addChild(child)
    return element


def failure(error: SASLFailure) -> domish.Element:
    """<failure xmlns='urn:xmpp:sasl:2'> with the RFC 6120 condition in its own namespace."""
    element = domish.Element((SASL2, "failure"))
    element.addElement((ns.SASL, error.condition))
    if error.text:
        element.addElement("text", content=error.text)
    return element
