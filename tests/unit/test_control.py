"""The control channel over a real UNIX socket: the protocol, its allow-list and errors, the
socket file's life (mode, stale files, a live owner) and the client's errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

from xmppd.admin import control
from xmppd.admin.api import AdminAPI
from xmppd.jid import parse_jid
from xmppd.logs import set_level
from xmppd.storage import UserExists, UserNotFound
from xmppd.storage.sqlite import SQLiteStorage

PASSWORD = "a secret that must never be logged"


class FakeAdmin:
    """An admin API whose answers each test controls; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.pending: dict[str, defer.Deferred] = {}
        self.broken = False

    def add_user(self, jid, password):
        self.calls.append(("add_user", jid, password))
        if self.broken:
            raise RuntimeError(f"disk on fire while adding {jid}")
        if jid == "taken@example.org":
            raise UserExists("taken", "example.org")
        return None

    def set_password(self, jid, password):
        raise ValueError("the password is too\nshort")  # one line on the wire

    def delete_user(self, jid):
        return defer.fail(UserNotFound("carol", "example.org"))

    def list_users(self, domain=None):
        self.pending[domain or ""] = d = defer.Deferred()
        return d

    def list_sessions(self):
        return [{"jid": parse_jid("alice@example.org/phone"), "secure": True,
                 "groups": ("a", "b"), "since": 1000.5}]

    def kick(self, jid):
        return {"odd": object()}  # a result JSON cannot carry

    def shutdown(self):  # a public method that is not on the allow-list
        raise AssertionError("the control channel called a method off its allow-list")


