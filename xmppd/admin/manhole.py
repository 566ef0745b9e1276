# -*- test-case-name: tests.unit.test_manhole -*-
"""The SSH manhole: a Python prompt inside the running server, for operators.

twisted.conch serves a ColoredManhole over SSH. Logins are checked against an OpenSSH
authorized_keys file and/or the one password hash from ``[manhole]``; the username does not
matter, the key or password does. The host key is kept on disk so clients can pin it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.application import strports
from twisted.application.service import IService
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker, readAuthorizedKeyFile
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser
from twisted.conch.manhole import ColoredManhole
from twisted.conch.manhole_ssh import ConchFactory, TerminalRealm, TerminalSession
from twisted.conch.ssh import keys
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from zope.interface import implementer

from xmppd.admin.passwords import parse_hash, verify_password
from xmppd.config import ConfigError, ManholeConfig
from xmppd.logs import get_logger

log = get_logger(__name__)

# What code typed at the prompt sees as its module name, as in the stdlib's interactive console.
MANHOLE_MODULE_NAME = "__console__"


class ManholeSetupError(ConfigError):
    """The manhole cannot start as configured; the message names the ``manhole.*`` key."""


def make_manhole_service(
    config_manhole: ManholeConfig, namespace: dict[str, Any], reactor: Any = None
) -> IService | None:
    """The SSH manhole service, or None when ``[manhole] listen`` is empty (disabled).

    Raises ManholeSetupError when nobody could log in or a key file is unusable, so a bad
    setup stops start-up instead of leaving a port open that serves no one.
    """
    if not config_manhole.listen:
        return None
    if reactor is None:
        from twisted.internet import reactor
    portal = Portal(_manhole_realm(namespace), _credential_checkers(config_manhole, reactor))
    factory = ConchFactory(portal)
    host_key = load_or_create_host_key(Path(config_manhole.host_key))
    # Instance dicts: ConchFactory's class-level ones would be shared by every factory.
    factory.publicKeys = {host_key.sshType(): host_key.public()}
    factory.privateKeys = {host_key.sshType(): host_key}
    service = strports.service(config_manhole.listen, factory, reactor=reactor)
    service.setName("manhole")
    return service


def _manhole_realm(namespace: dict[str, Any]) -> TerminalRealm:
    """A realm whose every SSH shell is a ColoredManhole over a fresh copy of ``namespace``."""

    def terminal() -> insults.ServerProtocol:
        session_namespace = {**namespace, "__name__": MANHOLE_MODULE_NAME}
        return insults.ServerProtocol(ColoredManhole, session_namespace)

    realm = TerminalRealm()
    realm.sessionFactory = ResizableTerminalSession
    realm.chainedProtocolFactory = terminal
    return realm


class ResizableTerminalSession(TerminalSession):
    """conch's TerminalSession, plus what it leaves out: resizes, end of input, no pty.

    Without these, resizing the operator's window, piping a script into ``ssh`` or asking
    for a shell without a pty logs a traceback instead of redrawing, ending or working.
    """

    width, height = 80, 24  # until the client's pty request says otherwise
    _terminal = None

    def openShell(self, proto) -> None:
        self._terminal = self.transportFactory(
            proto, self.chainedProtocolFactory(), IConchUser(self.original), self.width, self.height
        )

    def windowChanged(self, newWindowSize) -> None:
        self.height, self.width = newWindowSize[:2]
        if self._terminal is not None:
            self._terminal.chainedProtocol.terminalProtocol.terminalSize(self.width, self.height)

    def eofReceived(self) -> None:
        if self._terminal is not None:
            self._terminal.chainedProtocol.loseConnection()


def _credential_checkers(config_manhole: ManholeConfig, reactor: Any) -> list:
    checkers: list = []
    if config_manhole.authorized_keys is not None:
        path = Path(config_manhole.authorized_keys)
        if not os.access(path, os.R_OK):
            raise ManholeSetupError(f"manhole.authorized_keys: cannot read {path}")
        checkers.append(SSHPublicKeyChecker(AuthorizedKeysFile(path)))
    if config_manhole.password_hash:
        try:
            parse_hash(config_manhole.password_hash)
        except ValueError as e:
            raise ManholeSetupError(f"manhole.password_hash: {e}") from None
        checkers.append(PasswordHashChecker(config_manhole.password_hash, reactor))
    if not checkers:
        raise ManholeSetupError(
            "manhole.listen is set but neither manhole.authorized_keys nor "
            "manhole.password_hash is: nobody could log in"
        )
    return checkers


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """The keys of one OpenSSH authorized_keys file, valid for any username.

    The file is read at each login, like OpenSSH does, so adding or revoking a key needs no
    restart. Lines with options (``from=...``) do not parse and are skipped: fail closed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def getAuthorizedKeys(self, avatarId: bytes) -> list[keys.Key]:  # conch's name
        try:
            with self.path.open("rb") as lines:
                return list(readAuthorizedKeyFile(lines))
        except OSError as e:
            log.error("manhole: cannot read {path}: {error}", path=str(self.path), error=e)
            return []


@implementer(ICredentialsChecker)
class PasswordHashChecker:
    """Accepts any username with the password whose hash is configured.

    The hash is slow on purpose, so it is checked in the reactor's thread pool (when the
    reactor has one) rather than stalling every XMPP stream. The password is never logged.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, password_hash: str, reactor: Any) -> None:
        self._password_hash = password_hash
        self._reactor = reactor

    def requestAvatarId(self, credentials: IUsernamePassword) -> defer.Deferred:
        username = credentials.username
        if IReactorThreads.providedBy(self._reactor):
            d = threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), self._matches, credentials.password
            )
        else:
            d = defer.maybeDeferred(self._matches, credentials.password)
        d.addCallback(self._avatar_or_refuse, username)
        return d

    def _matches(self, password: bytes | str) -> bool:
        if isinstance(password, bytes):
            try:
                password = password.decode("utf-8")
            except UnicodeDecodeError:
                return False
        try:
            return verify_password(password, self._password_hash)
        except ValueError:
            log.error("manhole: manhole.password_hash is malformed; every password is refused")
            return False

    def _avatar_or_refuse(self, matched: bool, username: bytes) -> bytes:
        if not matched:
            log.info("manhole: wrong password for {username!r}", username=username)
            raise UnauthorizedLogin("wrong password")
        return username


def load_or_create_host_key(path: Path) -> keys.Key:
    """The SSH host key stored at ``path``; a new Ed25519 key is written there (0600) if absent.

    Keeping the key across restarts lets clients pin it in known_hosts.
    """
    if not path.exists():
        _write_new_host_key(path)
    else:
        _warn_if_exposed(path)
    try:
        return keys.Key.fromFile(str(path))
    except (OSError, keys.BadKeyError, keys.EncryptedKeyError, ValueError) as e:
        raise ManholeSetupError(f"manhole.host_key: cannot load {path}: {e}") from e


def _write_new_host_key(path: Path) -> None:
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL with mode 0600: the private key is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(key.toString("openssh"))
    except OSError as e:
        raise ManholeSetupError(f"manhole.host_key: cannot create {path}: {e}") from e
    log.info(
        "manhole: created SSH host key {path} ({fingerprint})",
        path=str(path),
        fingerprint=key.fingerprint(keys.FingerprintFormats.SHA256_BASE64),
    )


def _warn_if_exposed(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # loading it will fail with a clearer message
    if mode & 0o077:
        log.warn(
            "manhole: host key {path} is readable by other users; chmod 600 it", path=str(path)
        )
