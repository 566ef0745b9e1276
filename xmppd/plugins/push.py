# -*- test-case-name: tests.unit.test_push -*-
"""XEP-0357 push notifications: wake a phone whose app is asleep.

A client registers an app server (its JID and a node on it, with the secrets the app server
needs in a publish-options form) with ``<enable/>``; when a message worth keeping
(``xmppd.im.worth_storing``) comes for the account and none of its sessions is live (none
bound, or every one hibernating after a lost connection, XEP-0198), the account publishes a
summary to each app server, which tells the phone's vendor to wake the app. The app server is
reached like any JID: a local account, a service, or federated.

Privacy: the summary carries the message count and the sender, not the body (XEP-0357 §8:
it goes through the app server and the vendor's push service), unless the operator sets
``[plugins.push] include_body = true``.

The registrations are kept in a map store per account (key: app server JID and node), so
they survive restarts and are deleted with the account. An app server that answers a
publish with an error (XEP-0357 §7: the device is gone, the secret is stale) disables its
registration; a timeout does not (the app server may be down for a while).

A burst of messages makes one push per ``min_interval`` seconds per registration, not one
per message: the messages in between are counted, and one more push when the interval is
over reports them (``message-count``: every message since the account was last live), so
the last message of a burst is never left untold. The
link runs above delivery and lets every message go on to it (and to offline storage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.forms import Form, FormError, find_form, make_field
from xmppd.im.worth_storing import STORED_TYPES, carries_content, worth_storing
from xmppd.interfaces import IXmppdPlugin
from xmppd.iq_tracker import IQTimeout
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import Stanza

log = get_logger(__name__)

PRIORITY = -500  # above delivery (-1000), below blocking (1000), the archive and carbons
STORE = "push"
DEFAULT_MIN_INTERVAL = 30
DEFAULT_TIMEOUT = 30
DEFAULT_MAX_REGISTRATIONS = 10  # devices of one account, each with its app server
BODY_LIMIT = 256  # characters of a body in a summary, when bodies are sent at all


@dataclass(frozen=True)
class PushSettings:
    """``[plugins.push]``: include_body (false), min_interval and timeout in seconds, and
    max_registrations per account."""

    include_body: bool = False
    min_interval: int = DEFAULT_MIN_INTERVAL
    timeout: int = DEFAULT_TIMEOUT
    max_registrations: int = DEFAULT_MAX_REGISTRATIONS


@implementer(IXmppdPlugin)
class Push:
    name = "push"
    requires = ()

    def configure(self, options) -> PushSettings:
        """Checked before the database opens: a bad value stops start-up."""
        reject_unknown_keys(options, ("include_body", "min_interval", "timeout",
                                      "max_registrations"))
        return PushSettings(
            include_body=options.option_bool("include_body", False),
            min_interval=options.option_int("min_interval", DEFAULT_MIN_INTERVAL, minimum=0),
            timeout=options.option_int("timeout", DEFAULT_TIMEOUT, minimum=1),
            max_registrations=options.option_int("max_registrations",
                                                 DEFAULT_MAX_REGISTRATIONS, minimum=1))

    def setup(self, ctx) -> None:
        pusher = self._pusher = Pusher(ctx, ctx.settings or PushSettings())
        ctx.feature(ns.PUSH, to="account")
        for name, handler in (("enable", pusher.enable), ("disable", pusher.disable)):
            ctx.iq("set", ns.PUSH, name, handler, to="self")
            ctx.iq("set", ns.PUSH, name, not_yours, to="bare")
        for type in STORED_TYPES:
            ctx.stanza("message", type, ("bare", "full"), pusher.received, PRIORITY)
        ctx.stanza("message", "groupchat", "full", pusher.received_groupchat, PRIORITY)
        for event in (events.SESSION_BOUND, events.SESSION_RESUMED):
            ctx.on(event, pusher.back_online)
        ctx.on(events.USER_DELETED, pusher.forget_account)

    def teardown(self) -> None:
        """The pushes waiting for the end of an interval are not sent by a stopped plugin."""
        self._pusher.stop()


def not_yours(stanza: Stanza, origin) -> None:
    """Only an account registers its own devices (XEP-0357 §5: the IQ goes to the user's
    own bare JID)."""
    raise StanzaError("not-allowed")


def registration_key(app_server: str, node: str) -> str:
    """The map store key of one registration: both parts, unambiguous (a resource and a
    node may hold any separator one could choose)."""
    return json.dumps([app_server, node])


@dataclass
class _Pending:
    """The rate limit's memory for one registration (not stored: after a restart the next
    message simply pushes). ``count`` is the messages since the account was last live, the
    XEP's pending messages, so a push after a burst tells them all."""

    count: int = 0
    told: int = 0  # the count the last push reported
    last_push: float | None = None
    last_sender: str | None = None
    last_body: str | None = None
    timer: object = None  # the IDelayedCall of the push due at the end of the interval

    def cancel(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class Pusher:
    """Registrations (stored) and notifications (sent) for every account."""

    def __init__(self, ctx, settings: PushSettings) -> None:
        self._store = ctx.open_store(STORE, "map")
        self._resources = ctx.sessions.resources
        self._session = ctx.sessions.get
        self._send_iq = ctx.send_iq
        self._seconds = ctx.reactor.seconds
        self._call_later = ctx.reactor.callLater
        self.settings = settings
        self._pending: dict[tuple[str, str], _Pending] = {}  # (account, key)

    # -- registrations (XEP-0357 §5, §6)

    async def enable(self, stanza: Stanza, origin) -> None:
        """Register (or register again, with new options) one app server and node; at most
        ``max_registrations`` per account, since each is one more IQ per message."""
        account = stanza.sender.bare()
        element = stanza.payload()
        app_server = _app_server(element)
        node = element.getAttribute("node")
        if not node:
            raise StanzaError("bad-request", "an enable needs a node")
        try:
            form = find_form(element)
        except FormError:
            raise StanzaError("bad-request", "malformed publish-options form") from None
        options = None
        if form is not None:
            if form.form_type != ns.PUBSUB_PUBLISH_OPTIONS or form.type != "submit":
                raise StanzaError("bad-request", "publish options must be a submit form "
                                  f"of FORM_TYPE {ns.PUBSUB_PUBLISH_OPTIONS}")
            options = [[each.var, list(each.values)] for each in form.field_list
                       if each.var is not None and each.var != "FORM_TYPE"]
        value = {"jid": app_server.full(), "node": node, "options": options}
        key = registration_key(app_server.full(), node)
        keys = await self._store.keys(account.full())
        if key not in keys and len(keys) >= self.settings.max_registrations:
            raise StanzaError("resource-constraint", f"at most "
                              f"{self.settings.max_registrations} push registrations")
        pending = self._pending.pop((account.full(), key), None)
        if pending is not None:
            pending.cancel()
        await self._store.set(account.full(), key, value)
        log.info("push enabled for {account} to {jid} node {node}", account=account,
                 jid=app_server, node=node)

    async def disable(self, stanza: Stanza, origin) -> None:
        """One registration (with a node) or all of them for the app server."""
        account = stanza.sender.bare().full()
        element = stanza.payload()
        app_server = _app_server(element).full()
        node = element.getAttribute("node")
        if node:
            keys = [registration_key(app_server, node)]
        else:
            stored = await self._store.items(account)
            keys = [key for key, value in stored.items() if value.get("jid") == app_server]
        for key in keys:
            await self._forget(account, key, "disabled by the client")

    async def _forget(self, account: str, key: str, why: str) -> None:
        pending = self._pending.pop((account, key), None)
        if pending is not None:
            pending.cancel()
        if await self._store.delete(account, key):
            log.info("push registration {key} of {account} removed: {why}", key=key,
                     account=account, why=why)

    # -- notifications (XEP-0357 §7)

    def back_online(self, session) -> None:
        """A live session gets the messages itself: counting starts over, and so does the
        rate limit (the device woke up; the next message after it sleeps again must wake
        it again, however soon)."""
        self._forget_pending(session.account)

    def forget_account(self, jid: JID) -> None:
        """USER_DELETED: the stored registrations go with the account; the memory too."""
        self._forget_pending(jid)

    def _forget_pending(self, jid: JID) -> None:
        account = jid.bare().full()
        for pending_key in [k for k in self._pending if k[0] == account]:
            self._pending.pop(pending_key).cancel()

    def stop(self) -> None:
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()

    def received(self, stanza: Stanza, origin) -> None:
        """A message for an account: push if nothing of it is live, then let it go on."""
        recipient = stanza.recipient
        if recipient is None or recipient.user is None or not worth_storing(stanza.element):
            return None
        account = recipient.bare()
        if self._live(account):
            return None
        d = defer.ensureDeferred(self._notify(account, stanza))
        d.addErrback(_log_failure, account)
        return None  # delivery (or offline storage) goes on without waiting for us

    def received_groupchat(self, stanza: Stanza, origin) -> None:
        """A room's message for one resource: a push when that session is hibernating (a
        phone that lost its connection is still in the room, XEP-0198, and must hear of it
        as of a chat message; with the session gone there is no one in the room to tell)."""
        session = self._session(stanza.recipient)
        if (session is None or not session.hibernating
                or not carries_content(stanza.element)):
            return None
        account = stanza.recipient.bare()
        d = defer.ensureDeferred(self._notify(account, stanza))
        d.addErrback(_log_failure, account)
        return None

    def _live(self, account: JID) -> bool:
        """A session bound and connected gets the message itself: no need to wake a phone."""
        return any(not session.hibernating for session in self._resources(account))

    async def _notify(self, account: JID, stanza: Stanza) -> None:
        registrations = await self._store.items(account.full())
        sender = stanza.sender.full() if stanza.sender is not None else None
        body = _body(stanza.element) if self.settings.include_body else None
        now = self._seconds()
        for key, value in registrations.items():
            pending = self._pending.setdefault((account.full(), key), _Pending())
            pending.count += 1
            pending.last_sender, pending.last_body = sender, body
            if (pending.last_push is not None
                    and now - pending.last_push < self.settings.min_interval):
                if pending.timer is None:  # counted; told when the interval is over
                    pending.timer = self._call_later(
                        pending.last_push + self.settings.min_interval - now,
                        self._interval_over, account, key)
                continue
            self._push(account, key, value, pending)

    def _push(self, account: JID, key: str, value: dict, pending: _Pending) -> None:
        pending.last_push = self._seconds()
        pending.told = pending.count
        log.debug("push {count} for {account} to {jid}", count=pending.count,
                  account=account, jid=value["jid"])
        d = self._send_iq(self._publish(account, value, pending), self.settings.timeout)
        d.addCallbacks(_published, self._refused,
                       errbackArgs=(account.full(), key, value["jid"]))
        d.addErrback(_log_failure, account)

    def _interval_over(self, account: JID, key: str) -> None:
        """The end of a rate-limited interval: tell what came during it, unless the account
        came back meanwhile (which forgot the count) or the registration went."""
        pending = self._pending.get((account.full(), key))
        if pending is None:
            return
        pending.timer = None
        if pending.count == pending.told:
            return
        d = self._store.get(account.full(), key)
        d.addCallback(self._push_if_still_registered, account, key, pending)
        d.addErrback(_log_failure, account)

    def _push_if_still_registered(self, value: dict | None, account: JID, key: str,
                                  pending: _Pending) -> None:
        if (value is not None and self._pending.get((account.full(), key)) is pending
                and not self._live(account)):
            self._push(account, key, value, pending)

    def _publish(self, account: JID, value: dict, pending: _Pending) -> domish.Element:
        """The pubsub publish of XEP-0357 §7, Example 12, from the account's bare JID."""
        iq = domish.Element((ns.CLIENT, "iq"))
        iq["type"] = "set"
        iq["from"] = account.full()
        iq["to"] = value["jid"]
        pubsub = iq.addElement((ns.PUBSUB, "pubsub"))
        publish = pubsub.addElement("publish")
        publish["node"] = value["node"]
        notification = publish.addElement("item").addElement((ns.PUSH, "notification"))
        fields = [make_field("message-count", str(pending.count))]
        if pending.last_sender is not None:
            fields.append(make_field("last-message-sender", pending.last_sender))
        if pending.last_body is not None:
            fields.append(make_field("last-message-body", pending.last_body))
        notification.addChild(
            Form.build("submit", fields, form_type=ns.PUSH_SUMMARY).to_element())
        if value.get("options"):
            options = [make_field(var, tuple(values)) for var, values in value["options"]]
            pubsub.addElement("publish-options").addChild(
                Form.build("submit", options,
                           form_type=ns.PUBSUB_PUBLISH_OPTIONS).to_element())
        return iq

    def _refused(self, failure, account: str, key: str, app_server: str):
        """An error answer means the app server no longer wants this registration; a
        timeout may be an outage, so the registration stays."""
        if failure.check(IQTimeout):
            log.warn("push to {jid} for {account} timed out", jid=app_server, account=account)
            return None
        if failure.check(defer.CancelledError):
            return None  # the plugin stopped
        failure.trap(StanzaError)
        log.warn("push to {jid} for {account} refused ({condition}): registration disabled",
                 jid=app_server, account=account, condition=failure.value.condition)
        return defer.ensureDeferred(self._forget(account, key, "the app server refused"))


def _app_server(element: domish.Element) -> JID:
    """The ``jid`` of an enable or disable: required, and a JID."""
    text = element.getAttribute("jid")
    if not text:
        raise StanzaError("bad-request", "the app server's jid is missing")
    try:
        return parse_jid(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", "the app server's jid is not a JID") from None


def _published(answer: Stanza) -> None:
    """A result: the app server took it; nothing in it matters to us."""


def _body(element: domish.Element) -> str | None:
    for child in element.elements():
        if child.name == "body" and child.uri == element.uri:
            return str(child)[:BODY_LIMIT]
    return None


def _log_failure(failure, account: JID) -> None:
    log.failure("push for {account} failed", failure, account=account)


push = Push()
