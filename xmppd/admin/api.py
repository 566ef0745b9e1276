# -*- test-case-name: tests.unit.test_admin_api -*-
"""The one admin API: the manhole and xmppdctl are its two faces.

It works on the storage alone (xmppdctl, server stopped) or with the running server, when it
also ends the sessions of deleted accounts, lists and kicks sessions, and lists and closes
server-to-server links.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet import defer
from zope.interface import implementer

from xmppd import events
from xmppd.interfaces import IAdminAPI
from xmppd.jid import JID, InvalidJID, parse_jid, prepare_domain, prepare_password
from xmppd.logs import get_logger
from xmppd.sasl.credentials import derive_all
from xmppd.storage import UserNotFound

log = get_logger(__name__)

DELETED_CONDITION, DELETED_TEXT = "not-authorized", "account deleted"
KICKED_CONDITION, KICKED_TEXT = "policy-violation", "kicked by an administrator"
S2S_FIELDS = ("direction", "local", "remote", "auth", "tls", "peer")


@implementer(IAdminAPI)
class AdminAPI:
    """Accounts and sessions for operators. Never logs or echoes a password."""

    def __init__(self, storage, domains: Iterable[str], server=None) -> None:
        self.storage = storage
        self.domains = frozenset(_domain(domain) for domain in domains)
        self.server = server

    @classmethod
    def for_plugin(cls, ctx) -> AdminAPI:
        """The API from a plugin's context: its events and its read-only view of the sessions
        are all that account removal and ending sessions need of the running server."""
        return cls(ctx.storage, ctx.domains, _PluginFace(ctx.emit, ctx.sessions))

    # ------------------------------------------------------------------ accounts

    @defer.inlineCallbacks
    def add_user(self, jid: str | JID, password: str):
        """Create an account; fails with ValueError (bad JID or password) or UserExists."""
        account = self.account(jid)
        credentials = derive_all(prepare_password(password))  # its errors never quote it
        yield self.storage.users.create_user(account.user, account.host, credentials)
        log.info("account {jid} created", jid=account.full())
        if self.server is not None:
            yield self.server.emit(events.USER_CREATED, account)

    @defer.inlineCallbacks
    def delete_user(self, jid: str | JID):
        """Delete an account; its live sessions end with <not-authorized/>. Fires with how many."""
        account = self.account(jid)
        if not (yield self.storage.users.user_exists(account.user, account.host)):
            raise UserNotFound(account.user, account.host)
        if self.server is not None:  # plugins still see the account's data: unsubscribe etc.
            yield self.server.emit(events.USER_DELETING, account)
        yield self.storage.users.delete_user(account.user, account.host)
        log.info("account {jid} deleted", jid=account.full())
        closed = 0
        if self.server is not None:
            closed = end_deleted_sessions(self.server.sessions.resources(account))
            yield self.server.emit(events.USER_DELETED, account)
        return closed

    @defer.inlineCallbacks
    def set_password(self, jid: str | JID, password: str):
        """Replace an account's keys; open sessions stay (they authenticated before)."""
        account = self.account(jid)
        credentials = derive_all(prepare_password(password))  # its errors never quote it
        yield self.storage.users.set_credentials(account.user, account.host, credentials)
        log.info("password of {jid} changed", jid=account.full())

    def list_users(self, domain: str | None = None):
        """Deferred firing the sorted 'user@domain' strings, of one domain or of all."""
        try:
            host = None if domain is None else _domain(domain)
        except ValueError as error:
            return defer.fail(error)
        return self.storage.users.list_users(host)

    def backup(self, destination: str, force: str | None = None):
        """Copy the database into the new file ``destination`` (an absolute path), or over
        it with ``force`` = "force"; fires with what was written (xmppd.admin.backup)."""
        from xmppd.admin.backup import backup_call

        return backup_call(self.storage, destination, force)

    def account(self, jid: str | JID) -> JID:
        """``jid`` as the bare JID of an account on one of our domains, or ValueError saying why."""
        account = _parse(jid, "JID") if isinstance(jid, str) else jid
        if account.resource is not None:
            raise ValueError(f"{account.full()} has a resource: give the bare JID user@domain")
        if not account.user:
            raise ValueError(f"{account.full()} has no user part: give user@domain")
        if account.host not in self.domains:
            hosted = ", ".join(sorted(self.domains)) or "none"
            raise ValueError(f"{account.host} is not a domain of this server (hosted: {hosted})")
        return account

    # ------------------------------------------------------------------ sessions

    def list_sessions(self) -> list[dict]:
        """One dict per live session: jid, peer, secure, mechanism, since (POSIX seconds)."""
        sessions = self._running().sessions.all()
        rows = [
            {
                "jid": session.jid.full(),
                "peer": session.peer,
                "secure": session.secure,
                "mechanism": session.authenticated_by,
                "since": session.started,
            }
            for session in sessions
        ]
        return sorted(rows, key=lambda row: row["jid"])

    def kick(self, jid: str | JID) -> int:
        """Close the session of a full JID, or every session of a bare one; returns how many."""
        registry = self._running().sessions
        target = _parse(jid, "JID") if isinstance(jid, str) else jid
        if target.resource is None:
            sessions = registry.resources(target)
        else:
            session = registry.get(target)
            sessions = [] if session is None else [session]
        closed = _close_all(sessions, KICKED_CONDITION, KICKED_TEXT)
        log.info("kicked {count} session(s) of {jid}", count=closed, jid=target.full())
        return closed

    # ------------------------------------------------------------------ federation

    def list_s2s(self) -> list[dict]:
        """One dict per authenticated s2s link: direction ('incoming' or 'outgoing'), local and
        remote domain, auth ('certificate', 'dialback' or 'dialback+certificate'), tls (bool),
        peer (address:port). Empty when federation is off."""
        federation = self._running().s2s
        if federation is None:
            return []
        rows = [{key: link.get(key) for key in S2S_FIELDS} for link in federation.list_links()]
        return sorted(rows, key=lambda row: (row["remote"] or "", row["direction"],
                                             row["local"] or "", row["peer"] or ""))

    def close_s2s(self, domain: str) -> int:
        """Close every s2s stream with a remote domain, either direction; returns how many.
        An outgoing link is set up again by the next stanza for that domain."""
        remote = _domain(domain)
        federation = self._running().s2s
        closed = 0 if federation is None else federation.close_links(remote)
        log.info("closed {count} s2s stream(s) with {domain}", count=closed, domain=remote)
        return closed

    def _running(self):
        if self.server is None:
            raise RuntimeError("the server is not running")
        return self.server


class _PluginFace:
    """The running server as a plugin sees it: what ``emit`` and ``sessions`` give."""

    def __init__(self, emit, sessions) -> None:
        self.emit = emit
        self.sessions = sessions


def end_deleted_sessions(sessions) -> int:
    """End the sessions of a deleted account as account removal does (XEP-0077 §3.2: the
    stream closes with <not-authorized/>); also what a cluster's other nodes do with theirs
    (xmppd.cluster.accounts). Returns how many."""
    return _close_all(sessions, DELETED_CONDITION, DELETED_TEXT)


def _close_all(sessions, condition: str, text: str) -> int:
    sessions = list(sessions)  # a snapshot: each close unbinds from the registry
    for session in sessions:
        session.close(condition, text)
    return len(sessions)


def _parse(text: str, what: str) -> JID:
    try:
        return parse_jid(text)
    except InvalidJID as error:
        raise ValueError(f"invalid {what} {text!r}: {error}") from None


def _domain(text: str) -> str:
    """A domain in its prepared form (RFC 7622 §3.2), or ValueError saying why not."""
    try:
        return prepare_domain(text)
    except (InvalidJID, TypeError) as error:
        raise ValueError(f"invalid domain {text!r}: {error}") from None


