"""XML payloads kept as text in the generic stores, read back through the network's parser.

Stored payloads go through xmppd.xml.stored, the code offline messages use: what comes back
has passed the same restricted parser as anything a client sends, so a damaged row cannot
smuggle in what the network would refuse.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.logs import get_logger
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)


def to_text(element: domish.Element) -> str:
    """The text to store for ``element``, namespaces declared on it."""
    return stanza_to_text(element)


def text_size(text: str) -> int:
    """What a stored payload costs, in bytes: the unit of every size limit here."""
    return len(text.encode("utf-8"))


def from_text(text: object, what: str) -> domish.Element | None:
    """A stored payload back as an element; None (logged, naming ``what``) when the row is
    not one well-formed element: the account then reads as having none."""
    element = stanza_from_text(text) if isinstance(text, str) else None
    if element is None:
        log.error("stored {what} does not parse: {text!r}", what=what, text=text)
    return element


def text_of(element: domish.Element) -> str:
    """All the character data directly inside ``element`` (domish's str() gives only the
    first text node, and the parser may split text into several)."""
    return "".join(child for child in element.children if isinstance(child, str))
