"""Run a real ejabberd 23.01 (Debian's ``ejabberd`` package) as a federation peer in tests.

ejabberd runs through ``ejabberdctl`` as the ``ejabberd`` user (started as that user when we
are root: ejabberdctl's own switch through ``su`` cut the VM's open-file limit to 1,024), so
everything it reads or writes lives in a working directory that user owns, made under the
system's temporary directory (a pytest ``tmp_path`` sits below a directory only root may enter):
``ejabberd.yml``, ``ejabberdctl.cfg``, ``inetrc``, copies of the certificates, the Mnesia spool
and the logs. The test's own directory gets a copy of the logs when the server stops, and the
working directory is removed.

Each server is an Erlang node of its own (``xmppdtest<pid>x<n>@localhost``) with its own
distribution port (``ERL_DIST_PORT``: no epmd, nothing shared with another node) and a cookie
given on the command line (no ``.erlang.cookie`` is written into the ejabberd user's home).
``ejabberdctl foreground`` runs it as a subprocess in a session of its own; ``stop()`` asks
``ejabberdctl stop``, waits for the node to exit, and kills that session only if it lingers.

It listens on its own loopback address (127.0.0.3 by default) and binds its outgoing s2s
connections there. It finds peers through DNS only: the ``inetrc`` names the test DNS server
(tests/interop/dnsserver.py) and nothing else (no /etc/resolv.conf, no /etc/hosts; only
``localhost`` is mapped, which ejabberdctl needs to reach its node).

Certificates go in the global ``certfiles`` (per-listener ones are not used for s2s), and
must not carry an XmppAddr SAN: ejabberd 23.01 crashes on a peer certificate that has one
(``make_test_pki(..., with_other_names=False)``). ``ca_file`` is what it trusts for peer
certificates: a peer whose certificate validates is offered SASL EXTERNAL. ``dialback``
loads mod_s2s_dialback (without it, peers must authenticate with certificates; with it,
ejabberd skips the name check on the certificates of the servers it connects to).
Accounts: ``register()`` (``ejabberdctl register``) once the node is running.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.interop.logwait import wait_for_line
from tests.interop.peer_login import login_to_peer
from tests.ports import free_port  # noqa: F401 (re-exported to the tests)

EJABBERDCTL = "ejabberdctl"
USER = "ejabberd"
SKIP_REASON = ("ejabberd is not installed (apt-get install ejabberd; .ci/run does it): "
               "the ejabberd interop tests cannot run")
PASSWORD = "correct horse battery staple"
COOKIE = "xmppd-interop-tests"

_nodes = itertools.count(1)


def available() -> bool:
    """Whether the ejabberd package is installed (tests skip with SKIP_REASON if not)."""
    if shutil.which(EJABBERDCTL) is None:
        return False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return True


def quoted(value: str | Path) -> str:
    """A YAML double-quoted string (ejabberd reads double-quoted scalars as strings)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class EjabberdError(RuntimeError):
    """ejabberd could not be set up, started or asked something; the message has its log."""


