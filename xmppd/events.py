"""Typed server events: plugins subscribe to these constants, never to strings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """A server event; its ``name`` is for logs only, identity is the object itself."""

    name: str
    doc: str = ""


SESSION_BOUND = Event("session-bound", "a client session bound a resource: (session,)")
SESSION_CLOSED = Event("session-closed", "a bound client session ended: (session, polite); "
                       "with session.moved it goes on on another cluster node: forget it, "
                       "tell nobody")
SESSION_HIBERNATED = Event("session-hibernated", "a bound session lost its connection and a "
                           "plugin keeps it, bound and routable, for a new stream: (session,)")
SESSION_RESUMED = Event("session-resumed", "a session moved to a new stream (after "
                        "hibernating, or from a stream still open): (session,)")
AUTH_FAILED = Event("auth-failed", "a client's SASL authentication failed, once per counted "
                    "failure: (mechanism, condition); the mechanism is one we offer, 'none' "
                    "when the client named none, 'other' for a name we do not know")
USER_CREATED = Event("user-created", "an account was created: (jid,)")
USER_DELETING = Event("user-deleting", "an account is about to be deleted; its data is still "
                      "there: (jid,)")
USER_DELETED = Event("user-deleted", "an account was deleted: (jid,)")
RESOURCE_AVAILABLE = Event("resource-available",
                           "a session sent its initial available presence: (session,)")
RESOURCE_UNAVAILABLE = Event("resource-unavailable",
                             "an available session became unavailable or ended: (session,)")
S2S_LINK_UP = Event("s2s-link-up", "a remote domain is authenticated on a link: (domain,)")
S2S_LINK_DOWN = Event("s2s-link-down", "an authenticated link to a remote domain closed: (domain,)")
PEP_CHANGED = Event("pep-changed", "an account's client published or retracted on one of "
                    "its PEP nodes (not the server on its behalf): (xmppd.pep.changes.PepChange,)")
VCARD_STORED = Event("vcard-stored", "an account's client set its vCard (XEP-0054): "
                     "(account, vcard)")
PRIVATE_STORED = Event("private-stored", "an account's client stored private XML (XEP-0049), "
                       "once per element: (account, element)")
ROSTER_CHANGED = Event("roster-changed", "a change to an account's roster was stored and pushed "
                       "to its interested resources on this node: (account, version, item), "
                       "item the <item/> of the push (RFC 6121 §2.1.6)")
ROSTER_CHANGED_ELSEWHERE = Event("roster-changed-elsewhere", "another node of the cluster "
                                 "stored a change to an account's roster: (account, version, "
                                 "item), as ROSTER_CHANGED")
PEP_NOTIFIED = Event("pep-notified", "an account's PEP notification went to those this node "
                     "knows want it: (account, xmppd.pubsub.Notification, the full or bare "
                     "JID strings sent to)")
PEP_NOTIFIED_ELSEWHERE = Event("pep-notified-elsewhere", "another node of the cluster sent a "
                               "PEP notification: (account, Notification, the JID strings it "
                               "was sent to, which need no copy here)")
SERVER_STARTED = Event("server-started", "all listeners are up: ()")
SERVER_STOPPING = Event("server-stopping", "shutdown began, sessions still open: ()")

ALL = (SESSION_BOUND, SESSION_CLOSED, SESSION_HIBERNATED, SESSION_RESUMED, AUTH_FAILED,
       USER_CREATED,
       USER_DELETING, USER_DELETED, RESOURCE_AVAILABLE, RESOURCE_UNAVAILABLE, S2S_LINK_UP,
       S2S_LINK_DOWN, PEP_CHANGED, VCARD_STORED, PRIVATE_STORED, ROSTER_CHANGED,
       ROSTER_CHANGED_ELSEWHERE, PEP_NOTIFIED, PEP_NOTIFIED_ELSEWHERE, SERVER_STARTED,
       SERVER_STOPPING)
