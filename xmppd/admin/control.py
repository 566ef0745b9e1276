# -*- test-case-name: tests.unit.test_control -*-
"""The local control channel: the running server serves its AdminAPI on a UNIX socket.

xmppdctl needs the live server for what only it knows or can do (list and kick sessions, close
s2s links, send trust stanzas, end a deleted account's sessions). The socket is created mode
0600, so the file permissions are the authentication, as for Prosody's admin socket.

The protocol is newline-delimited JSON, one object per line::

    → {"id": 1, "call": "kick", "args": ["alice@example.org"]}
    ← {"id": 1, "ok": true, "result": 1}
    ← {"id": 1, "ok": false, "error": "no such user: alice@example.org"}

Only the AdminAPI methods named in ``CALLS`` can be called: the core's commands, and the
service's own calls handed to ``make_control_service`` (``reload``: SIGHUP's reload with its
report; ``domains``: what we serve, for ``xmppdctl check``). What
plugins add (xmppd.admin.commands) is listed by ``{"call": "commands"}`` and called by its
words, ``{"call": "command", "args": ["trust", "request", "example.net"]}``, for as long as
the plugin providing it is loaded. An operator's mistake (ValueError,
UserExists, UserNotFound) comes back as its message; anything else is logged here and answered
with "internal error". Arguments are never logged: some are passwords.
"""

from __future__ import annotations

import enum
import errno
import inspect
import json
import os
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet import defer, error
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from xmppd.admin.commands import AdminCommands
from xmppd.config import ConfigError
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.storage import UserExists, UserNotFound

log = get_logger(__name__)

# The AdminAPI methods the control channel may call: nothing else is ever looked up.
CALLS = frozenset({
    "add_user", "delete_user", "set_password", "list_users",
    "list_sessions", "kick",
    "list_s2s", "close_s2s",
    "backup",
})
COMMANDS_CALL, COMMAND_CALL = "commands", "command"  # plugins' commands: list, call
# Exceptions whose message is meant for the operator; anything else is a bug, logged here.
OPERATOR_ERRORS = (ValueError, UserExists, UserNotFound)
INTERNAL_ERROR = "internal error"

MAX_REQUEST_LENGTH = 64 * 1024
MAX_RESPONSE_LENGTH = 64 * 1024 * 1024  # a listing of every account must fit
DEFAULT_TIMEOUT = 10.0
PROBE_TIMEOUT = 2.0
SOCKET_MODE = 0o600
# sun_path holds 108 bytes on Linux (104 on the BSDs), one of them the terminating NUL.
MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103


class ControlError(Exception):
    """xmppdctl could not get an answer, or the server answered with an error (its message)."""


