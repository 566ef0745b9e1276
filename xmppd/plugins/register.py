# -*- test-case-name: tests.unit.test_register -*-
"""XEP-0077 in-band registration, with XEP-0401/0445 invitations; off unless enabled.

Not in the default plugins: an open registration on a public server is a spam factory, so
an operator adds ``register`` to ``[plugins] enabled`` and then chooses, in
``[plugins.register]``:

- ``open`` (false): anyone may register; when false, only with an invitation token that
  ``xmppdctl invite [USER]`` prints (with its ``xmpp:`` URI, XEP-0401 §5.2);
- ``per_ip`` (5) registrations from one IP address per ``period`` (3600) seconds, beyond
  which a registration is ``policy-violation`` (a flood from one address ends there, before
  the costly key derivation);
- ``min_password`` (8) characters, ``invite_ttl`` (604800: a week) seconds an invitation
  stays valid.

Before authentication (only on encrypted streams: the c2s seam refuses the rest) a client
may ask for the form, register, or present a token with ``<preauth/>`` (XEP-0445). After
it, the account's owner may change its password (§3.3) or remove the account (§3.2); the
removal takes the ``xmppdctl deluser`` path (xmppd.admin.api.AdminAPI.delete_user), so
every plugin cleans up after it the same way.

Tokens are stored only as SHA-256 hashes (a leaked database holds no usable invitation),
with their expiry and the username they reserve, and are consumed by the registration they
allow, not before (XEP-0445 §4: a failed attempt keeps the token usable).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import weakref
from collections import deque
from dataclasses import dataclass

from twisted.internet import defer, threads
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.admin.api import AdminAPI
from xmppd.errors import StanzaError
from xmppd.forms import Form, make_field, parse_form
from xmppd.interfaces import IXmppdPlugin
from xmppd.jid import InvalidJID, jid_from_parts, prepare_localpart, prepare_password
from xmppd.logs import get_logger
from xmppd.sasl.credentials import derive_all
from xmppd.stanza import make_iq_result
from xmppd.storage import UserExists

log = get_logger(__name__)

STORE = "register_invites"  # map store: owner = domain, key = token hash
TOKEN_BYTES = 24
MAX_TRACKED_ADDRESSES = 10_000  # the rate limiter's memory stays bounded under a flood
INSTRUCTIONS = "Choose a username and a password to register on this server."


@dataclass(frozen=True)
class RegisterSettings:
    open: bool = False
    per_ip: int = 5
    period: int = 3600
    min_password: int = 8
    invite_ttl: int = 7 * 24 * 3600


@implementer(IXmppdPlugin)
class Register:
    name = "register"
    requires = ()

    def configure(self, options) -> RegisterSettings:
        """Checked before the database opens: an unknown key or bad value stops start-up."""
        options.known("open", "per_ip", "period", "min_password", "invite_ttl")
        defaults = RegisterSettings()
        return RegisterSettings(
            open=options.option_bool("open", defaults.open),
            per_ip=options.option_int("per_ip", defaults.per_ip, minimum=1),
            period=options.option_int("period", defaults.period, minimum=1),
            min_password=options.option_int("min_password", defaults.min_password, minimum=1),
            invite_ttl=options.option_int("invite_ttl", defaults.invite_ttl, minimum=1),
        )

    def setup(self, ctx) -> None:
        settings = ctx.settings if isinstance(ctx.settings, RegisterSettings) \
            else self.configure(ctx)
        registration = Registration(ctx, settings)
        ctx.stream_feature(registration.stream_feature, stage="pre-auth")
        ctx.stream_feature(registration.token_feature, stage="pre-auth")
        ctx.claim_iq_before_auth(ns.REGISTER, registration.before_auth)
        ctx.claim_iq_before_auth(ns.PARS, registration.preauth)
        ctx.iq("get", ns.REGISTER, "query", registration.on_get, to=("host", "self"))
        ctx.iq("set", ns.REGISTER, "query", registration.on_set, to=("host", "self"))
        ctx.feature(ns.REGISTER)
        ctx.admin_command("invite", registration.invite,
                          "print a one-time registration token and its xmpp: URI "
                          "(USER: reserve that username for it)", args=("USER?",))


class RateLimiter:
    """At most ``limit`` events per ``period`` seconds per key (a sliding window)."""

    def __init__(self, clock, limit: int, period: int) -> None:
        self.clock = clock
        self.limit = limit
        self.period = period
        self._seen: dict[str, deque[float]] = {}

    def allowed(self, key: str) -> bool:
        now = self.clock.seconds()
        times = self._seen.get(key)
        if times is not None:
            while times and times[0] <= now - self.period:
                times.popleft()
            if len(times) >= self.limit:
                return False
        return True

    def record(self, key: str) -> None:
        if key not in self._seen and len(self._seen) >= MAX_TRACKED_ADDRESSES:
            self._forget_idle()
        self._seen.setdefault(key, deque()).append(self.clock.seconds())

    def _forget_idle(self) -> None:
        horizon = self.clock.seconds() - self.period
        for key in [key for key, times in self._seen.items() if not times or times[-1] <= horizon]:
            del self._seen[key]
        while len(self._seen) >= MAX_TRACKED_ADDRESSES:  # all busy: forget the oldest entry
            del self._seen[next(iter(self._seen))]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Registration:
    """The registration service of one server: forms, accounts, invitations."""

    def __init__(self, ctx, settings: RegisterSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.users = ctx.storage.users
        self.invites = ctx.open_store(STORE, "map")
        self.limiter = RateLimiter(ctx.reactor, settings.per_ip, settings.period)
        self.accounts = AdminAPI.for_plugin(ctx)
        # a token accepted by <preauth/> on a stream, for its registration (XEP-0445 §4)
        self._stream_tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._busy: set[str] = set()  # token hashes and usernames being registered now

    # -- stream features (the seam calls these on encrypted, unauthenticated streams)

    def stream_feature(self, stream) -> domish.Element | None:
        if not self.settings.open:
            return None  # closed: only invitees register, and XEP-0445's feature says so
        return domish.Element((ns.REGISTER_FEATURE, "register"))

    def token_feature(self, stream) -> domish.Element:
        return domish.Element((ns.IBR_TOKEN, "register"))

    # -- before authentication

    def before_auth(self, element: domish.Element, stream):
        d = defer.maybeDeferred(self._before_auth, element, stream)
        d.addCallbacks(lambda payload: stream.send(make_iq_result(element, payload)),
                       self._refused, errbackArgs=(element, stream))
        return d

    def _before_auth(self, element: domish.Element, stream):
        query = next(element.elements())
        if element.getAttribute("type") == "get" and query.name == "query":
            return self._form(stream)
        if element.getAttribute("type") != "set" or query.name != "query":
            raise StanzaError("bad-request", "a registration is an IQ set of <query/>")
        if _child(query, "remove") is not None:
            raise StanzaError("not-authorized", "log in to remove an account")
        return self._register(stream, query)

    def preauth(self, element: domish.Element, stream):
        """XEP-0445 §4: check a token now; it is consumed by the registration it allows."""
        def check(_):
            payload = next(element.elements())
            if element.getAttribute("type") != "set" or payload.name != "preauth":
                raise StanzaError("bad-request", "preauth is an IQ set")
            return self._valid_invite(stream.domain, payload.getAttribute("token") or "")

        def accepted(invite):
            if invite is None:
                raise StanzaError("item-not-found", "the token is invalid or expired")
            self._stream_tokens[stream] = invite
            stream.send(make_iq_result(element))

        d = defer.succeed(None).addCallback(check).addCallback(accepted)
        d.addErrback(self._refused, element, stream)
        return d

    def _refused(self, failure, element: domish.Element, stream) -> None:
        if not failure.check(StanzaError):
            log.failure("registration failed from {peer}", failure, peer=stream.peer_address)
            error = StanzaError("internal-server-error")
        else:
            error = failure.value
            log.info("registration refused from {peer}: {condition} ({text})",
                     peer=stream.peer_address, condition=error.condition, text=error.text)
        stream.send(error.to_response(element))

    def _form(self, stream) -> domish.Element:
        query = domish.Element((ns.REGISTER, "query"))
        query.addElement("instructions", content=INSTRUCTIONS)
        query.addElement("username")
        query.addElement("password")
        need_token = not self.settings.open and stream not in self._stream_tokens
        fields = [make_field("username", type="text-single", label="Username", required=True),
                  make_field("password", type="text-private", label="Password", required=True)]
        if need_token:
            fields.append(make_field("token", type="text-single", label="Invitation token",
                                     required=True))
        form = Form.build("form", fields, form_type=ns.REGISTER, title="Registration",
                          instructions=(INSTRUCTIONS,))
        query.addChild(form.to_element())
        return query

    @defer.inlineCallbacks
    def _register(self, stream, query: domish.Element):
        username, password, token = _credentials(query)
        domain = stream.domain
        localpart = _username(username)
        password = self._password(password)
        invite = self._stream_tokens.get(stream)
        if token:
            invite = yield self._valid_invite(domain, token)
            if invite is None:
                raise StanzaError("not-allowed", "the invitation is invalid or expired")
        if invite is None and not self.settings.open:
            raise StanzaError("not-allowed", "registration needs an invitation")
        if invite is not None and invite["user"] not in (None, localpart):
            raise StanzaError("not-allowed", "this invitation is for another username")
        if invite is None or invite["user"] is None:
            reserved = yield self._reserved(domain)
            if localpart in reserved:
                raise StanzaError("conflict", "this username is reserved")
        address = _host(stream.peer_address)
        if not self.limiter.allowed(address):
            log.warn("registration refused from {address}: more than {limit} in {period} s",
                     address=address, limit=self.settings.per_ip, period=self.settings.period)
            raise StanzaError("policy-violation", "too many registrations from your address",
                              type="wait")
        busy = {localpart} | ({invite["hash"]} if invite is not None else set())
        if busy & self._busy:
            raise StanzaError("conflict", "a registration for this is under way")
        self._busy |= busy  # before any wait: two streams cannot race for one name or token
        try:
            if (yield self.users.user_exists(localpart, domain)):
                raise StanzaError("conflict", "the username is taken")
            self.limiter.record(address)  # counted before the slow part: a flood stops here
            credentials = yield threads.deferToThread(derive_all, password)  # PBKDF2: slow
            try:
                yield self.users.create_user(localpart, domain, credentials)
            except UserExists:
                raise StanzaError("conflict", "the username is taken") from None
            if invite is not None:
                yield self.invites.delete(domain, invite["hash"])
                self._stream_tokens.pop(stream, None)
        finally:
            self._busy -= busy
        account = jid_from_parts(localpart, domain, None)
        log.info("account {jid} registered in-band from {address}{how}", jid=account.full(),
                 address=address, how=" with an invitation" if invite is not None else "")
        yield self.ctx.emit(events.USER_CREATED, account)
        return None

    def _password(self, password: str | None) -> str:
        try:
            prepared = prepare_password(password or "")
        except (ValueError, TypeError):
            raise StanzaError("not-acceptable", "the password is empty or not allowed") from None
        if len(prepared) < self.settings.min_password:
            raise StanzaError("not-acceptable", f"the password needs at least "
                                                f"{self.settings.min_password} characters")
        return prepared

    # -- invitations

    @defer.inlineCallbacks
    def _valid_invite(self, domain: str, token: str):
        """The stored invitation of ``token`` (with its hash) if it is valid now, or None."""
        if not token:
            return None
        key = hash_token(token)
        stored = yield self.invites.get(domain, key)
        if not stored or stored.get("expires", 0) <= self.ctx.reactor.seconds():
            return None  # looked up by hash: no comparison of secrets to time
        return {"hash": key, "user": stored.get("user")}

    @defer.inlineCallbacks
    def _reserved(self, domain: str):
        """Usernames promised to an unexpired invitation (XEP-0445 §5)."""
        now = self.ctx.reactor.seconds()
        items = yield self.invites.items(domain)
        return {value["user"] for value in dict(items).values()
                if value.get("user") and value.get("expires", 0) > now}

    @defer.inlineCallbacks
    def invite(self, user: str | None = None):
        """``xmppdctl invite [USER]``: a new token (shown once; only its hash is kept)."""
        if user and "@" in user:
            account = self.accounts.account(user)
            localpart, domain = account.user, account.host
        else:
            domain = sorted(self.ctx.domains)[0]
            localpart = _username(user, ValueError) if user else None
        if localpart is not None and (yield self.users.user_exists(localpart, domain)):
            raise ValueError(f"{localpart}@{domain} exists already")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires = self.ctx.reactor.seconds() + self.settings.invite_ttl
        yield self._forget_expired(domain)
        yield self.invites.set(domain, hash_token(token),
                               {"expires": expires, "user": localpart})
        address = f"{localpart}@{domain}" if localpart else domain
        log.info("invitation created for {address}, valid {ttl} s", address=address,
                 ttl=self.settings.invite_ttl)
        return {"token": token, "uri": f"xmpp:{address}?register;preauth={token}",
                "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))}

    @defer.inlineCallbacks
    def _forget_expired(self, domain: str):
        now = self.ctx.reactor.seconds()
        stored = yield self.invites.items(domain)  # a dict: key -> value
        for key, value in dict(stored).items():
            if value.get("expires", 0) <= now:
                yield self.invites.delete(domain, key)

    # -- after authentication: the account's owner

    def on_get(self, stanza, origin) -> domish.Element:
        query = domish.Element((ns.REGISTER, "query"))
        query.addElement("registered")
        query.addElement("username", content=stanza.sender.user)
        return query

    def on_set(self, stanza, origin):
        query = stanza.payload()
        account = stanza.sender.bare()
        if _child(query, "remove") is not None:
            # the result first, then the removal: it closes this stream (XEP-0077 §3.2)
            self.ctx.reactor.callLater(0, self._remove, account)
            return None
        username, password, _token = _credentials(query)
        if username is None or _username(username) != account.user:
            raise StanzaError("not-allowed", "only the account's own password can be changed")
        return self._change_password(account, self._password(password))

    @defer.inlineCallbacks
    def _change_password(self, account, password: str):
        credentials = yield threads.deferToThread(derive_all, password)
        yield self.users.set_credentials(account.user, account.host, credentials)
        log.info("password of {jid} changed in-band", jid=account.full())
        return None

    def _remove(self, account) -> defer.Deferred:
        d = self.accounts.delete_user(account)
        d.addErrback(lambda failure: log.failure("removing {jid} failed", failure,
                                                 jid=account.full()))
        return d


def _child(parent: domish.Element, name: str) -> domish.Element | None:
    return next((child for child in parent.elements() if child.name == name), None)


def _credentials(query: domish.Element) -> tuple[str | None, str | None, str | None]:
    """username, password and token, from a data form if there is one, else the legacy
    fields (XEP-0077 §3.1 allows either; a token field is ours, XEP-0445 puts it in
    <preauth/>)."""
    form_element = next((child for child in query.elements()
                         if (child.uri, child.name) == (ns.DATA_FORMS, "x")), None)
    if form_element is not None:
        form = parse_form(form_element)
        return (form.get_text("username"), form.get_text("password"), form.get_text("token"))
    values = []
    for name in ("username", "password", "token"):
        child = _child(query, name)
        values.append(None if child is None else str(child))
    return values[0], values[1], values[2]


def _username(username: str | None, error: type[Exception] = StanzaError) -> str:
    try:
        return prepare_localpart(username or "")
    except (InvalidJID, ValueError) as problem:
        if error is StanzaError:
            raise StanzaError("not-acceptable", "the username is not allowed") from None
        raise ValueError(f"invalid username {username!r}: {problem}") from None


def _host(peer_address: str) -> str:
    """'203.0.113.5:40000' -> '203.0.113.5' (and an IPv6 address without its port)."""
    host, separator, _port = peer_address.rpartition(":")
    return host if separator else peer_address


register = Register()
