"""ejabberd 23.01 (Debian's package) as the second reference server of ``make bench``.

It runs through the interop tests' harness (tests/interop/ejabberd.py: a node of its own with
its own name, ERL_DIST_PORT, config, spool and inetrc in a temporary directory) and is set up
like Prosody: the same certificate, TLS required before authentication, SCRAM-SHA-256 keys
with the same salt and 10,000 iterations (``auth_password_format: scram``,
``auth_scram_hash: sha256``), the same accounts and rosters, logging at info, and the same IM
modules (roster, offline, disco, ping, version, MUC on ``conference.localhost``); storage is
its default, Mnesia. The Erlang VM gets one scheduler (``+S 1:1``, as it would pick itself on a
one-core machine; it is pinned to one core after it starts) and no scheduler busy-waiting
(``+sbwt none``), so its CPU use counts work, not spinning.

The accounts go in as a XEP-0227 file (``ejabberdctl import_piefxis``) at every start, a few
seconds for 5,000 accounts. ejabberd keeps SCRAM keys base64-encoded and its XEP-0227 export
encodes them once more; the import reads them the same way.

The "modern" profile adds mod_mam (``default: always``), mod_carboncopy, mod_stream_mgmt,
mod_client_state and mod_pubsub with PEP (mod_caps beside it).
"""

from __future__ import annotations

import base64
import os
import pwd
import re
import resource
import subprocess
import time
from pathlib import Path

from bench.accounts import _SALT, HUB, PASSWORD, user_names
from bench.loadgen import Target
from bench.under_test import ServerUnderTest
from bench.workloads import WITHOUT_TLS
from tests.interop import ejabberd as harness
from xmppd.jid import prepare_password
from xmppd.sasl.credentials import derive_credentials

DOMAIN = "localhost"
IP = "127.0.0.3"
PLAIN_MODULES = ("mod_offline", "mod_version", "mod_muc")
MODERN_MODULES = ("mod_carboncopy", "mod_stream_mgmt", "mod_client_state", "mod_caps")
# Modules whose options are not empty maps, as YAML lines under "modules:".
MODERN_OPTIONS = (
    "  mod_mam:\n    default: always\n",
    "  mod_pubsub:\n    plugins: [flat, pep]\n",
)
ERLANG_OPTIONS = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"


class EjabberdUnderTest(ServerUnderTest):
    name = "ejabberd"
    process: harness.EjabberdProcess | None = None
    beam_pid = 0

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "accounts.xml").write_text(
            piefxis(DOMAIN, self.users, self.hub_contacts))

    def version(self) -> str:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ejabberd"],
                                capture_output=True, text=True)
        return result.stdout.strip() or "unknown"

    def start(self, label: str, attempts: int = 2) -> Target:
        """A fresh node with the accounts. The harness refuses a node that answers
        ``ejabberdctl status`` with "starting" once its ports are open (seen on a busy
        machine): that start is tried again once."""
        for attempt in range(attempts):
            process = harness.EjabberdProcess(
                self.workdir / f"{label}-{attempt}", DOMAIN, ip=IP, certificate=self.certificate,
                dialback=False, log_level="info", modules=PLAIN_MODULES + (
                    MODERN_MODULES if self.profile == "modern" else ()))
            self._configure(process, require_tls=label not in WITHOUT_TLS)
            self.process = process
            try:
                process.start(timeout=90)
                break
            except harness.EjabberdError:
                self.process = None
                process.cleanup()
                if attempt == attempts - 1:
                    raise
        result = process.ctl("import_piefxis", str(process.work / "accounts.xml"), timeout=600)
        if result.returncode != 0:
            raise harness.EjabberdError(f"import_piefxis failed: {result.stdout}{result.stderr}")
        self.beam_pid = beam_pid(process.node)
        return Target(self.name, IP, process.c2s_port, DOMAIN, self.certificate[0],
                      self.beam_pid, modern=self.profile == "modern")

    def _configure(self, process: harness.EjabberdProcess, require_tls: bool = True) -> None:
        """The harness's files, plus what the bench needs: SCRAM-SHA-256 keys stored (not
        passwords), the modern modules' options, the VM's scheduler flags, the accounts;
        without ``require_tls``, authentication on the plain TCP stream is allowed."""
        config = process.work / "ejabberd.yml"
        text = config.read_text().replace(
            "auth_method: internal\n",
            "auth_method: internal\nauth_password_format: scram\nauth_scram_hash: sha256\n")
        if not require_tls:
            text = text.replace("starttls_required: true", "starttls_required: false")
        if self.profile == "modern":
            text += "".join(MODERN_OPTIONS)
        config.write_text(text)
        ctl = process.work / "ejabberdctl.cfg"
        ctl.write_text(ctl.read_text().replace('ERL_OPTIONS="', f'ERL_OPTIONS="{ERLANG_OPTIONS} ')
                       + f"ERL_MAX_PORTS={max_ports()}\n")
        accounts = process.work / "accounts.xml"
        accounts.write_bytes((self.workdir / "accounts.xml").read_bytes())
        account = pwd.getpwnam(harness.USER)
        os.chown(accounts, account.pw_uid, account.pw_gid)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        errors = process.errors()
        code = process.stop(timeout=60)
        process.cleanup()
        if code not in (0, None):
            self.problems.append(f"{process.directory.name}: exit status {code}")
        if errors:
            self.problems.append(f"{process.directory.name}: {len(errors)} error lines, first: "
                                 f"{errors[0]}")