class ServerNotRunning(ControlError):
    """Nothing listens on the control socket: the server is stopped (or has it turned off)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"xmppd is not running (no control socket at {path})")
        self.path = path


class ControlSetupError(ConfigError):
    """The control socket cannot be created; the message names ``[server] control_socket``."""


class BadRequest(ValueError):
    """A request the server will not carry out; its message goes back to the client."""


# --------------------------------------------------------------------------- server side


def make_control_service(path: Path | None, admin: Any, reactor: Any = None,
                         commands: AdminCommands | None = None,
                         service_calls: dict[str, Any] | None = None) -> IService | None:
    """The service serving ``admin`` and the plugins' ``commands`` on the UNIX socket
    ``path``; None when ``path`` is None.

    A socket file left behind by a server that died is removed; a socket that still accepts
    connections belongs to a live server, so this one refuses to start (ControlSetupError).
    """
    if path is None or str(path) == "":
        return None
    if reactor is None:
        from twisted.internet import reactor
    path = Path(path)
    if not _fits(path):
        raise ControlSetupError(
            f"[server] control_socket: {path} is longer than a UNIX socket path may be "
            f"({MAX_SOCKET_PATH} bytes); choose a shorter path, or \"\" to turn it off"
        )
    _remove_stale_socket(path)
    return ControlService(path, ControlFactory(admin, commands, service_calls), reactor)


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ControlSetupError(f"[server] control_socket: cannot use {path}: {e.strerror}") from e
    if not stat.S_ISSOCK(mode):
        raise ControlSetupError(
            f"[server] control_socket: {path} exists and is not a socket; move it or choose "
            "another path"
        )
    try:
        running = server_running(path)
    except ControlError as e:
        raise ControlSetupError(f"[server] control_socket: {e}") from e
    if running:
        raise ControlSetupError(
            f"[server] control_socket: another xmppd is running with this control socket "
            f"({path} accepts connections); stop it first or choose another path"
        )
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ControlSetupError(
            f"[server] control_socket: cannot remove the stale socket {path}: {e.strerror}"
        ) from e
    log.info("control: removed the stale socket {path}", path=str(path))


class ControlService(Service):
    """Listens on the control socket while running; the socket file goes when it stops."""

    name = "control"

    def __init__(self, path: Path, factory: ControlFactory, reactor: Any) -> None:
        self.path = path
        self.factory = factory
        self.reactor = reactor
        self.port = None

    def startService(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The umask covers the moment between bind() and Twisted's chmod to the same mode.
        previous = os.umask(0o777 & ~SOCKET_MODE)
        try:
            self.port = self.reactor.listenUNIX(str(self.path), self.factory, mode=SOCKET_MODE)
        except error.CannotListenError as e:
            raise ControlSetupError(
                f"[server] control_socket: cannot listen on {self.path}: {e.socketError}"
            ) from e
        finally:
            os.umask(previous)
        Service.startService(self)
        log.info("control: xmppdctl can reach the server at {path}", path=str(self.path))

    def stopService(self) -> defer.Deferred | None:
        Service.stopService(self)
        if self.port is None:
            return None
        port, self.port = self.port, None
        self.factory.disconnect_all()
        return defer.maybeDeferred(port.stopListening)  # Twisted unlinks the socket file


class ControlFactory(Factory):
    """Makes one ControlProtocol per xmppdctl connection, all sharing one dispatcher."""

    noisy = False

    def __init__(self, admin: Any, commands: AdminCommands | None = None,
                 service_calls: dict[str, Any] | None = None) -> None:
        self.dispatcher = AdminDispatcher(admin, commands, service_calls)
        self.connections: set[ControlProtocol] = set()

    def buildProtocol(self, addr) -> ControlProtocol:
        protocol = ControlProtocol(self.dispatcher)
        protocol.factory = self
        return protocol

    def disconnect_all(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()


class ControlProtocol(LineReceiver):
    """One client connection: reads request lines, writes each answer when it is ready."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_LENGTH

    def __init__(self, dispatcher: AdminDispatcher) -> None:
        self.dispatcher = dispatcher
        self.factory: ControlFactory | None = None
        self.gone = False

    def connectionMade(self) -> None:
        if self.factory is not None:
            self.factory.connections.add(self)

    def connectionLost(self, reason=None) -> None:
        self.gone = True
        if self.factory is not None:
            self.factory.connections.discard(self)

    def lineReceived(self, line: bytes) -> None:
        self.dispatcher.answer(line).addCallback(self._send)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._send(_error_line(None, f"request longer than {self.MAX_LENGTH} bytes"))
        self.transport.loseConnection()

    def _send(self, line: bytes) -> None:
        if not self.gone:
            self.sendLine(line)


@dataclass(frozen=True)
class Request:
    id: int | str
    call: str
    args: tuple