class EjabberdProcess:
    """One ejabberd server for one domain: ``start()``, ``register()``, ``stop()``, ``log()``.

    ``certificate`` (cert path, key path) serves c2s and both directions of s2s; without one
    ejabberd has no TLS at all (s2s: dialback in the clear). ``starttls``: ejabberd's
    ``s2s_use_starttls`` (``required``, ``optional`` or ``false``). ``dns_port``: the test DNS
    server ejabberd asks for its peers' SRV and A records.
    """

    def __init__(
        self,
        directory: Path,
        domain: str,
        ip: str = "127.0.0.3",
        c2s_port: int | None = None,
        s2s_port: int | None = None,
        *,
        certificate: tuple[Path, Path] | None = None,
        ca_file: Path | None = None,
        dialback: bool = True,
        starttls: str = "required",
        dns_port: int | None = None,
        dns_ip: str = "127.0.0.1",
        s2s_timeout: int = 5,
        modules: Sequence[str] = (),
        log_level: str = "debug",
    ) -> None:
        if starttls not in ("required", "optional", "false"):
            raise ValueError(f"starttls must be required, optional or false, not {starttls!r}")
        self.directory = Path(directory).resolve()  # the test's: logs are copied here
        self.domain = domain
        self.ip = ip
        self.c2s_port = c2s_port or free_port(ip)
        self.s2s_port = s2s_port or free_port(ip)
        self.dist_port = free_port("127.0.0.1")
        self.node = f"xmppdtest{os.getpid()}x{next(_nodes)}@localhost"
        self.certificate = certificate
        self.ca_file = ca_file
        self.process: subprocess.Popen | None = None
        self.work = Path(tempfile.mkdtemp(prefix="xmppd-ejabberd-"))
        self.log_dir = self.work / "logs"
        self.console_path = self.work / "console.log"
        self._prepare(dialback, starttls, dns_port, dns_ip, s2s_timeout, modules, log_level)

    # ---- set-up ------------------------------------------------------------------------

    def _prepare(self, dialback: bool, starttls: str, dns_port: int | None, dns_ip: str,
                 s2s_timeout: int, modules: Sequence[str], log_level: str) -> None:
        for sub in ("spool", "logs", "certs"):
            (self.work / sub).mkdir()
        certfiles = []
        if self.certificate is not None:
            certfiles = [self._copy(self.certificate[0], "server.crt"),
                         self._copy(self.certificate[1], "server.key")]
        ca = self._copy(self.ca_file, "ca.crt") if self.ca_file is not None else None
        enabled = ["mod_roster", "mod_disco", "mod_ping",
                   *(["mod_s2s_dialback"] if dialback else []), *modules]
        lines = [
            "# written by tests/interop/ejabberd.py",
            f"hosts: [{quoted(self.domain)}]",
            f"loglevel: {log_level}",
            "log_rotate_count: 0",
            "hide_sensitive_log_data: false",
            f"certfiles: [{', '.join(quoted(path) for path in certfiles)}]",
            *([f"ca_file: {quoted(ca)}", f"s2s_cafile: {quoted(ca)}"] if ca else []),
            f"s2s_use_starttls: {starttls if certfiles else 'false'}",
            "s2s_dns_timeout: 3",
            "s2s_dns_retries: 1",
            "s2s_max_retry_delay: 5",
            f"outgoing_s2s_timeout: {s2s_timeout}",
            f"outgoing_s2s_ipv4_address: {quoted(self.ip)}",
            "outgoing_s2s_families: [ipv4]",
            "auth_method: internal",
            "acl:",
            "  local:",
            '    user_regexp: ""',
            "access_rules:",
            "  local:",
            "    allow: local",
            "  c2s:",
            "    allow: all",
            "  s2s:",
            "    allow: all",
            "s2s_access: s2s",
            "listen:",
            f"  - port: {self.c2s_port}",
            f"    ip: {quoted(self.ip)}",
            "    module: ejabberd_c2s",
            f"    starttls_required: {'true' if certfiles else 'false'}",
            f"  - port: {self.s2s_port}",
            f"    ip: {quoted(self.ip)}",
            "    module: ejabberd_s2s_in",
            "modules:",
            *(f"  {module}: {{}}" for module in enabled),
        ]
        (self.work / "ejabberd.yml").write_text("\n".join(lines) + "\n")
        (self.work / "ejabberdctl.cfg").write_text(
            "# written by tests/interop/ejabberd.py: a node of its own, off epmd\n"
            f'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie {COOKIE}"\n'
            f"ERL_DIST_PORT={self.dist_port}\n")
        # resolv_conf and hosts_file off before the nameserver; localhost mapped for ejabberdctl;
        # the resolver's timeout is in milliseconds (a reply later than that is no reply)
        nameserver = ([f"{{nameserver, {_erlang_ip(dns_ip)}, {dns_port}}}."]
                      if dns_port is not None else [])
        (self.work / "inetrc").write_text("\n".join([
            '{resolv_conf, ""}.', '{hosts_file, ""}.',
            '{host, {127,0,0,1}, ["localhost"]}.', *nameserver,
            "{lookup, [file, dns]}." if nameserver else "{lookup, [file]}.",
            "{timeout, 2000}.", "{retry, 2}.", ""]))
        account = pwd.getpwnam(USER)
        for path in [self.work, *self.work.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _copy(self, source: Path, name: str) -> Path:
        target = self.work / "certs" / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        return target

    def _ctl(self, *args: str) -> list[str]:
        return [EJABBERDCTL, "--config-dir", str(self.work),
                "--config", str(self.work / "ejabberd.yml"),
                "--ctl-config", str(self.work / "ejabberdctl.cfg"),
                "--spool", str(self.work / "spool"), "--logs", str(self.log_dir),
                "--node", self.node, *args]

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``ejabberdctl`` against this node."""
        return subprocess.run(self._ctl(*args), capture_output=True, text=True,
                              timeout=timeout, cwd=self.work, stdin=subprocess.DEVNULL)

    def register(self, user: str, password: str = PASSWORD) -> None:
        """Create ``user@domain`` (the node must be running)."""
        result = self.ctl("register", user, self.domain, password)
        if result.returncode != 0:
            raise EjabberdError(f"ejabberdctl register {user} failed ({result.returncode}):\n"
                                f"{result.stdout}{result.stderr}\n{self.log()}")

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    # ---- running -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the node and wait until it says it is started and both ports accept
        connections. Fails with the log if it exits, is not up in time, or logs errors."""
        if self.process is not None:
            raise EjabberdError("ejabberd is already running")
        with open(self.console_path, "ab") as console:
            self.process = subprocess.Popen(
                self._ctl("foreground"), stdout=console, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.work, start_new_session=True,
                **_as_ejabberd_user({**os.environ, "LANG": "C.UTF-8"}))
        deadline = time.monotonic() + timeout
        while not (_accepts(self.ip, self.c2s_port) and _accepts(self.ip, self.s2s_port)):
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise EjabberdError(f"ejabberd exited at start-up ({code}):\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise EjabberdError(f"ejabberd did not listen within {timeout}s:\n"
                                    f"{self.log()}")
            time.sleep(0.1)
        status = self.ctl("status")
        if status.returncode != 0:
            self.stop()
            raise EjabberdError(f"ejabberdctl status failed ({status.returncode}): "
                                f"{status.stdout}{status.stderr}\n{self.log()}")
        errors = self.errors()
        if errors:
            self.stop()
            raise EjabberdError("ejabberd logged errors at start-up:\n" + "\n".join(errors))

    def stop(self, timeout: float = 20.0) -> int | None:
        """``ejabberdctl stop``, then wait for the node to exit (SIGKILL to its session if it
        lingers); keeps a copy of the logs in the test's directory; the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            try:
                self.ctl("stop", timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._keep_logs()
        return process.returncode

    def cleanup(self) -> None:
        """Remove the working directory (after ``stop()``; the logs were copied)."""
        if self.process is None:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> EjabberdProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.cleanup()

    def _keep_logs(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in (*self.log_dir.glob("*.log"), self.console_path,
                     self.work / "ejabberd.yml"):
            if path.exists():
                shutil.copyfile(path, self.directory / path.name)

    # ---- what happened -----------------------------------------------------------------

    def log(self) -> str:
        """ejabberd's log (debug level by default), then anything it printed."""
        paths = (self.log_dir / "ejabberd.log", self.console_path)
        if not self.work.exists():  # cleaned up: the copies
            paths = (self.directory / "ejabberd.log", self.directory / "console.log")
        parts = [path.read_text(errors="replace") for path in paths if path.exists()]
        return "\n".join(part for part in parts if part)

    def errors(self) -> list[str]:
        """Log lines at level error or worse (a healthy run has none)."""
        return [line for line in self.log().splitlines()
                if re.search(r"\[(error|critical|alert|emergency)\]", line)]

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first log line matching the regular expression ``pattern``, waiting for it."""
        return wait_for_line(self.log, pattern, timeout)


def _as_ejabberd_user(env: dict) -> dict:
    """Popen arguments that run ``ejabberdctl foreground`` as the ejabberd user itself.

    Run by root, ejabberdctl switches users with ``su``, whose PAM session (pam_limits) gives
    the Erlang VM a soft open-file limit of 1,024: the node then refuses connections near
    1,000 clients ("Failed TCP accept: too many open files"). Started as its own user,
    ejabberdctl runs the VM directly, which inherits our limits (``make bench`` raises them).
    Not root: as we are (ejabberdctl switches users itself, or refuses)."""
    if os.geteuid() != 0:
        return {"env": env}
    account = pwd.getpwnam(USER)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
            "env": {**env, "HOME": account.pw_dir, "USER": USER, "LOGNAME": USER}}


def _erlang_ip(ip: str) -> str:
    return "{" + ",".join(ip.split(".")) + "}"


def _accepts(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


async def login(server: EjabberdProcess, user: str, password: str = PASSWORD, *,
                resource: str = "test", available: bool = True, timeout: float = 15.0):
    """A slixmpp client logged in to ``server`` and bound, with initial presence sent if
    ``available``; the caller disconnects it. With a certificate: STARTTLS, verified against
    ``ca_file`` and the server's own certificate (a self-signed one anchors itself)."""
    return await login_to_peer(server, user, password, resource=resource, available=available,
                               timeout=timeout, error=EjabberdError, name="ejabberd",
                               trust_own_certificate=True)