def piefxis(domain: str, users: int, hub_contacts: int) -> str:
    """The bench's accounts (bench/accounts.py) as a XEP-0227 file in ejabberd's dialect."""
    keys = derive_credentials(prepare_password(PASSWORD), "sha-256", salt=_SALT)

    def twice(raw: bytes) -> str:
        return base64.b64encode(base64.b64encode(raw)).decode()

    credentials = ("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'>"
                   f"<iter-count>{keys.iterations}</iter-count><salt>{twice(_SALT)}</salt>"
                   f"<server-key>{twice(keys.server_key)}</server-key>"
                   f"<stored-key>{twice(keys.stored_key)}</stored-key></scram-credentials>")

    def roster(contacts) -> str:
        items = "".join(f"<item subscription='both' jid='{c}@{domain}'/>" for c in contacts)
        return f"<query xmlns='jabber:iq:roster'>{items}</query>"

    hub_roster = roster([HUB])
    entries = [f"<user name='{user}'>{credentials}{hub_roster if i < hub_contacts else ''}</user>"
               for i, user in enumerate(user_names(users))]
    entries.append(f"<user name='{HUB}'>{credentials}{roster(user_names(hub_contacts))}</user>")
    return ("<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0'>"
            f"<host jid='{domain}'>{''.join(entries)}</host></server-data>\n")


def max_ports() -> int:
    """The Erlang VM's port (socket) limit: ejabberdctl's 32,000 is too few for the scaling
    workloads' 50,000 sessions; as many as the open files we may have (run.py raised them)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(32_000, soft if soft != resource.RLIM_INFINITY else 1_048_576)


def beam_pid(node: str, timeout: float = 10.0) -> int:
    """The Erlang VM running ``node`` (below ejabberdctl and the user switch): the process
    to pin and to measure."""
    pattern = re.compile(rb"(?:^|\0)-s?name\0" + re.escape(node.encode()) + rb"(?:\0|$)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if comm.startswith("beam") and pattern.search(cmdline):
                return int(entry)
        time.sleep(0.1)
    raise harness.EjabberdError(f"no Erlang VM found for node {node}")


def ensure_ejabberd() -> bool:
    """Whether ejabberd is installed (the bench measures without it otherwise; .ci/run's apt
    list has it for the interop tests)."""
    if harness.available():
        return True
    print("ejabberd is not installed (apt-get install ejabberd): measuring without it")
    return False