class LineClient(LineReceiver):
    """A raw client: sends bytes as they are, collects each answer as parsed JSON."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self) -> None:
        self.answers: defer.DeferredQueue = defer.DeferredQueue()
        self.closed = defer.Deferred()

    def lineReceived(self, line: bytes) -> None:
        self.answers.put(json.loads(line))

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(None)


def short_temp_dir(case: unittest.TestCase) -> Path:
    """A folder whose socket paths fit in sun_path (trial's own temp paths may not)."""
    folder = Path(tempfile.mkdtemp(prefix="xmppd-control-"))
    case.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    return folder


def leave_stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a killed server leaves behind."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))


class ControlTestCase(unittest.TestCase):
    def setUp(self):
        self.folder = short_temp_dir(self)
        self.path = self.folder / "control.sock"
        self.admin = FakeAdmin()

    def serve(self, admin=None, path=None):
        service = control.make_control_service(path or self.path, admin or self.admin, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @defer.inlineCallbacks
    def connect(self):
        client = LineClient()
        yield connectProtocol(UNIXClientEndpoint(reactor, str(self.path)), client)

        def disconnect():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(disconnect)
        return client

    def call(self, name, *args, **kwargs):
        return defer.Deferred.fromCoroutine(
            control.call(self.path, name, *args, reactor=reactor, **kwargs))


class ProtocolTests(ControlTestCase):
    def setUp(self):
        super().setUp()
        self.serve()

    @defer.inlineCallbacks
    def test_a_call_reaches_the_admin_api_and_its_result_comes_back(self):
        self.assertIsNone((yield self.call("add_user", "alice@example.org", PASSWORD)))
        self.assertEqual(self.admin.calls, [("add_user", "alice@example.org", PASSWORD)])

    @defer.inlineCallbacks
    def test_results_become_json_jids_as_strings(self):
        result = yield self.call("list_sessions")
        self.assertEqual(result, [{"jid": "alice@example.org/phone", "secure": True,
                                   "groups": ["a", "b"], "since": 1000.5}])

    @defer.inlineCallbacks
    def test_deferred_results_are_awaited_and_answers_carry_their_request_id(self):
        client = yield self.connect()
        client.transport.write(b'{"id": 7, "call": "list_users", "args": ["example.org"]}\n'
                               b'{"id": "b", "call": "list_users", "args": []}\n')
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(sorted(self.admin.pending), ["", "example.org"])
        self.admin.pending[""].callback(["bob@example.net"])  # the later request ends first
        self.assertEqual((yield client.answers.get()),
                         {"id": "b", "ok": True, "result": ["bob@example.net"]})
        self.admin.pending["example.org"].callback(["alice@example.org"])
        self.assertEqual((yield client.answers.get()),
                         {"id": 7, "ok": True, "result": ["alice@example.org"]})

    @defer.inlineCallbacks
    def test_operator_errors_come_back_as_their_one_line_message(self):
        cases = [
            (("add_user", "taken@example.org", "x"), "user taken@example.org already exists"),
            (("set_password", "alice@example.org", "x"), "the password is too short"),
            (("delete_user", "carol@example.org"), "no such user: carol@example.org"),
        ]
        for (name, *args), message in cases:
            error = yield self.assertFailure(self.call(name, *args), control.ControlError)
            self.assertEqual(str(error), message)
            self.assertNotIsInstance(error, control.ServerNotRunning)
        self.assertEqual(self.flushLoggedErrors(), [])

    @defer.inlineCallbacks
    def test_anything_else_is_an_internal_error_logged_in_the_server(self):
        self.admin.broken = True
        error = yield self.assertFailure(self.call("add_user", "a@example.org", PASSWORD),
                                         control.ControlError)
        self.assertEqual(str(error), "internal error")  # no detail leaks to the client
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_a_result_json_cannot_carry_is_an_internal_error(self):
        error = yield self.assertFailure(self.call("kick", "a@example.org"),
                                         control.ControlError)
        self.assertEqual(str(error), "internal error")
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    @defer.inlineCallbacks
    def test_only_allowed_names_are_called(self):
        for name in ("shutdown", "__init__", "storage", "_running", "account"):
            error = yield self.assertFailure(self.call(name), control.ControlError)
            self.assertIn(f"unknown call {name!r}", str(error))
            self.assertIn("allowed: add_user", str(error))
        self.assertEqual(self.admin.calls, [])

    @defer.inlineCallbacks
    def test_an_allowed_name_the_api_lacks_is_refused(self):
        error = yield self.assertFailure(self.call("list_s2s"), control.ControlError)
        self.assertEqual(str(error), "list_s2s is not available in this server")

    @defer.inlineCallbacks
    def test_wrong_arguments_are_refused_before_the_call(self):
        error = yield self.assertFailure(self.call("add_user", "alice@example.org"),
                                         control.ControlError)
        self.assertIn("bad arguments for add_user", str(error))
        self.assertIn("password", str(error))
        self.assertEqual(self.admin.calls, [])

    @defer.inlineCallbacks
    def test_malformed_requests_are_answered_and_the_connection_stays_usable(self):
        client = yield self.connect()
        bad = [
            (b"this is not json", None, "bad request: not a JSON object"),
            (b"\xff\xfe", None, "bad request: not a JSON object"),
            (b"[1, 2]", None, "bad request: not a JSON object"),
            (b'{"call": "list_users"}', None, '"id" must be a number or a string'),
            (b'{"id": true, "call": "list_users"}', None, '"id" must be a number'),
            (b'{"id": 1}', 1, '"call" must be a string'),
            (b'{"id": 2, "call": "kick", "args": "a@example.org"}', 2, '"args" must be a list'),
            (b'{"id": 3, "call": "kick", "args": [{"a": 1}]}', 3, "list of strings or nulls"),
            (b'{"id": 4, "call": "kick", "args": [], "as": "root"}', 4, "unknown field 'as'"),
        ]
        for line, request_id, message in bad:
            client.sendLine(line)
            answer = yield client.answers.get()
            self.assertEqual((answer["id"], answer["ok"]), (request_id, False), line)
            self.assertIn(message, answer["error"])
        client.sendLine(b'{"id": 5, "call": "list_sessions", "args": []}')
        self.assertEqual((yield client.answers.get())["ok"], True)
        self.assertEqual(self.admin.calls, [])

    @defer.inlineCallbacks
    def test_a_request_over_64_kib_is_refused_and_the_connection_closed(self):
        client = yield self.connect()
        padding = "x" * control.MAX_REQUEST_LENGTH
        client.sendLine(json.dumps({"id": 1, "call": "add_user",
                                    "args": ["a@example.org", padding]}).encode())
        answer = yield client.answers.get()
        self.assertEqual(answer, {"id": None, "ok": False,
                                  "error": f"request longer than {control.MAX_REQUEST_LENGTH} "
                                           "bytes"})
        yield client.closed
        self.assertEqual(self.admin.calls, [])

    @defer.inlineCallbacks
    def test_a_client_that_leaves_before_its_answer_costs_nothing(self):
        client = yield self.connect()
        client.sendLine(b'{"id": 1, "call": "list_users", "args": []}')
        yield task.deferLater(reactor, 0.05, lambda: None)
        client.transport.loseConnection()
        yield client.closed
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.admin.pending[""].callback([])  # the answer has nowhere to go, and no error
        self.assertEqual(self.flushLoggedErrors(), [])

    @defer.inlineCallbacks
    def test_passwords_never_reach_the_log(self):
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        set_level("debug")
        self.addCleanup(set_level, "info")
        yield self.call("add_user", "alice@example.org", PASSWORD)
        self.admin.broken = True  # a failure logs a traceback too
        yield self.assertFailure(self.call("add_user", "bob@example.org", PASSWORD),
                                 control.ControlError)
        self.flushLoggedErrors(RuntimeError)
        text = "\n".join(formatEvent(event) + (event["log_failure"].getTraceback()
                                               if "log_failure" in event else "")
                         for event in events)
        self.assertIn("control: add_user", text)  # the calls were logged...
        self.assertIn("disk on fire", text)
        self.assertNotIn(PASSWORD, text)  # ...but never their arguments
        self.assertNotIn(PASSWORD, repr(events))


class RealAdminAPITests(ControlTestCase):
    """The real AdminAPI over real SQLite, served on the socket."""

    @defer.inlineCallbacks
    def test_accounts_through_the_socket(self):
        storage = SQLiteStorage(":memory:")
        yield storage.open()
        self.addCleanup(storage.close)
        self.serve(AdminAPI(storage, ["example.org"]))
        yield self.call("add_user", "Alice@Example.org", PASSWORD)
        self.assertEqual((yield self.call("list_users")), ["alice@example.org"])
        error = yield self.assertFailure(self.call("add_user", "bob@example.com", PASSWORD),
                                         control.ControlError)
        self.assertIn("example.com is not a domain of this server", str(error))
        self.assertEqual((yield self.call("delete_user", "alice@example.org")), 0)
        self.assertEqual((yield self.call("list_users", None)), [])


class SocketFileTests(ControlTestCase):
    def test_no_path_means_no_service(self):
        self.assertIsNone(control.make_control_service(None, self.admin, reactor))
        self.assertIsNone(control.make_control_service("", self.admin, reactor))

    def test_the_socket_is_private_and_goes_away_on_stop(self):
        umask = os.umask(0o022)
        os.umask(umask)
        service = control.make_control_service(self.folder / "run" / "x.sock", self.admin,
                                               reactor)
        service.startService()
        path = self.folder / "run" / "x.sock"
        mode = path.stat().st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertEqual(os.umask(umask), umask)  # the process umask is restored
        self.assertTrue(control.server_running(path))
        d = service.stopService()
        d.addCallback(lambda _: self.assertFalse(path.exists()))
        return d

    @defer.inlineCallbacks
    def test_a_stale_socket_is_replaced(self):
        leave_stale_socket(self.path)
        self.assertFalse(control.server_running(self.path))
        self.serve()
        self.assertEqual((yield self.call("list_sessions"))[0]["jid"], "alice@example.org/phone")

    def test_a_live_server_keeps_its_socket(self):
        self.serve()
        error = self.assertRaises(control.ControlSetupError, control.make_control_service,
                                  self.path, FakeAdmin(), reactor)
        self.assertIn("[server] control_socket: another xmppd is running", str(error))
        self.assertTrue(control.server_running(self.path))

    def test_a_file_that_is_not_a_socket_is_left_alone(self):
        self.path.write_text("precious")
        error = self.assertRaises(control.ControlSetupError, control.make_control_service,
                                  self.path, self.admin, reactor)
        self.assertIn("exists and is not a socket", str(error))
        self.assertEqual(self.path.read_text(), "precious")

    def test_a_path_too_long_for_a_socket_is_refused(self):
        path = self.folder / ("d" * 120) / "control.sock"
        error = self.assertRaises(control.ControlSetupError, control.make_control_service,
                                  path, self.admin, reactor)
        self.assertIn("longer than a UNIX socket path may be", str(error))
        self.assertFalse(control.server_running(path))


class ClientTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_no_socket_means_not_running(self):
        self.assertFalse(control.server_running(self.path))
        error = yield self.assertFailure(self.call("list_sessions"), control.ServerNotRunning)
        self.assertEqual(str(error), f"xmppd is not running (no control socket at {self.path})")

    @defer.inlineCallbacks
    def test_a_stale_socket_means_not_running(self):
        leave_stale_socket(self.path)
        yield self.assertFailure(self.call("list_sessions"), control.ServerNotRunning)

    @defer.inlineCallbacks
    def test_a_server_that_never_answers_times_out(self):
        silent = Factory.forProtocol(Protocol)
        port = reactor.listenUNIX(str(self.path), silent)
        self.addCleanup(port.stopListening)
        error = yield self.assertFailure(self.call("list_sessions", timeout=0.2),
                                         control.ControlError)
        self.assertIn("did not answer within 0.2 s", str(error))

    @defer.inlineCallbacks
    def test_a_server_that_hangs_up_is_an_error(self):
        class HangUp(Protocol):
            def dataReceived(self, data):
                self.transport.loseConnection()

        port = reactor.listenUNIX(str(self.path), Factory.forProtocol(HangUp))
        self.addCleanup(port.stopListening)
        error = yield self.assertFailure(self.call("list_sessions"), control.ControlError)
        self.assertIn("closed the control connection without answering", str(error))

    @defer.inlineCallbacks
    def test_a_socket_of_another_user_is_an_error_not_a_stopped_server(self):
        if os.geteuid() == 0:
            raise unittest.SkipTest("root may use any socket")
        self.serve()
        self.path.chmod(0o000)
        self.addCleanup(self.path.chmod, 0o600)
        self.assertRaises(control.ControlError, control.server_running, self.path)
        error = yield self.assertFailure(self.call("list_sessions"), control.ControlError)
        self.assertNotIsInstance(error, control.ServerNotRunning)
        self.assertIn("Permission denied", str(error))
