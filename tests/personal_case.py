"""A real server with the personal-data plugins (vcard, avatar_hash, private) on real
SQLite, and a way to ask it one IQ and read the answer."""

from __future__ import annotations

import base64
import hashlib

from twisted.words.xish import domish

from tests.helpers import StreamHarness
from tests.plugin_case import PluginServerCase
from xmppd import ns

PERSONAL_PLUGINS = ("vcard", "avatar_hash", "private")
# A 1x1 transparent PNG, base64 with a line break as RFC 2045 writes it (XEP-0153 §4.6).
PNG_BASE64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA\n"
              "60e6kgAAAABJRU5ErkJggg==")
PNG_SHA1 = hashlib.sha1(base64.b64decode("".join(PNG_BASE64.split()))).hexdigest()


def vcard_xml(inner: str = "<FN>Alice</FN>") -> str:
    return f"<vCard xmlns='vcard-temp'>{inner}</vCard>"


def photo_xml(binval: str = PNG_BASE64) -> str:
    return f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{binval}</BINVAL></PHOTO>"


def error_condition(iq: domish.Element) -> str | None:
    """The stanza error condition of an IQ error, or None for a result."""
    if iq["type"] != "error":
        return None
    for error in iq.elements():
        if error.name == "error":
            return next(child.name for child in error.elements()
                        if child.uri == ns.STANZA_ERRORS)
    raise AssertionError(f"an IQ error without <error/>: {iq.toXml()}")


class PersonalCase(PluginServerCase):
    enabled = PERSONAL_PLUGINS
    users = ("alice", "bob")

    async def ask(self, harness: StreamHarness, type: str, payload: str,
                  to: str | None = None) -> domish.Element:
        """Send one IQ and return the server's answer."""
        address = f" to='{to}'" if to else ""
        harness.feed(f"<iq type='{type}' id='q1'{address}>{payload}</iq>")
        answer = await harness.wait_for_element("iq")
        assert answer["id"] == "q1", answer.toXml()
        return answer
