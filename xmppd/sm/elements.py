# -*- test-case-name: tests.unit.test_sm_manager -*-
"""The elements of XEP-0198, and the XEP-0203 delay stamp on stanzas sent late.

A stanza sent again on a resumed stream, or kept offline when the session ends, carries a
``<delay/>`` with the time it was first sent (§4: "servers SHOULD add a delay element with
the original (failed) delivery timestamp"), as Prosody's mod_smacks does; IQs do not (an
IQ is an exchange, not something to read later).
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.words.xish import domish

from xmppd import ns


def sm_element(name: str, **attributes: str | int | None) -> domish.Element:
    """``<name xmlns='urn:xmpp:sm:3'/>`` with the attributes that are not None."""
    element = domish.Element((ns.SM, name))
    for key, value in attributes.items():
        if value is not None:
            element[key.replace("_", "-")] = str(value)
    return element


def failed(condition: str, h: int | None = None) -> domish.Element:
    """``<failed/>`` with a stanza error condition (§6), and 'h' where it is known (§5)."""
    element = sm_element("failed", h=h)
    element.addElement((ns.STANZA_ERRORS, condition))
    return element


def xep0082_stamp(seconds: float) -> str:
    """A XEP-0082 DateTime in UTC with milliseconds: 2002-09-10T23:08:25.000Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def delayed(element: domish.Element, domain: str, seconds: float) -> domish.Element:
    """``element`` as sent late: a copy with our delay stamp (none on an IQ, none twice).

    Only the top element is copied; its children are shared, read-only, with the original,
    which other sessions may still hold (one message delivered to several resources).
    """
    if element.name == "iq" or any(child.uri == ns.DELAY and child.name == "delay"
                                   for child in element.elements()):
        return element
    copy = domish.Element((element.uri, element.name), element.defaultUri,
                          dict(element.attributes), dict(element.localPrefixes or {}))
    copy.children = list(element.children)
    delay = copy.addElement((ns.DELAY, "delay"))
    delay["from"] = domain
    delay["stamp"] = xep0082_stamp(seconds)
    return copy