class AdminDispatcher:
    """Turns one request line into one answer line by calling an allowed AdminAPI method
    or a plugin's command."""

    def __init__(self, admin: Any, commands: AdminCommands | None = None,
                 service_calls: dict[str, Any] | None = None) -> None:
        self.admin = admin
        self.commands = AdminCommands() if commands is None else commands
        self.service_calls = dict(service_calls or {})  # name -> callable, no arguments

    def answer(self, line: bytes) -> defer.Deferred:
        """Deferred firing the answer line (without its newline); it never fails."""
        try:
            request = parse_request(line)
        except BadRequest as e:
            return defer.succeed(_error_line(_request_id(line), str(e)))
        log.debug("control: {call}", call=request.call)  # never the arguments
        d = defer.maybeDeferred(self._invoke, request)
        d.addCallback(self._result_line, request)
        d.addErrback(self._failure_line, request)
        return d

    def _invoke(self, request: Request):
        if request.call == COMMANDS_CALL:
            return self.commands.rows()
        if request.call == COMMAND_CALL:
            if not all(isinstance(word, str) for word in request.args):
                raise BadRequest("bad arguments for command: words only")
            return self.commands.call(request.args)
        if request.call in self.service_calls:
            if request.args:
                raise BadRequest(f"bad arguments for {request.call}: it takes none")
            return self.service_calls[request.call]()
        if request.call not in CALLS:
            allowed = ", ".join(sorted(CALLS | {COMMANDS_CALL, COMMAND_CALL}
                                       | set(self.service_calls)))
            raise BadRequest(f"unknown call {request.call!r} (allowed: {allowed})")
        method = getattr(self.admin, request.call, None)
        if method is None:
            raise BadRequest(f"{request.call} is not available in this server")
        try:
            inspect.signature(method).bind(*request.args)
        except TypeError as e:
            raise BadRequest(f"bad arguments for {request.call}: {e}") from None
        return method(*request.args)

    def _result_line(self, result: Any, request: Request) -> bytes:
        try:
            return _line({"id": request.id, "ok": True, "result": plain(result)})
        except (TypeError, ValueError):
            log.failure("control: the result of {call} is not JSON", call=request.call)
            return _error_line(request.id, INTERNAL_ERROR)

    def _failure_line(self, failure, request: Request) -> bytes:
        if failure.check(*OPERATOR_ERRORS):
            return _error_line(request.id, _one_line(str(failure.value)))
        log.failure("control: {call} failed", failure, call=request.call)
        return _error_line(request.id, INTERNAL_ERROR)


