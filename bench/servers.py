"""The servers under test, configured alike, each started afresh for every workload.

Both get the same certificate (ECDSA P-256, self-signed), TLS required before
authentication, SCRAM-SHA-256 with 10,000 iterations (Prosody: ``password_hash = "SHA-256"``),
storage on local disk (xmppd: SQLite in WAL mode; Prosody: its internal file store), a loopback
listener, logging at info to a file, and the same IM features (roster, presence, offline
messages, disco, ping, version). ejabberd, the third, is set up alike in bench/ejabberd.py.
The "modern" profile (``--profile modern``) adds to each what today's clients use: message
archiving for every account (XEP-0313), carbons, stream management, client state indication and
PEP; the load generator's clients then enable SM, carbons and CSI (bench/loadgen.py).
They run through the test harnesses
(tests/integration/serverproc.py, tests/interop/prosody.py); the accounts are written once into
a template data directory that each fresh start copies (bench/accounts.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.accounts import seed_xmppd, write_prosody_data
from bench.loadgen import Target
from bench.under_test import ServerUnderTest
from bench.websocket import WORKLOADS as WEBSOCKET_WORKLOADS
from bench.workloads import WITHOUT_TLS
from tests.integration.serverproc import XmppdProcess, free_port
from tests.interop import prosody as prosody_harness
from xmppd.config import DEFAULT_PLUGINS
from xmppd.storage import SQLITE_FILENAME

DOMAIN = "localhost"

# The plugin sets xmppd is measured with: "plain" has the IM features Prosody is configured with
# (the comparison), and group chat, which both run beside them for the muc workload; "default"
# is what `make run` loads (PEP, stream management, ...); "archive" is "plain" with message
# archiving (XEP-0313), which is not in the default list: what every message costs once it is
# also written to disk.
PLAIN_PLUGINS = ("disco", "ping", "version", "roster", "presence", "offline", "muc")
XMPPD_PLUGINS = {
    "plain": PLAIN_PLUGINS,
    "default": None,  # the server's own default list
    "archive": (*PLAIN_PLUGINS, "mam"),
}
PROFILES = ("plain", "modern")
# What the modern profile adds, per server (ejabberd's: bench/ejabberd.py).
XMPPD_MODERN = ("mam", "carbons", "smacks", "csi", "pep")
PROSODY_MODERN = ("mam", "carbons", "smacks", "csi_simple", "pep")
PROSODY_MODERN_CONFIG = ('archive_expires_after = "1w"\ndefault_archive_policy = true\n'
                         "smacks_max_unacked_stanzas = 5\n")


class XmppdUnderTest(ServerUnderTest):
    name = "xmppd"

    def __init__(self, workdir: Path, certificate: tuple[Path, Path], users: int,
                 hub_contacts: int, plugins: str = "plain", profile: str = "plain",
                 modern_without: frozenset[str] = frozenset()) -> None:
        """``modern_without``: the modern profile less these of XMPPD_MODERN (server and
        clients both), to tell what each feature costs."""
        super().__init__(workdir, certificate, users, hub_contacts, profile)
        self.plugins = XMPPD_PLUGINS[plugins]
        self.modern_without = modern_without if profile == "modern" else frozenset()
        if profile == "modern":
            base = DEFAULT_PLUGINS if self.plugins is None else self.plugins
            self.plugins = (*(name for name in base if name not in modern_without),
                            *(name for name in XMPPD_MODERN
                              if name not in base and name not in modern_without))
        self.process: XmppdProcess | None = None

    def _config(self, directory: Path, websocket_port: int = 0,
                require_tls: bool = True) -> XmppdProcess:
        """With ``websocket_port``, also the websocket plugin on an [http] https listener
        there (bench/websocket.py's workloads only: the others measure without it); without
        ``require_tls``, authentication on the plain TCP stream is allowed."""
        # The hub's roster is as long as the fan-out; the default cap is 1,000 items.
        roster = f"[plugins.roster]\nmax_items = {max(self.hub_contacts + 10, 1000)}\n"
        # bench/scaling.py's sessions come from 127.0.1.N: exempt from the per-address caps
        # as 127.0.0.1 is by default (bench/attack.py's hostile 127.0.0.2-21 stay capped)
        roster += '[limits]\nexempt = ["127.0.0.1", "::1", "127.0.1.0/24"]\n'
        plugins = self.plugins
        if websocket_port:
            plugins = (*(DEFAULT_PLUGINS if plugins is None else plugins), "websocket")
            roster += f'[http]\nhttps = ["tcp:{websocket_port}:interface=127.0.0.1"]\n'
        if plugins is not None:
            roster = f"[plugins]\nenabled = {list(plugins)!r}\n" + roster
        return XmppdProcess(directory, DOMAIN, extra=roster, auth_timeout=60.0,
                            certificate=self.certificate,
                            c2s_extra="" if require_tls else "require_encryption = false")

    def prepare(self) -> None:
        template = self._config(self.workdir / "template")
        seed_xmppd(template.config, self.users, self.hub_contacts)

    def version(self) -> str:
        from importlib.metadata import version

        return version("xmppd")

    def start(self, label: str) -> Target:
        directory = self.workdir / label
        websocket_port = free_port() if label in WEBSOCKET_WORKLOADS else 0
        self.process = self._config(directory, websocket_port,
                                    require_tls=label not in WITHOUT_TLS)
        (directory / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.workdir / "template" / "data" / SQLITE_FILENAME,
                     directory / "data" / SQLITE_FILENAME)
        self.process.start(timeout=60)
        return Target(self.name, "127.0.0.1", self.process.c2s_port, DOMAIN,
                      self.certificate[0], self.process.process.pid,
                      modern=self.profile == "modern", modern_without=self.modern_without,
                      websocket_url=f"wss://127.0.0.1:{websocket_port}/xmpp-websocket"
                      if websocket_port else "")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            code = process.stop(timeout=60)
        except subprocess.TimeoutExpired:
            code = "killed after 60 s"
        log = process.log()
        if code != 0:
            self.problems.append(f"{process.directory.name}: exit status {code}")
        if "Traceback" in log:
            self.problems.append(f"{process.directory.name}: traceback in {process.log_path}")


class ProsodyUnderTest(ServerUnderTest):
    name = "prosody"
    process: prosody_harness.ProsodyProcess | None = None

    def prepare(self) -> None:
        write_prosody_data(self.workdir / "template" / "data", DOMAIN, self.users,
                           self.hub_contacts)

    def version(self) -> str:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"],
                                capture_output=True, text=True)
        return result.stdout.strip() or "unknown"

    def start(self, label: str) -> Target:
        directory = self.workdir / label
        shutil.copytree(self.workdir / "template" / "data", directory / "data")
        modern = self.profile == "modern"
        websocket, websocket_url = self._websocket(label)
        self.process = prosody_harness.ProsodyProcess(
            directory, DOMAIN, certificate=self.certificate, log_level="info",
            modules=("offline", "version", *(PROSODY_MODERN if modern else ()),
                     *(("websocket",) if websocket else ())),
            extra_config='password_hash = "SHA-256"\ndefault_iteration_count = 10000\n'
                         + (PROSODY_MODERN_CONFIG if modern else "") + websocket
                         + f'Component "conference.{DOMAIN}" "muc"')
        if label in WITHOUT_TLS:  # Prosody refuses an option set twice: the harness's, edited
            config = self.process.config_path
            config.write_text(config.read_text().replace("c2s_require_encryption = true",
                                                         "c2s_require_encryption = false"))
        self.process.start(timeout=60)
        return Target(self.name, self.process.ip, self.process.c2s_port, DOMAIN,
                      self.certificate[0], self.process.process.pid, modern=modern,
                      websocket_url=websocket_url)

    def _websocket(self, label: str) -> tuple[str, str]:
        """For bench/websocket.py's workloads: mod_websocket on an https listener with the
        same certificate, (its config lines, its wss:// URL); else ("", "")."""
        if label not in WEBSOCKET_WORKLOADS:
            return "", ""
        ip = "127.0.0.2"  # the harness's default, which start() keeps
        port = prosody_harness.free_port(ip)
        lua = prosody_harness.lua
        files = {"certificate": str(self.certificate[0]), "key": str(self.certificate[1])}
        config = (f"https_ports = {lua([port])}\nhttps_interfaces = {lua([ip])}\n"
                  f"https_ssl = {lua(files)}\nhttp_default_host = {lua(DOMAIN)}\n")
        return config, f"wss://{ip}:{port}/xmpp-websocket"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        errors = process.errors()
        code = process.stop(timeout=60)
        if code not in (0, None):
            self.problems.append(f"{process.directory.name}: exit status {code}")
        if errors:
            self.problems.append(f"{process.directory.name}: {len(errors)} error lines, first: "
                                 f"{errors[0]}")


def ensure_prosody() -> bool:
    """Install Debian's prosody package if it is missing and we may (root, apt-get); its own
    service is kept from starting, as in .ci/run. Whether Prosody is available now."""
    if prosody_harness.available():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("prosody is not installed and cannot be installed here (needs root and apt-get): "
              "measuring xmppd alone")
        return False
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "prosody"], check=True, env=env)
    except subprocess.CalledProcessError as error:
        print(f"installing prosody failed ({error}): measuring xmppd alone")
    finally:
        if ours:
            policy.unlink(missing_ok=True)
    return prosody_harness.available()
