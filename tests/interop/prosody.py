"""Run a real Prosody 0.12 (Debian's ``prosody`` package) as a federation peer in tests.

Everything lives in one directory of the test's: the generated ``prosody.cfg.lua``, its data,
its log, and a small module of ours, ``mod_xmppd_test_routing``. Prosody runs as root from there
(``run_as_root``: no switch to the ``prosody`` user) in the foreground (``prosody -F``) as a
subprocess bound to its own loopback address (127.0.0.2, 127.0.0.3, ... work on Linux without
any setup), so several servers can sit side by side. mod_posix stays loaded: it is what turns
SIGTERM into a clean shutdown (streams closed politely, exit status 0).

How it finds its peers, in order of preference:

- ``static_routes={"xmppd-a.example": ("127.0.0.1", 5269)}``: our module answers Prosody's s2s
  target look-up for those domains with that address (STARTTLS service only, no DNS at all);
- ``dns_port=N``: Prosody's resolver (libunbound) asks only the DNS server at
  ``dns_ip:N`` (see ``tests.interop.dnsserver``), never /etc/resolv.conf or /etc/hosts;
- neither: the system resolver, which knows nothing of test domains.

Outgoing s2s connections leave from ``ip`` (our module binds them), so a peer sees Prosody's
own address. Authentication method and certificate checks show up in the debug log:
``SASL EXTERNAL with D succeeded``, ``verified dialback key... it is valid``,
``certificate chain validation result: valid`` (see ``wait_for_log``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tests.interop.logwait import wait_for_line
from tests.interop.peer_login import login_to_peer
from tests.ports import free_port  # noqa: F401 (re-exported to the tests)

PROSODY = "prosody"
PROSODYCTL = "prosodyctl"
SKIP_REASON = "Prosody is not installed (apt-get install prosody; .ci/run does it)"
PASSWORD = "correct horse battery staple"
ROUTING_MODULE = "xmppd_test_routing"

# Prosody resolves an s2s peer through net.resolvers.service.new(host, "xmpp-server", ...), looked
# up at call time; this module wraps that constructor. For a domain with a static route it
# returns a fixed target (and nothing for "xmpps-server", so no direct TLS is tried); for every
# other domain, Prosody's own resolver. Either way, IPv4 targets are connected from
# s2s_source_address, through a socket type of our own that net.server creates by name.
ROUTING_MODULE_SOURCE = r"""
-- Test-only s2s routing, written by tests/interop/prosody.py.
module:set_global();

local service = require "net.resolvers.service";
local manual = require "net.resolvers.manual";
local socket = require "socket";

local routes = module:get_option("static_s2s_routes", {});
local source_address = module:get_option_string("s2s_source_address");
local bound_tcp4 = "xmppd_test_bound_tcp4";
local original_new = service.new;

if source_address then
	socket[bound_tcp4] = function ()
		local conn, err = socket.tcp4();
		if not conn then return conn, err; end
		local ok, bind_err = conn:setsockname(source_address, 0);
		if not ok then conn:close(); return nil, bind_err; end
		return conn;
	end
end

local function from_source_address(resolver)
	if not source_address then return resolver; end
	local next_target = resolver.next;
	function resolver:next(cb) -- luacheck: ignore 212/self
		return next_target(resolver, function (conn_type, ip, port, extra)
			if conn_type == "tcp4" then conn_type = bound_tcp4; end
			return cb(conn_type, ip, port, extra);
		end);
	end
	return resolver;
end

function service.new(hostname, service_name, conn_type, extra)
	local route = routes[hostname];
	if not route then
		return from_source_address(original_new(hostname, service_name, conn_type, extra));
	end
	local targets = {};
	if service_name == "xmpp-server" then
		local family = route[1]:find(":", 1, true) and "tcp6" or "tcp4";
		module:log("debug", "static s2s route for %s: %s port %d", hostname, route[1], route[2]);
		targets = { { family, route[1], route[2], extra } };
	end
	local resolver = manual.new(targets, conn_type, extra);
	resolver.hostname = hostname;
	return from_source_address(resolver);
end

function module.unload()
	service.new = original_new;
	socket[bound_tcp4] = nil;
