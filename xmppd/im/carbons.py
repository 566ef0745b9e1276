# -*- test-case-name: tests.unit.test_carbons -*-
"""Message carbons (XEP-0280 v2): which messages an account's other devices see, and how.

Two rules make the whole protocol, both as chain links of the carbons plugin:

* **received** (§7): a message for one of our accounts goes, as a ``<received/>`` copy, to
  every carbons-enabled resource of the account that RFC 6121 delivery does not give it to.
  Who gets the original is asked of xmppd.im.message_delivery (``message_recipients``), the
  rule delivery itself follows, so the two cannot disagree;
* **sent** (§8): a message a local client sends goes, as a ``<sent/>`` copy, to every
  carbons-enabled resource of its account but the sender, enabled or not itself.

Decisions worth knowing:

* Which messages (§6.1): chat; normal with a body; any non-groupchat message carrying a
  receipt, a chat state, a chat marker or an invitation (XEP-0249, or mediated through
  muc#user). Never groupchat, never a copy of a copy (``<sent/>``/``<received/>`` inside),
  never one marked ``<private xmlns='urn:xmpp:carbons:2'/>`` or with the XEP-0334
  ``<no-copy/>`` hint (§9), and never a private message received from a MUC occupant (a
  muc#user ``<x/>`` without an invitation, from a full JID): the room already sends it to
  every joined device (§6.1).
* Errors are not copied: telling an error to a copied message from one to an uncopied one
  would need every message's id remembered; the XEP only says "MAY".
* A message between two resources of one account is copied on the received side only,
  so no device gets both a sent and a received copy of it, and the sender never gets its
  own message back.
* Copies share the original's children (``addressed_copy``): nobody changes a message once
  it is routed, and a copy costs one element, not a deep clone.
* In a cluster (``remote()``, None on a single node) the account's resources on other nodes
  count too: the session registry carries each resource's carbons flag (``CARBONS_CHANGED``
  tells the cluster), copies for them are made here and carried to their node, and who
  gets the original is chosen among the sessions of every node, as the cluster's delivery
  does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.words.xish import domish

from xmppd import ns
from xmppd.events import Event
from xmppd.im.message_delivery import message_recipients
from xmppd.im.presence_stanzas import addressed_copy
from xmppd.jid import JID
from xmppd.stanza import Stanza

SENT = "sent"
RECEIVED = "received"
COPIED_TYPES = ("chat", "normal")  # groupchat never; headline reaches every resource anyway

# payloads that make any (non-groupchat) message an IM one (§6.1), by namespace
_IM_NAMESPACES = frozenset((ns.RECEIPTS, ns.CHAT_STATES, ns.CHAT_MARKERS, ns.X_CONFERENCE))
_BODY_NAMESPACES = (None, ns.CLIENT, ns.SERVER)

CARBONS_CHANGED = Event("carbons-changed", "a resource enabled or disabled carbons: "
                        "(session, enabled); the cluster's registry carries it")


def eligible(element: domish.Element, direction: str, from_full_jid: bool = False) -> bool:
    """Whether a message is copied (§6.1, §9); ``from_full_jid`` for a received one whose
    sender is a full JID (a MUC occupant's private message is not copied). One pass over
    the children."""
    type = element.getAttribute("type") or "normal"
    if type not in COPIED_TYPES:
        return False
    im = type == "chat"
    muc_private = False
    for child in element.elements():
        uri, name = child.uri, child.name
        if uri == ns.CARBONS:  # <private/>, or a <sent/>/<received/> copy itself
            return False
        if uri == ns.HINTS:
            if name == "no-copy":
                return False
        elif uri in _IM_NAMESPACES or (name == "body" and uri in _BODY_NAMESPACES):
            im = True
        elif uri == ns.MUC_USER and name == "x":
            if any(grand.name == "invite" for grand in child.elements()):
                im = True  # a mediated invitation
            else:
                muc_private = True
    if direction == RECEIVED and muc_private and from_full_jid:
        return False
    return im


def carbon(element: domish.Element, direction: str, account: JID, resource: JID
           ) -> domish.Element:
    """The copy of ``element`` for ``resource``: from the bare ``account``, of the original's
    type, holding ``<sent|received><forwarded>original</forwarded></…>`` (§7, §8)."""
    wrapper = domish.Element((None, "message"))
    wrapper["from"] = account.full()
    wrapper["to"] = resource.full()
    wrapper["type"] = element.getAttribute("type") or "normal"
    forwarded = wrapper.addElement((ns.CARBONS, direction)).addElement((ns.FORWARD, "forwarded"))
    original = addressed_copy(element, element.getAttribute("from"), element.getAttribute("to"))
    if original.uri is None:  # made by the server: say what a client reads it as
        original.uri = original.defaultUri = ns.CLIENT
    forwarded.addChild(original)
    return wrapper


class CarbonCopier:
    """The enabled resources and the two links; one per loaded plugin.

    ``sessions`` is the plugin's read-only view (get, resources); ``deliver_to_all`` the
    server's ``[c2s] bare_message_delivery == "all"``, which delivery follows too.
    """

    def __init__(self, sessions, deliver_to_all: bool = False,
                 remote: Callable[[], object] = lambda: None) -> None:
        self._sessions = sessions
        self._resources: Callable[[JID], Iterable] = sessions.resources
        self._deliver_to_all = deliver_to_all
        self._remote = remote  # the cluster's other nodes' sessions, or None
        self.enabled: set = set()  # sessions that enabled carbons

    def enable(self, session) -> None:
        self.enabled.add(session)

    def disable(self, session, *ignored) -> None:
        """Also the SESSION_CLOSED handler: an ended session copies nothing more."""
        self.enabled.discard(session)

    def _enabled_of(self, account: JID) -> list:
        enabled = self.enabled
        mine = [session for session in self._resources(account) if session in enabled]
        remote = self._remote()
        if remote is None:
            return mine
        return mine + [session for session in remote.resources(account) if session.carbons]

    def received(self, stanza: Stanza, origin) -> None:
        """The link for messages to our accounts (bare or full): copies to the enabled
        resources delivery passes by; the original goes on, unchanged."""
        if not self.enabled and self._remote() is None:  # the usual case, on the
            return None  # benchmarked path: one test and one call
        account = stanza.recipient.bare()
        enabled = self._enabled_of(account)
        if not enabled:
            return None
        sender = stanza.sender
        if not eligible(stanza.element, RECEIVED,
                        sender is not None and sender.resource is not None):
            return None
        remote = self._remote()
        sessions = self._sessions if remote is None else Everywhere(self._sessions, remote)
        getting = message_recipients(sessions, stanza, self._deliver_to_all)
        for session in enabled:
            if session not in getting and session.jid != sender:
                session.send(carbon(stanza.element, RECEIVED, account, session.jid))
        return None

    def sent(self, stanza: Stanza, session) -> None:
        """The 'outgoing' link for what a local client sends: copies to the account's
        other enabled resources, whether the sender enabled carbons or not."""
        if not self.enabled and self._remote() is None:
            return None
        account = session.account
        recipient = stanza.recipient
        if recipient is not None and recipient.bare() == account:
            return None  # to itself: the received side copies it (see module doc)
        enabled = [other for other in self._enabled_of(account) if other is not session]
        if not enabled or not eligible(stanza.element, SENT):
            return None
        for other in enabled:
            other.send(carbon(stanza.element, SENT, account, other.jid))
        return None


class Everywhere:
    """An account's sessions on this node and on the cluster's other nodes (``get``,
    ``resources``), among which the cluster's delivery chooses who gets a message."""

    __slots__ = ("local", "remote")

    def __init__(self, local, remote) -> None:
        self.local = local
        self.remote = remote

    def get(self, full_jid: JID):
        session = self.local.get(full_jid)
        return session if session is not None else self.remote.get(full_jid)

    def resources(self, bare_jid: JID) -> list:
        return list(self.local.resources(bare_jid)) + self.remote.resources(bare_jid)
