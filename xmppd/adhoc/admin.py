# -*- test-case-name: tests.unit.test_adhoc_admin -*-
"""XEP-0133 service administration from a client: the one admin API behind another door.

Accounts are added, deleted and given new passwords through ``AdminAPI`` exactly as
``xmppdctl adduser``/``deluser``/``passwd`` do them (same checks, same clean-up, the same log
lines without the password); ``end-user-session`` is ``xmppdctl kick``. Lists and counts
are of the domain the command was sent to. Only ``[server] admins`` see or run any of it
(XEP-0133 §5: everyone else gets ``forbidden``; they are not even listed the commands).

The message of the day (``set-motd``/``edit-motd``/``delete-motd``) is kept per domain and
sent, as a headline, to every session of that domain when it sends its initial presence;
``announce`` sends one headline to every available session of the domain now. It is read
from storage once per domain and kept in memory (it is written only here, by the commands
below, which update the kept copy after their write): a login costs no read for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.adhoc.commands import Command, CommandError, Outcome, Request
from xmppd.forms import Form, make_field
from xmppd.jid import JID
from xmppd.storage import UserExists, UserNotFound

NODE = ns.ADMIN_COMMANDS + "#"
MAX_ITEMS_CHOICES = ("25", "50", "75", "100", "150", "200", "none")
# labelled as in XEP-0133's examples: clients such as profanity print an option's label
MAX_ITEMS_OPTIONS = tuple((choice, choice.capitalize()) for choice in MAX_ITEMS_CHOICES)
MOTD_SUBJECT = "Message of the day"


class AdminCommands:
    """The XEP-0133 commands of one server."""

    def __init__(self, accounts, sessions, send: Callable, motd_store,
                 admins: Callable[[], Iterable[JID]], disabled: Callable) -> None:
        self.accounts = accounts  # xmppd.admin.api.AdminAPI
        self.sessions = sessions  # the context's read-only view
        self.send = send
        self.motd_store = motd_store  # keyval: domain -> {"subject", "body"}
        self._motds: dict[str, dict | None] = {}  # domain -> its message of the day, once read
        self.admins = admins
        self.disabled = disabled  # the IDisabledAccounts provider now, or None

    def is_admin(self, requester: JID) -> bool:
        return requester.bare() in {jid.bare() for jid in self.admins()}

    def commands(self) -> list[Command]:
        def command(name: str, label: str, run, form=None) -> Command:
            return Command(NODE + name, label, run, form, self.is_admin)

        return [
            command("add-user", "Add a user", self.add_user, self.add_user_form),
            command("delete-user", "Delete users", self.delete_users, _accounts_form),
            command("change-user-password", "Change a user's password",
                    self.change_password, self.password_form),
            command("end-user-session", "End users' sessions", self.end_sessions,
                    _accounts_form),
            command("disable-user", "Disable users", self.disable_users, _accounts_form),
            command("reenable-user", "Re-enable users", self.enable_users, _accounts_form),
            command("get-disabled-users-num", "Number of disabled users",
                    self.disabled_count),
            command("get-disabled-users-list", "List of disabled users",
                    self.disabled_list, _max_items_form),
            command("get-registered-users-num", "Number of registered users",
                    self.registered_count),
            command("get-registered-users-list", "List of registered users",
                    self.registered_list, _max_items_form),
            command("get-online-users-num", "Number of online users", self.online_count),
            command("get-online-users-list", "List of online users", self.online_list,
                    _max_items_form),
            command("announce", "Send an announcement to online users", self.announce,
                    _announcement_form),
            command("set-motd", "Set the message of the day", self.set_motd, self.motd_form),
            command("edit-motd", "Edit the message of the day", self.set_motd, self.motd_form),
            command("delete-motd", "Delete the message of the day", self.delete_motd),
        ]

    # -- accounts

    def add_user_form(self, request: Request) -> Form:
        return _form("Adding a user", [
            make_field("accountjid", type="jid-single", label="The Jabber ID for the account "
                       "to be added", required=True),
            make_field("password", type="text-private", label="The password for this account",
                       required=True),
            make_field("password-verify", type="text-private", label="Retype password",
                       required=True),
        ])

    @defer.inlineCallbacks
    def add_user(self, request: Request, form: Form):
        account = self._account(request, form.get_jid("accountjid"))
        password = form.get_text("password") or ""
        if password != form.get_text("password-verify", password):
            raise CommandError("not-acceptable", text="the passwords do not match")
        try:
            yield self.accounts.add_user(account, password)
        except UserExists:
            raise CommandError("conflict", text=f"{account.full()} already exists") from None
        except ValueError as error:  # a password the server refuses; never quoted
            raise CommandError("not-acceptable", text=str(error)) from None
        return Outcome(f"{account.full()} was added")

    def password_form(self, request: Request) -> Form:
        return _form("Changing a user's password", [
            make_field("accountjid", type="jid-single", label="The Jabber ID whose password "
                       "will change", required=True),
            make_field("password", type="text-private", label="The new password",
                       required=True),
        ])

    @defer.inlineCallbacks
    def change_password(self, request: Request, form: Form):
        account = self._account(request, form.get_jid("accountjid"))
        try:
            yield self.accounts.set_password(account, form.get_text("password") or "")
        except UserNotFound:
            raise CommandError("item-not-found", text=f"no account {account.full()}") from None
        except ValueError as error:
            raise CommandError("not-acceptable", text=str(error)) from None
        return Outcome(f"the password of {account.full()} was changed")

    @defer.inlineCallbacks
    def delete_users(self, request: Request, form: Form):
        accounts = self._accounts(request, form)
        deleted, missing = [], []
        for account in accounts:
            try:
                yield self.accounts.delete_user(account)
                deleted.append(account.full())
            except UserNotFound:
                missing.append(account.full())
        return _listing("deleted", deleted, "no such account", missing)

    def end_sessions(self, request: Request, form: Form) -> Outcome:
        closed = sum(self.accounts.kick(account) for account in self._accounts(request, form))
        return Outcome(f"{closed} session(s) ended")

    @defer.inlineCallbacks
    def disable_users(self, request: Request, form: Form):
        accounts, disabled = self._accounts(request, form), self._disabling()
        for account in accounts:
            yield disabled.disable(account)
        return Outcome(f"disabled: {', '.join(account.full() for account in accounts)}")

    @defer.inlineCallbacks
    def enable_users(self, request: Request, form: Form):
        accounts, disabled = self._accounts(request, form), self._disabling()
        enabled, already = [], []
        for account in accounts:
            was = yield disabled.enable(account)
            (enabled if was else already).append(account.full())
        return _listing("enabled", enabled, "were not disabled", already)

    @defer.inlineCallbacks
    def disabled_count(self, request: Request, form: None):
        users = yield self._disabling().listed(request.entity.host)
        return _result(make_field("disabledusersnum", len(users),
                                  type="text-single",
                                  label="The number of disabled users"))

    @defer.inlineCallbacks
    def disabled_list(self, request: Request, form: Form):
        users = yield self._disabling().listed(request.entity.host)
        return _result(make_field("disableduserjids", _first(users, form), type="jid-multi",
                                  label="The list of all disabled users"))

    def _disabling(self):
        provider = self.disabled()
        if provider is None:
            raise CommandError("service-unavailable",
                               text="accounts cannot be disabled: account_status is off")
        return provider

    # -- counts and lists of the domain asked

    @defer.inlineCallbacks
    def registered_count(self, request: Request, form: None):
        users = yield self.accounts.list_users(request.entity.host)
        return _result(make_field("registeredusersnum", len(users),
                                  type="text-single",
                                  label="The number of registered users"))

    @defer.inlineCallbacks
    def registered_list(self, request: Request, form: Form):
        users = yield self.accounts.list_users(request.entity.host)
        return _result(make_field("registereduserjids", _first(users, form), type="jid-multi",
                                  label="The list of all users"))

    def online_count(self, request: Request, form: None) -> Outcome:
        return _result(make_field("onlineusersnum", len(self._online(request)),
                                  type="text-single",
                                  label="The number of online users"))

    def online_list(self, request: Request, form: Form) -> Outcome:
        return _result(make_field("onlineuserjids", _first(self._online(request), form),
                                  type="jid-multi", label="The list of all online users"))

    def _online(self, request: Request) -> list[str]:
        host = request.entity.host
        return sorted({session.jid.userhost() for session in self.sessions.all()
                       if session.jid.host == host})

    # -- announcements and the message of the day

    def announce(self, request: Request, form: Form) -> Outcome:
        body = _multiline(form, "announcement")
        if not body:
            raise CommandError("bad-request", "bad-payload", "an announcement needs a text")
        sent = 0
        for session in self._available(request.entity.host):
            self.send(headline(request.entity.host, session.jid, form.get_text("subject"), body))
            sent += 1
        return Outcome(f"announcement sent to {sent} session(s)")

    @defer.inlineCallbacks
    def motd_form(self, request: Request):
        current = (yield self.motd_store.get(request.entity.host)) or {}
        return _form("Message of the day", [
            make_field("subject", current.get("subject", MOTD_SUBJECT), type="text-single",
                       label="Subject"),
            make_field("motd", current.get("body", "").split("\n") if current else None,
                       type="text-multi", label="Message body", required=True),
        ])

    @defer.inlineCallbacks
    def set_motd(self, request: Request, form: Form):
        body = _multiline(form, "motd")
        if not body:
            raise CommandError("bad-request", "bad-payload", "a message of the day needs a text")
        subject = form.get_text("subject") or MOTD_SUBJECT
        motd = {"subject": subject, "body": body}
        yield self._write_motd(request.entity.host, self.motd_store.set, motd)
        return Outcome("the message of the day is set")

    @defer.inlineCallbacks
    def delete_motd(self, request: Request, form: None):
        yield self._write_motd(request.entity.host, self.motd_store.delete)
        return Outcome("the message of the day is deleted")

    @defer.inlineCallbacks
    def _write_motd(self, host: str, write: Callable, *motd: dict):
        """Write (set or delete) the domain's message of the day, then keep it in memory; a
        failed write forgets the kept copy, so the next login reads what storage has."""
        try:
            yield write(host, *motd)
        except Exception:
            self._motds.pop(host, None)
            raise
        self._motds[host] = motd[0] if motd else None

    def _motd(self, host: str) -> defer.Deferred:
        """The domain's message of the day (or None), read from storage the first time."""
        if host in self._motds:
            return defer.succeed(self._motds[host])
        return self.motd_store.get(host).addCallback(self._read_motd, host)

    def _read_motd(self, motd: dict | None, host: str) -> dict | None:
        return self._motds.setdefault(host, motd)  # a write that finished meanwhile wins

    @defer.inlineCallbacks
    def on_available(self, session):
        """A session sent its initial presence: the message of the day, if its domain has one."""
        motd = yield self._motd(session.jid.host)
        if motd:
            self.send(headline(session.jid.host, session.jid, motd["subject"], motd["body"]))

    def _available(self, host: str) -> list:
        return [session for session in self.sessions.all()
                if session.jid.host == host and session.available]

    # -- checks

    def _account(self, request: Request, jid: JID | None) -> JID:
        if jid is None:
            raise CommandError("bad-request", "bad-payload", "the form needs an accountjid")
        return self._checked(request, jid)

    def _accounts(self, request: Request, form: Form) -> list[JID]:
        jids = form.get_jids("accountjids")
        if not jids:
            raise CommandError("bad-request", "bad-payload", "the form needs accountjids")
        return [self._checked(request, jid) for jid in jids]

    def _checked(self, request: Request, jid: JID) -> JID:
        try:
            return self.accounts.account(jid)
        except ValueError as error:
            raise CommandError("bad-request", "bad-payload", str(error)) from None


