"""Messages for sessions on other nodes (RFC 6121 §8.5 across the cluster).

``RemoteDelivery`` is a pair of chain links just above the message plugin's delivery
(``DELIVERY_PRIORITY + 1``): every other link (archive, carbons, blocking...) has run on
the sender's node. A message to a full JID bound on another node, or to a bare JID whose
chosen resources (the same ``recipients`` rule as local delivery, over the sessions of every
node) include one on another node, is sent to the chosen sessions, local ones directly,
remote ones through their node. Anything else passes on, untouched, to local delivery
(offline storage included): a server whose accounts are all on this node delivers exactly
as without a cluster.

``Arrivals`` hands a stanza forwarded by another node to the session it was for; if that
session is gone meanwhile (or the stanza could not reach its node), a message goes to the
account's other sessions here or to offline storage, never forwarded again (no loops);
presence is dropped, as for a resource that is not there. Presence for a bare JID is
sent to every session of the account on other nodes, and given here to available ones only.
"""

from __future__ import annotations

from twisted.internet import defer

from xmppd.im.message_delivery import STORABLE, recipients
from xmppd.interfaces import IOfflineDelivery
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)


class RemoteDelivery:
    """The links; ``local`` and ``remote`` answer get(full) and resources(bare)."""

    def __init__(self, local, remote, deliver_to_all: bool) -> None:
        self.local = local
        self.remote = remote
        self.deliver_to_all = deliver_to_all

    def to_full(self, stanza: Stanza, origin):
        recipient = stanza.recipient
        if self.local.get(recipient) is not None:
            return None
        session = self.remote.get(recipient)
        if session is not None:
            session.send(stanza.element)
            return True
        if stanza.type in STORABLE:  # §8.5.3.2.1: as if to the bare JID
            return self._to_account(stanza, recipient.bare())
        return None

    def to_bare(self, stanza: Stanza, origin):
        """§8.5.2: normal, chat and headline; the rest is local delivery's (refused)."""
        if stanza.type not in STORABLE:
            return None
        return self._to_account(stanza, stanza.recipient)

    def _to_account(self, stanza: Stanza, account: JID):
        remote = self.remote.resources(account)
        if not remote:
            return None  # the usual case: one dictionary look-up
        chosen = recipients(self.local.resources(account) + remote,
                            self.deliver_to_all or stanza.type == "headline")
        if not any(getattr(session, "remote", False) for session in chosen):
            return None  # local delivery chooses the same sessions
        element = stanza.element
        for session in chosen:
            session.send(element)
        return True


class Arrivals:
    """Stanzas forwarded to this node, and stanzas that could not reach theirs."""

    def __init__(self, local, query, bounce, deliver_to_all: bool) -> None:
        self.local = local  # this node's SessionRegistry
        self.query = query  # the server's provider look-up (IOfflineDelivery)
        self.bounce = bounce  # bounce(stanza, condition)
        self.deliver_to_all = deliver_to_all

    def arrived(self, stanza: Stanza, full_jid: JID):
        """``stanza`` for our session ``full_jid`` (its 'to' may be the bare JID); a
        Deferred while it is being stored offline."""
        session = self.local.get(full_jid)
        if stanza.kind == "presence":
            # for the bare JID: to available resources only (§8.5.2.1.2), which only this
            # node knows for sure; else dropped, never answered (§8.5.2.2.2, §8.5.3.2.2)
            if session is not None and (session.available or stanza.recipient.resource):
                session.send(stanza.element)
        elif session is not None:
            session.send(stanza.element)
        else:
            return self.undelivered(stanza)
        return None

    def undelivered(self, stanza: Stanza):
        """Its session is gone: what local delivery does for an account without it."""
        if stanza.kind == "presence":
            return None  # presence for a resource that is gone is dropped (§8.5.3.2.2)
        if stanza.kind != "message":
            if stanza.type not in ("error", "result"):
                self.bounce(stanza, "service-unavailable")
            return None
        if stanza.type not in STORABLE:
            if stanza.type != "error":
                self.bounce(stanza, "service-unavailable")
            return None
        chosen = recipients(self.local.resources(stanza.recipient.bare()),
                            self.deliver_to_all or stanza.type == "headline")
        for session in chosen:
            session.send(stanza.element)
        if chosen or stanza.type == "headline":
            return None
        offline = self.query(IOfflineDelivery)
        if offline is None:
            self.bounce(stanza, "service-unavailable")
            return None
        d = defer.maybeDeferred(offline.store, stanza)
        d.addCallback(lambda kept: None if kept else self.bounce(stanza, "service-unavailable"))
        d.addErrback(lambda failure: log.failure("offline storage failed for {stanza!r}",
                                                 failure, stanza=stanza))
        return d
