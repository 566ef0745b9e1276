"""The SSH manhole over real loopback sockets, driven by twisted.conch's own SSH client."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import channel, connection, keys, session, transport, userauth
from twisted.conch.ssh.common import getNS
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.policies import WrappingFactory
from twisted.trial import unittest

from xmppd.admin.manhole import (
    ManholeSetupError,
    load_or_create_host_key,
    make_manhole_service,
)
from xmppd.admin.passwords import hash_password
from xmppd.config import ManholeConfig

TIMEOUT = 5
PASSWORD = "correct horse"
# What the manhole prints for admin.answer(): the echoed input is colourised token by token,
# so this repr can only come from evaluating the call.
ANSWER = b"'forty-two'"


def new_key() -> keys.Key:
    return keys.Key(ed25519.Ed25519PrivateKey.generate())


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeAdmin:
    def answer(self) -> str:
        return "forty-two"


# --------------------------------------------------------------------------- an SSH client


class ShellChannel(channel.SSHChannel):
    """A session channel with a pty and a shell; collects what the manhole prints."""

    name = b"session"

    def __init__(self, *args, with_pty: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.with_pty = with_pty
        self.opened: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()
        self.output = b""
        self._waiting: list[tuple[bytes, defer.Deferred]] = []

    def channelOpen(self, specificData: bytes) -> None:
        d = defer.succeed(None)
        if self.with_pty:
            pty = session.packRequest_pty_req(b"xterm", (24, 80, 0, 0), b"")
            d.addCallback(lambda _: self.conn.sendRequest(self, b"pty-req", pty, wantReply=True))
        d.addCallback(lambda _: self.conn.sendRequest(self, b"shell", b"", wantReply=True))
        d.addCallbacks(lambda _: self.opened.callback(self), self.opened.errback)

    def closed(self) -> None:
        self.ended.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.output += data
        for wanted, d in list(self._waiting):
            if wanted in self.output:
                self._waiting.remove((wanted, d))
                d.callback(self.output)

    def wait_for(self, wanted: bytes) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._waiting.append((wanted, d))
        self.dataReceived(b"")
        return d


class OneShotUserAuth(userauth.SSHUserAuthClient):
    """Offers one key and/or one password, once each, then gives up."""

    def __init__(self, user, instance, key, password) -> None:
        super().__init__(user, instance)
        self._key = key
        self._password = password

    def getPublicKey(self):
        key, self._key = self._key, None
        self._offered = key
        return key.public() if key is not None else None

    def getPrivateKey(self):
        return defer.succeed(self._offered)

    def getPassword(self, prompt=None):
        password, self._password = self._password, None
        return defer.succeed(password.encode()) if password is not None else None

    def ssh_USERAUTH_FAILURE(self, packet: bytes):
        self.transport.factory.refusals += 1
        self.transport.factory.offered_methods = set(getNS(packet)[0].split(b","))
        return super().ssh_USERAUTH_FAILURE(packet)


class ClientConnection(connection.SSHConnection):
    def serviceStarted(self) -> None:
        super().serviceStarted()
        self.transport.factory.logged_in.callback(self)


class ClientTransport(transport.SSHClientTransport):
    def verifyHostKey(self, hostKey: bytes, fingerprint: bytes):
        self.factory.host_key_blobs.append(hostKey)
        return defer.succeed(True)

    def connectionSecure(self) -> None:
        f = self.factory
        self.requestService(OneShotUserAuth(b"admin", ClientConnection(), f.key, f.password))

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        if not self.factory.logged_in.called:
            self.factory.logged_in.errback(reason)
        self.factory.lost.callback(None)


class ClientFactory(protocol.ClientFactory):
    protocol = ClientTransport

    def __init__(self, key=None, password=None) -> None:
        self.key = key
        self.password = password
        self.host_key_blobs: list[bytes] = []
        self.refusals = 0  # USERAUTH_FAILUREs, counting the initial "none" probe
        self.offered_methods: set[bytes] = set()
        self.logged_in: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()


class TrackingFactory(WrappingFactory):
    """Wraps the manhole's factory so a test can wait for the server side to hang up too."""

    def __init__(self, wrapped) -> None:
        super().__init__(wrapped)
        self.all_closed: defer.Deferred | None = None

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
        if not self.protocols and self.all_closed is not None:
            self.all_closed, d = None, self.all_closed
            d.callback(None)

    def wait_all_closed(self) -> defer.Deferred:
        if not self.protocols:
            return defer.succeed(None)
        self.all_closed = defer.Deferred()
        return self.all_closed


