# -*- test-case-name: tests.unit.test_offline -*-
"""XEP-0160 offline messages: keep what the router could not deliver, hand it over later.

The router decides *when* a message is kept (RFC 6121 §8.5.2.1.1: no available resource with
a non-negative priority) and calls ``IOfflineDelivery.store``; this plugin decides *what* is
worth keeping (``xmppd.im.worth_storing``: not chat states or receipts). It stamps it with a
XEP-0203 delay, persists it, and delivers it to the first resource that becomes available
with a non-negative priority.

Delivery is at-least-once: messages are deleted only after every one of them was written to
the session, so a crash in between may repeat a message but never lose one.

Which accounts hold messages is known in memory on a single node (xmppd.im.holding):
the initial presence of an account that holds none reads nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.im.holding import Holding
from xmppd.im.worth_storing import STORED_TYPES, worth_storing
from xmppd.interfaces import IOfflineDelivery, IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import Stanza
from xmppd.storage import UserNotFound
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)

DEFAULT_MAX_MESSAGES = 500


@implementer(IXmppdPlugin)
class Offline:
    name = "offline"
    requires = ()
    provides = (IOfflineDelivery,)

    def configure(self, options) -> int:
        """max_messages, checked before the database opens."""
        reject_unknown_keys(options, ("max_messages",))
        return options.option_int("max_messages", DEFAULT_MAX_MESSAGES, minimum=0)

    def setup(self, ctx) -> None:
        max_messages = ctx.settings
        messages = OfflineMessages(ctx, max_messages)
        ctx.provide(IOfflineDelivery, messages)
        ctx.on(events.RESOURCE_AVAILABLE, messages.resource_available)
        messages.holders.load(messages.storage.accounts_with_messages)
        if max_messages:
            ctx.feature(ns.MSG_OFFLINE)


@implementer(IOfflineDelivery)
class OfflineMessages:
    """Stores messages for offline accounts and delivers them when a resource comes online."""

    def __init__(self, ctx, max_messages: int) -> None:
        """``ctx``: the plugin's context (storage, reactor, read-only sessions)."""
        self.storage = ctx.storage.offline
        self._seconds = ctx.reactor.seconds
        self._session = ctx.sessions.get
        self.max_messages = max_messages
        self._delivering: set[JID] = set()  # accounts whose delivery is under way
        # exact on a single node only: a cluster's other nodes store messages too
        self.holders = Holding("offline messages", lambda: ctx.remote_sessions() is None)

    def store(self, stanza: Stanza) -> defer.Deferred:
        """Keep a normal or chat message; fires True once committed, False if refused.

        A notification not worth keeping (a chat state, a receipt: see worth_storing) is
        dropped without an error to its sender: it fires True, and nothing is stored.
        """
        recipient = stanza.recipient
        if (stanza.kind != "message" or stanza.type not in STORED_TYPES
                or recipient is None or recipient.user is None or not self.max_messages):
            return defer.succeed(False)
        if not worth_storing(stanza.element):
            log.debug("not keeping a notification for offline {jid}", jid=recipient)
            return defer.succeed(True)
        seconds = self._seconds()
        element = _with_delay(stanza, recipient.host, _xep0082_stamp(seconds))
        xml = stanza_to_text(element)
        self.holders.adding(recipient.bare())
        d = self.storage.store(recipient.user, recipient.host, xml, seconds, self.max_messages)
        d.addErrback(_refuse_unknown_account, recipient)
        return d

    def resource_available(self, session) -> defer.Deferred | None:
        """RESOURCE_AVAILABLE: the first resource with priority >= 0 gets the messages."""
        account = session.account
        if (session.priority < 0 or account in self._delivering
                or not self.holders.may_hold(account)):
            return None
        self._delivering.add(account)
        self.holders.taking(account)
        d = defer.ensureDeferred(self._deliver(session, account))
        d.addErrback(self._failed, account)
        d.addBoth(self._done, account)
        return d

    async def _deliver(self, session, account: JID) -> None:
        rows = await self.storage.fetch(account.user, account.host)
        last_handled = None
        for message_id, xml, _stamp in rows:
            if not self._still_bound(session):
                self.holders.left(account)
                break  # the rest stays stored for the next resource
            element = stanza_from_text(xml)
            if element is None:
                log.error("dropping unreadable offline message {id} for {account}",
                          id=message_id, account=account)
            else:
                session.send(element)
            last_handled = message_id
        if last_handled is not None:
            await self.storage.delete(account.user, account.host, last_handled)
            log.info("delivered offline messages up to {id} to {jid}", id=last_handled,
                     jid=session.jid)

    def _still_bound(self, session) -> bool:
        """A session unbound while we read the database would drop what we send it."""
        return session.jid is not None and self._session(session.jid) is session

    def _failed(self, failure, account: JID):
        self.holders.left(account)  # whatever is left stays stored
        return failure

    def _done(self, result, account: JID):
        self._delivering.discard(account)
        return result


def _refuse_unknown_account(failure, recipient: JID) -> bool:
    """RFC 6121 §8.5.2.1.1: no such account means no storage; the router bounces it."""
    failure.trap(UserNotFound)
    log.debug("not storing a message for unknown account {jid}", jid=recipient)
    return False


def _xep0082_stamp(seconds: float) -> str:
    """A XEP-0082 DateTime in UTC with milliseconds: 2002-09-10T23:08:25.000Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _with_delay(stanza: Stanza, domain: str, stamp: str) -> domish.Element:
    """A copy of the message with our XEP-0203 delay; the caller's element is left alone.

    Only the top element is copied: its children are shared, read-only, with the original,
    which is enough because the copy is serialized at once.
    """
    original = stanza.element
    copy = domish.Element((original.uri, original.name), original.defaultUri,
                          dict(original.attributes), dict(original.localPrefixes or {}))
    copy.children = list(original.children)
    if not copy.hasAttribute("from") and stanza.sender is not None:
        copy["from"] = stanza.sender.full()
    if not _has_delay_from(original, domain):
        delay = domish.Element((ns.DELAY, "delay"))
        delay["from"] = domain
        delay["stamp"] = stamp
        copy.addChild(delay)
    return copy


def _has_delay_from(element: domish.Element, domain: str) -> bool:
    return any(child.uri == ns.DELAY and child.name == "delay"
               and child.getAttribute("from") == domain for child in element.elements())


offline = Offline()
