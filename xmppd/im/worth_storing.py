# -*- test-case-name: tests.unit.test_worth_storing -*-
"""Which messages are worth keeping for later: offline storage now, the archive later.

XEP-0160 §3 keeps normal and chat messages "with the exception of messages that contain only
XEP-0085 content", and XEP-0334 §5 lets a sender decide with ``<store/>`` and ``<no-store/>``.
A typing notification replayed hours later is noise, and so are receipts and markers for a
conversation the recipient will read from the start; what carries content is kept: a body,
an encrypted payload (OMEMO, OpenPGP: they travel outside ``<body/>``), or an invitation.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns

STORED_TYPES = frozenset(("normal", "chat"))  # XEP-0160 §3: the others are never kept

# (namespace, element) children that make a message content, beside <body/>
_CONTENT = frozenset((
    (ns.OMEMO, "encrypted"),
    (ns.OMEMO_LEGACY, "encrypted"),
    (ns.OPENPGP, "openpgp"),
    (ns.LEGACY_PGP, "x"),
    (ns.X_CONFERENCE, "x"),
))


def worth_storing(element: domish.Element) -> bool:
    """True for a normal or chat message with content or a ``<store/>`` hint, unless the
    sender said ``<no-store/>``."""
    if element.getAttribute("type", "normal") not in STORED_TYPES:
        return False
    return carries_content(element)


def carries_content(element: domish.Element) -> bool:
    """True for a message of any type with content or a ``<store/>`` hint, unless the sender
    said ``<no-store/>`` (a room's message that is worth waking a phone for)."""
    content = False
    for child in element.elements():
        uri, name = child.uri, child.name
        if uri == ns.HINTS:
            if name == "no-store":
                return False
            if name == "store":
                content = True
        elif name == "body" and uri == element.uri:  # the stanza's own namespace
            content = True
        elif (uri, name) in _CONTENT or _is_invitation(child):
            content = True
    return content


def _is_invitation(child: domish.Element) -> bool:
    """XEP-0045 §7.8.2: a mediated invitation comes as <x xmlns=muc#user><invite/></x>."""
    return (child.uri == ns.MUC_USER and child.name == "x"
            and any(grandchild.name == "invite" for grandchild in child.elements()))