def parse_request(line: bytes) -> Request:
    """The request on ``line``, or BadRequest saying what is wrong with it."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("bad request: not a JSON object") from None
    if not isinstance(message, dict):
        raise BadRequest("bad request: not a JSON object")
    unknown = sorted(set(message) - {"id", "call", "args"})
    if unknown:
        raise BadRequest(f"bad request: unknown field {unknown[0]!r}")
    request_id, call, args = message.get("id"), message.get("call"), message.get("args", [])
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        raise BadRequest('bad request: "id" must be a number or a string')
    if not isinstance(call, str):
        raise BadRequest('bad request: "call" must be a string')
    if not isinstance(args, list) or not all(isinstance(a, (str, type(None))) for a in args):
        raise BadRequest('bad request: "args" must be a list of strings or nulls')
    return Request(request_id, call, tuple(args))


def _request_id(line: bytes) -> int | str | None:
    """The id of a request that is otherwise bad, when it can be read, to match the answer."""
    try:
        request_id = json.loads(line).get("id")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return request_id if isinstance(request_id, (int, str)) and not isinstance(
        request_id, bool) else None


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: JIDs as strings, tuples and sets as lists."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, JID):
        return value.full()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {(k.full() if isinstance(k, JID) else k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(item) for item in value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def _line(message: dict) -> bytes:
    return json.dumps(message, allow_nan=False).encode("ascii")


def _error_line(request_id: int | str | None, message: str) -> bytes:
    return _line({"id": request_id, "ok": False, "error": message})


def _one_line(text: str) -> str:
    return " ".join(text.split()) or INTERNAL_ERROR


# --------------------------------------------------------------------------- client side


def server_running(path: Path | str) -> bool:
    """Whether a server accepts connections on the control socket ``path`` (a blocking probe).

    Raises ControlError when the socket is there but cannot be used (another user's, say).
    """
    path = Path(path)
    if not _fits(path):
        return False  # no server could have bound it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(os.fspath(path))
        except TimeoutError:
            return True  # it listens, but is too busy to accept at once
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError):
            return False
        except OSError as e:
            raise ControlError(f"cannot use the control socket {path}: {e.strerror}") from e
    return True


async def call(path: Path | str, name: str, *args: Any, timeout: float = DEFAULT_TIMEOUT,
               reactor: Any = None) -> Any:
    """Call AdminAPI method ``name`` in the server listening on ``path``; returns its result.

    Raises ServerNotRunning when nothing listens there, ControlError with the server's message
    when the call fails, or when no answer comes within ``timeout`` seconds.
    """
    if reactor is None:
        from twisted.internet import reactor
    path = Path(path)
    if not _fits(path):
        raise ServerNotRunning(path)  # no server could have bound it
    request = {"id": 1, "call": name, "args": list(args)}
    client = ControlClient()
    endpoint = UNIXClientEndpoint(reactor, str(path), timeout=timeout)
    exchange = connectProtocol(endpoint, client)
    exchange.addCallback(lambda _: client.ask(request))
    exchange.addTimeout(timeout, reactor)
    try:
        answer = await exchange
    except defer.TimeoutError:
        raise ControlError(f"xmppd did not answer within {timeout:g} s "
                           f"(control socket {path})") from None
    except error.ConnectError as e:
        raise _connect_error(path, e) from None
    finally:
        client.close()
    if not answer.get("ok"):
        raise ControlError(answer.get("error") or "the server refused the call")
    return answer.get("result")


def _fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH


def _connect_error(path: Path, failure: error.ConnectError) -> ControlError:
    if isinstance(failure, error.ConnectionRefusedError) or failure.osError in (
            errno.ENOENT, errno.ENOTDIR, errno.ECONNREFUSED):
        return ServerNotRunning(path)
    reason = os.strerror(failure.osError) if isinstance(failure.osError, int) else failure
    return ControlError(f"cannot connect to the control socket {path}: {reason}")


class ControlClient(LineReceiver):
    """xmppdctl's end: sends one request and waits for the answer with the same id."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_RESPONSE_LENGTH

    def __init__(self) -> None:
        self.waiting: defer.Deferred | None = None
        self.request_id = None

    def ask(self, request: dict) -> defer.Deferred:
        """Deferred firing the answer (a dict) to ``request``."""
        self.request_id = request["id"]
        self.waiting = defer.Deferred(self._cancel)
        self.sendLine(json.dumps(request).encode("utf-8"))
        return self.waiting

    def lineReceived(self, line: bytes) -> None:
        try:
            answer = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            self._fail("xmppd sent an answer that is not JSON")
            return
        if isinstance(answer, dict) and answer.get("id") == self.request_id:
            self._settle(answer)
        elif isinstance(answer, dict) and answer.get("id") is None and not answer.get("ok"):
            self._fail(str(answer.get("error")))  # the request itself was refused
        else:
            self._fail("xmppd sent an answer to another request")

    def lineLengthExceeded(self, line: bytes) -> None:
        self._fail(f"xmppd's answer is longer than {self.MAX_LENGTH} bytes")

    def connectionLost(self, reason=None) -> None:
        self._fail("xmppd closed the control connection without answering")

    def close(self) -> None:
        if self.transport is not None and self.connected:
            self.transport.loseConnection()

    def _cancel(self, waiting: defer.Deferred) -> None:
        self.waiting = None  # cancelled: the Deferred fails by itself
        self.close()

    def _settle(self, answer: dict) -> None:
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.callback(answer)

    def _fail(self, message: str) -> None:
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.errback(ControlError(message))
        self.close()