def headline(host: str, to: JID, subject: str | None, body: str) -> domish.Element:
    message = domish.Element((ns.CLIENT, "message"))
    message["from"] = host
    message["to"] = to.full()
    message["type"] = "headline"
    if subject:
        message.addElement("subject", content=subject)
    message.addElement("body", content=body)
    return message


def _form(title: str, fields: list, type: str = "form") -> Form:
    return Form.build(type, fields, form_type=ns.ADMIN_COMMANDS, title=title)


def _result(*fields) -> Outcome:
    return Outcome(form=Form.build("result", fields, form_type=ns.ADMIN_COMMANDS))


def _accounts_form(request: Request) -> Form:
    return _form("Accounts", [make_field("accountjids", type="jid-multi",
                                         label="The Jabber IDs", required=True)])


def _max_items_form(request: Request) -> Form:
    return _form("How many", [make_field("max_items", "100", type="list-single",
                                         label="Maximum number of items to show",
                                         options=MAX_ITEMS_OPTIONS)])


def _announcement_form(request: Request) -> Form:
    return _form("Announcement", [
        make_field("subject", type="text-single", label="Subject"),
        make_field("announcement", type="text-multi", label="Announcement", required=True),
    ])


def _first(items: list[str], form: Form) -> list[str]:
    limit = form.get_choice("max_items", MAX_ITEMS_CHOICES, "none")
    return list(items) if limit == "none" else list(items)[: int(limit)]


def _multiline(form: Form, var: str) -> str:
    return "\n".join(form.get_values(var)).strip()


def _listing(done: str, names: list[str], failed: str, failures: list[str]) -> Outcome:
    parts = [f"{done}: {', '.join(names)}"] if names else []
    if failures:
        parts.append(f"{failed}: {', '.join(failures)}")
    return Outcome("; ".join(parts) or "nothing to do", "warn" if failures else "info")