end
"""


def available() -> bool:
    """Whether the Prosody binaries are installed (tests skip with SKIP_REASON if not)."""
    return shutil.which(PROSODY) is not None and shutil.which(PROSODYCTL) is not None


def lua(value) -> str:
    """A Python value as a Lua literal: str, bool, int, float, None, sequences, mappings."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        escaped = "".join(c if c.isprintable() and c not in '"\\' else _lua_escape(c)
                          for c in str(value))
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        return "{ " + " ".join(f"[{lua(k)}] = {lua(v)};" for k, v in value.items()) + " }"
    if isinstance(value, Iterable):
        return "{ " + " ".join(f"{lua(item)};" for item in value) + " }"
    raise TypeError(f"no Lua literal for {value!r}")


def _lua_escape(char: str) -> str:
    code = ord(char)
    return "\\%03d" % code if code < 256 else "\\u{%X}" % code


class ProsodyProcess:
    """One Prosody server for one domain: ``register()``, ``start()``, ``stop()``, ``log()``.

    ``certificate`` (cert path, key path) is used for c2s and for both directions of s2s, unless
    ``s2s_certificate`` gives s2s another one (say, a wrong-name one, while clients still
    verify c2s); ``ca_file`` is what Prosody trusts for peer certificates (the test CA). Without a
    certificate Prosody does no TLS at all: clients log in with PLAIN over plain TCP and s2s
    can only use dialback (``s2s_require_encryption`` then defaults to False, else True).
    ``s2s_tls=False`` turns s2s TLS off even with a certificate (plain s2s + dialback).
    ``dialback=False`` leaves mod_dialback out, so peers must authenticate with certificates.
    """

    def __init__(
        self,
        directory: Path,
        domain: str,
        ip: str = "127.0.0.2",
        c2s_port: int | None = None,
        s2s_port: int | None = None,
        *,
        certificate: tuple[Path, Path] | None = None,
        s2s_certificate: tuple[Path, Path] | None = None,
        ca_file: Path | None = None,
        dialback: bool = True,
        s2s_tls: bool = True,
        s2s_require_encryption: bool | None = None,
        s2s_secure_auth: bool = False,
        secure_domains: Sequence[str] = (),
        insecure_domains: Sequence[str] = (),
        static_routes: Mapping[str, tuple[str, int]] | None = None,
        dns_port: int | None = None,
        dns_ip: str = "127.0.0.1",
        bidi: bool = False,
        modules: Sequence[str] = (),
        s2s_timeout: int = 10,
        extra_config: str = "",
        log_level: str = "debug",
    ) -> None:
        self.directory = Path(directory).resolve()
        self.domain = domain
        self.ip = ip
        self.c2s_port = c2s_port or free_port(ip)
        self.s2s_port = s2s_port or free_port(ip)
        self.certificate = certificate
        self.s2s_certificate = s2s_certificate
        self.ca_file = ca_file
        self.config_path = self.directory / "prosody.cfg.lua"
        self.log_path = self.directory / "prosody.log"
        self.console_path = self.directory / "console.log"
        self.process: subprocess.Popen | None = None
        tls = certificate is not None
        settings = {
            "s2s_allow_encryption": tls and s2s_tls,
            "s2s_require_encryption": (tls and s2s_tls if s2s_require_encryption is None
                                       else s2s_require_encryption),
            "s2s_secure_auth": s2s_secure_auth,
            "s2s_secure_domains": list(secure_domains),
            "s2s_insecure_domains": list(insecure_domains),
            "c2s_require_encryption": tls,
            "allow_unencrypted_plain_auth": not tls,
            "s2s_timeout": s2s_timeout,
            "static_s2s_routes": {d: [host, port] for d, (host, port)
                                  in (static_routes or {}).items()},
            "s2s_source_address": None if ":" in ip else ip,
        }
        if dns_port is not None:
            settings["unbound"] = {
                "resolvconf": False,  # else /etc/resolv.conf's servers are asked as well
                "hoststxt": False,
                "forward": f"{dns_ip}@{dns_port}",
                "options": {"do-not-query-localhost:": "no"},
            }
        enabled = ["posix", "roster", "saslauth", "tls", "disco", "ping", "presence", "message",
                   ROUTING_MODULE, *(["dialback"] if dialback else []),
                   *(["s2s_bidi"] if bidi else []), *modules]
        self._write_config(settings, enabled, extra_config, log_level)

    # ---- set-up ------------------------------------------------------------------------

    def _write_config(self, settings: dict, enabled: list[str], extra: str, level: str) -> None:
        for sub in ("data", "certs", "modules"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "modules" / f"mod_{ROUTING_MODULE}.lua").write_text(
            ROUTING_MODULE_SOURCE)
        host_ssl = _ssl_files(self.certificate) if self.certificate is not None else {}
        if self.ca_file is not None:
            host_ssl["cafile"] = str(self.ca_file)
        lines = [
            "-- written by tests/interop/prosody.py",
            "run_as_root = true",
            f"pidfile = {lua(self.directory / 'prosody.pid')}",
            f"data_path = {lua(self.directory / 'data')}",
            f"certificates = {lua(self.directory / 'certs')}",
            f"plugin_paths = {lua([self.directory / 'modules'])}",
            f"log = {lua({level: str(self.log_path)})}",
            f"interfaces = {lua([self.ip])}",
            f"c2s_ports = {lua([self.c2s_port])}",
            f"s2s_ports = {lua([self.s2s_port])}",
            "c2s_direct_tls_ports = { }",
            "s2s_direct_tls_ports = { }",
            f"modules_enabled = {lua(enabled)}",
            'authentication = "internal_hashed"',
            'storage = "internal"',
            *(f"{name} = {lua(value)}" for name, value in settings.items() if value is not None),
            extra,
            "",
            f"VirtualHost {lua(self.domain)}",
        ]
        if host_ssl:
            lines.append(f"\tssl = {lua(host_ssl)}")
        if self.s2s_certificate is not None:
            lines.append(f"\ts2s_ssl = {lua(_ssl_files(self.s2s_certificate))}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def register(self, user: str, password: str = PASSWORD) -> None:
        """Create ``user@domain`` (works before and after ``start()``)."""
        result = subprocess.run(
            [PROSODYCTL, "--config", str(self.config_path), "register", user, self.domain,
             password], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"prosodyctl register {user} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    # ---- running -----------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start Prosody and wait until both its c2s and s2s ports accept connections.
        Fails with the log if it exits, does not listen in time, or logs an error."""
        if self.process is not None:
            raise RuntimeError("Prosody is already running")
        with open(self.console_path, "ab") as console:
            self.process = subprocess.Popen(
                [PROSODY, "-F", "--config", str(self.config_path)], stdout=console,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory,
                env={**os.environ, "LANG": "C.UTF-8"})
        deadline = time.monotonic() + timeout
        while not (_accepts(self.ip, self.c2s_port) and _accepts(self.ip, self.s2s_port)):
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"Prosody exited at start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prosody did not listen within {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        errors = self.errors()
        if errors:
            self.stop()
            raise RuntimeError("Prosody logged errors at start-up:\n" + "\n".join(errors))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Prosody closes its streams politely), SIGKILL if it lingers; the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> ProsodyProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- what happened -----------------------------------------------------------------

    def log(self) -> str:
        """Prosody's log (debug level by default) followed by anything it printed."""
        parts = [path.read_text(errors="replace") for path in (self.log_path, self.console_path)
                 if path.exists()]
        return "\n".join(part for part in parts if part)

    def errors(self) -> list[str]:
        """Log lines at level "error" (a healthy run has none)."""
        return [line for line in self.log().splitlines() if "\terror\t" in line]

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first log line matching the regular expression ``pattern``, waiting for it."""
        return wait_for_line(self.log, pattern, timeout)


def _ssl_files(certificate: tuple[Path, Path]) -> dict[str, str]:
    return {"certificate": str(certificate[0]), "key": str(certificate[1])}


def _accepts(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


async def login(prosody: ProsodyProcess, user: str, password: str = PASSWORD, *,
                resource: str = "test", available: bool = True, timeout: float = 10.0):
    """A slixmpp client logged in to ``prosody`` and bound; the caller disconnects it.

    ``available`` sends initial presence, without which Prosody stores messages to the bare
    JID offline instead of delivering them.

    With a certificate: STARTTLS, verified against ``prosody.ca_file`` (or the system CAs).
    Without one: plain TCP with PLAIN, as the server allows nothing better.
    """
    return await login_to_peer(prosody, user, password, resource=resource,
                               available=available, timeout=timeout, name="Prosody")