# --------------------------------------------------------------------------- tests


class ManholeTests(unittest.TestCase):
    timeout = 5

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        self.user_key = new_key()
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_bytes(
            b"# operators\n" + self.user_key.public().toString("openssh") + b" ops@example\n"
        )
        self.port = free_loopback_port()
        self.namespace = {"server": object(), "admin": FakeAdmin(), "help": lambda: None}

    def config(self, **overrides) -> ManholeConfig:
        values = {
            "listen": f"tcp:{self.port}:interface=127.0.0.1",
            "authorized_keys": self.authorized_keys,
            "password_hash": hash_password(PASSWORD, iterations=1000),
            "host_key": self.dir / "keys" / "ssh_host_key",
        }
        values.update(overrides)
        return ManholeConfig(**values)

    def start(self, config) -> TrackingFactory:
        service = make_manhole_service(config, self.namespace, reactor=reactor)
        tracking = TrackingFactory(service.factory)
        service.factory = tracking
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(tracking.wait_all_closed)
        return tracking

    @defer.inlineCallbacks
    def connect(self, key=None, password=None):
        client = ClientFactory(key, password)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=TIMEOUT)
        proto = yield endpoint.connect(client)
        self.addCleanup(lambda: client.lost)
        self.addCleanup(proto.transport.loseConnection)
        return client

    @defer.inlineCallbacks
    def assert_refused(self, client, attempts: int = 1):
        """The server answered every attempt with a failure and never let the client in."""
        yield self.assertFailure(client.logged_in, Exception)
        # One refusal for the "none" probe, then one per credential offered.
        self.assertEqual(client.refusals, 1 + attempts)

    @defer.inlineCallbacks
    def open_shell(self, key=None, password=None, with_pty=True):
        client = yield self.connect(key=key, password=password)
        conn = yield client.logged_in
        shell = ShellChannel(conn=conn, with_pty=with_pty)
        conn.openChannel(shell)
        yield shell.opened
        return shell

    @defer.inlineCallbacks
    def evaluate(self, shell, line: bytes, wanted: bytes):
        shell.write(line + b"\r")
        output = yield shell.wait_for(wanted)
        return output

    @defer.inlineCallbacks
    def test_authorized_key_gets_a_python_prompt(self):
        self.start(self.config())
        shell = yield self.open_shell(key=self.user_key)
        output = yield self.evaluate(shell, b"admin.answer()", ANSWER)
        self.assertIn(ANSWER, output)

    @defer.inlineCallbacks
    def test_namespace_is_the_callers_plus_name(self):
        self.start(self.config())
        shell = yield self.open_shell(key=self.user_key)
        expected = b"['__name__', 'admin', 'help', 'server']"
        output = yield self.evaluate(
            shell, b"sorted(k for k in globals() if k != '__builtins__')", expected
        )
        self.assertIn(expected, output)

    @defer.inlineCallbacks
    def test_right_password_gets_a_python_prompt(self):
        self.start(self.config())
        shell = yield self.open_shell(password=PASSWORD)
        output = yield self.evaluate(shell, b"admin.answer()", ANSWER)
        self.assertIn(ANSWER, output)

    @defer.inlineCallbacks
    def test_window_resize_is_accepted(self):
        self.start(self.config())
        shell = yield self.open_shell(key=self.user_key)
        resize = session.packRequest_window_change((30, 100, 0, 0))
        # wantReply: the server answers failure if it cannot handle the request.
        yield shell.conn.sendRequest(shell, b"window-change", resize, wantReply=True)
        output = yield self.evaluate(shell, b"admin.answer()", ANSWER)
        self.assertIn(ANSWER, output)

    @defer.inlineCallbacks
    def test_shell_without_a_pty_still_works(self):
        self.start(self.config())
        shell = yield self.open_shell(key=self.user_key, with_pty=False)
        output = yield self.evaluate(shell, b"admin.answer()", ANSWER)
        self.assertIn(ANSWER, output)

    @defer.inlineCallbacks
    def test_end_of_input_ends_the_session(self):
        self.start(self.config())
        shell = yield self.open_shell(key=self.user_key)
        shell.conn.sendEOF(shell)
        yield shell.ended

    @defer.inlineCallbacks
    def test_wrong_key_is_refused(self):
        self.start(self.config(password_hash=None))
        client = yield self.connect(key=new_key())
        yield self.assert_refused(client)

    @defer.inlineCallbacks
    def test_wrong_password_is_refused(self):
        self.start(self.config(authorized_keys=None))
        client = yield self.connect(password="wrong horse")
        yield self.assert_refused(client)
        self.assertEqual(client.offered_methods, {b"password"})

    @defer.inlineCallbacks
    def test_password_is_refused_when_only_keys_are_configured(self):
        self.start(self.config(password_hash=None))
        client = yield self.connect(password=PASSWORD)
        yield self.assert_refused(client, attempts=0)
        self.assertEqual(client.offered_methods, {b"publickey"})

    @defer.inlineCallbacks
    def test_key_added_to_authorized_keys_works_without_restart(self):
        self.start(self.config(password_hash=None))
        late_key = new_key()
        with self.authorized_keys.open("ab") as f:
            f.write(late_key.public().toString("openssh") + b"\n")
        client = yield self.connect(key=late_key)
        conn = yield client.logged_in
        self.assertIsNotNone(conn)

    @defer.inlineCallbacks
    def test_host_key_is_created_private_and_reused(self):
        config = self.config()
        tracking = self.start(config)
        host_key_file = config.host_key
        self.assertEqual(stat.S_IMODE(host_key_file.stat().st_mode), 0o600)
        first = yield self.connect(key=self.user_key)
        conn = yield first.logged_in
        stored = keys.Key.fromFile(str(host_key_file))
        self.assertEqual(first.host_key_blobs, [stored.public().blob()])

        # A second service over the same file (a restart) presents the same key.
        conn.transport.loseConnection()
        yield first.lost
        yield tracking.wait_all_closed()
        self.port = free_loopback_port()
        self.start(self.config())
        second = yield self.connect(key=self.user_key)
        yield second.logged_in
        self.assertEqual(second.host_key_blobs, first.host_key_blobs)


class SetupTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def config(self, **overrides) -> ManholeConfig:
        values = {
            "listen": "tcp:0:interface=127.0.0.1",
            "authorized_keys": None,
            "password_hash": hash_password(PASSWORD, iterations=1000),
            "host_key": self.dir / "ssh_host_key",
        }
        values.update(overrides)
        return ManholeConfig(**values)

    def test_empty_listen_disables_the_manhole(self):
        self.assertIsNone(make_manhole_service(self.config(listen=""), {}))
        self.assertFalse((self.dir / "ssh_host_key").exists())

    def test_no_way_to_log_in_is_a_setup_error(self):
        with self.assertRaises(ManholeSetupError) as caught:
            make_manhole_service(self.config(password_hash=None), {})
        self.assertIn("nobody could log in", str(caught.exception))

    def test_malformed_password_hash_is_a_setup_error(self):
        with self.assertRaises(ManholeSetupError) as caught:
            make_manhole_service(self.config(password_hash="sha1$oops"), {})
        self.assertIn("manhole.password_hash", str(caught.exception))

    def test_missing_authorized_keys_file_is_a_setup_error(self):
        missing = self.dir / "nope"
        with self.assertRaises(ManholeSetupError) as caught:
            make_manhole_service(self.config(authorized_keys=missing), {})
        self.assertIn(str(missing), str(caught.exception))

    def test_unreadable_host_key_is_a_setup_error(self):
        bad = self.dir / "ssh_host_key"
        bad.write_bytes(b"not a key")
        with self.assertRaises(ManholeSetupError) as caught:
            load_or_create_host_key(bad)
        self.assertIn("manhole.host_key", str(caught.exception))

    def test_service_is_named_for_the_service_tree(self):
        service = make_manhole_service(self.config(), {})
        self.assertEqual(service.name, "manhole")
