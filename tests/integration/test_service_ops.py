"""Running it for real: certificates per domain with SNI on c2s and s2s, a renewed certificate
taken on SIGHUP while sessions stay up, `xmppdctl reload`, log file reopening on SIGUSR1, and
the systemd unit. Each against a real twistd process, real TLS, slixmpp where a client logs in.
"""

from __future__ import annotations

import asyncio
import configparser
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.certs import CertificateAuthority
from tests.integration.conftest import PASSWORD, login, logout
from tests.integration.serverproc import BIN, XmppdProcess, free_port
from tests.integration.test_federation import (
    chat_across,
    close,
    servers,  # noqa: F401 (the fixture)
)

A, B = "a.example", "b.example"
ROOT = Path(__file__).resolve().parents[2]


def presented(port: int, sni: str | None, *, starttls_to: str | None = None,
              stream_ns: str = "jabber:client") -> x509.Certificate:
    """The certificate the server presents on ``port``: direct TLS, or STARTTLS after a
    stream header to ``starttls_to``; SNI ``sni`` (None: no SNI at all)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if starttls_to is not None:
        sock.sendall((f"<?xml version='1.0'?><stream:stream to='{starttls_to}' version='1.0' "
                      f"xmlns='{stream_ns}' xmlns:stream='http://etherx.jabber.org/streams'>"
                      ).encode())
        received = b""
        while b"</stream:features>" not in received:
            received += sock.recv(4096)
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        while b"<proceed" not in received:
            received += sock.recv(4096)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(sock, server_hostname=sni) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def cn(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def wait_for_log(proc: XmppdProcess, text: str, after: int = 0, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log()[after:]:
            return proc.log()[after:]
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged:\n{proc.log()[after:]}")


# --------------------------------------------------------------------------- SNI


def two_domain_server(tmp_path) -> tuple[XmppdProcess, CertificateAuthority]:
    ca = CertificateAuthority(tmp_path / "pki")
    certs = tmp_path / "certs"
    a, b = ca.issue(A), ca.issue(B)
    certs.mkdir()
    shutil.copy(a.cert_path, certs / f"{A}.crt")  # Prosody's layout
    shutil.copy(a.key_path, certs / f"{A}.key")
    (certs / B).mkdir()  # Let's Encrypt's
    shutil.copy(b.cert_path, certs / B / "fullchain.pem")
    shutil.copy(b.key_path, certs / B / "privkey.pem")
    proc = XmppdProcess(tmp_path / "server", domain=A)
    s2s_direct = free_port()
    text = proc.config.read_text().replace(f'domains = ["{A}"]', f'domains = ["{A}", "{B}"]')
    text = text.replace(f'certificate = "{proc.cert}"\nkey = "{proc.key}"',
                        f'certificates = "{certs}"')
    proc.config.write_text(text + f'\n[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]'
                                  f'\ndirect_tls = ["tcp:{s2s_direct}:interface=127.0.0.1"]\n'
                                  f'ca_file = "{ca.ca_path}"\n')
    proc.s2s_direct_port = s2s_direct
    proc.cert = ca.ca_path  # what clients trust
    return proc, ca


def test_each_domain_presents_its_own_certificate_on_c2s_and_s2s(tmp_path):
    proc, ca = two_domain_server(tmp_path)
    assert proc.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    proc.start()
    try:
        # c2s direct TLS, by SNI
        assert cn(presented(proc.direct_tls_port, A)) == f"CN={A}"
        assert cn(presented(proc.direct_tls_port, B)) == f"CN={B}"
        # c2s STARTTLS: by SNI, and without SNI by the stream header's domain
        assert cn(presented(proc.c2s_port, B, starttls_to=B)) == f"CN={B}"
        assert cn(presented(proc.c2s_port, None, starttls_to=B)) == f"CN={B}"
        # s2s, both ways in
        assert cn(presented(proc.s2s_direct_port, B)) == f"CN={B}"
        assert cn(presented(proc.s2s_port, None, starttls_to=B,
                            stream_ns="jabber:server")) == f"CN={B}"
        assert cn(presented(proc.s2s_port, A, starttls_to=A,
                            stream_ns="jabber:server")) == f"CN={A}"

        async def scenario():  # slixmpp checks the certificate's name against b.example
            for direct in (False, True):
                bob = await login(proc, f"bob@{B}", direct_tls=direct)
                await logout(bob)

        asyncio.run(scenario())
    finally:
        assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log()


# --------------------------------------------------------------------------- SIGHUP


def test_sighup_takes_a_renewed_certificate_and_sessions_stay_up(tmp_path):
    ca = CertificateAuthority(tmp_path / "pki")
    first = ca.issue("localhost", filename="live")
    proc = XmppdProcess(tmp_path / "server", certificate=(first.cert_path, first.key_path))
    proc.cert = ca.ca_path
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    try:
        async def scenario():
            alice = await login(proc, "alice@localhost")
            assert presented(proc.direct_tls_port, "localhost") == first.cert
            renewed = ca.issue("localhost", filename="live")  # same files, new contents
            assert renewed.cert != first.cert
            before = len(proc.log())
            proc.process.send_signal(signal.SIGHUP)
            await asyncio.to_thread(wait_for_log, proc, "reload: applied [tls]", before)
            # a new connection sees the renewed certificate, on both c2s ports
            assert presented(proc.direct_tls_port, "localhost") == renewed.cert
            assert presented(proc.c2s_port, "localhost",
                             starttls_to="localhost") == renewed.cert
            # the session opened before is still up: it pings and gets a message
            assert await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5) >= 0
            bob = await login(proc, "bob@localhost")
            got = asyncio.get_running_loop().create_future()
            alice.add_event_handler("message", lambda m: got.done() or got.set_result(m))
            bob.send_message(mto=alice.boundjid.full, mbody="after the renewal", mtype="chat")
            message = await asyncio.wait_for(got, 10)
            assert message["body"] == "after the renewal"
            await logout(bob)
            await logout(alice)

        asyncio.run(scenario())
    finally:
        assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log()


def test_a_bad_certificate_on_reload_keeps_the_old_one(tmp_path):
    ca = CertificateAuthority(tmp_path / "pki")
    first = ca.issue("localhost", filename="live")
    proc = XmppdProcess(tmp_path / "server", certificate=(first.cert_path, first.key_path))
    proc.start()
    try:
        shutil.copy(ca.issue("other.example").key_path, first.key_path)  # the wrong key
        result = proc.ctl("reload")
        assert result.returncode == 1
        assert "is not the key of" in result.stderr
        assert "the certificates in use are unchanged" in result.stderr
        assert presented(proc.direct_tls_port, "localhost") == first.cert
    finally:
        assert proc.stop() == 0, proc.log()


def test_xmppdctl_reload_applies_what_it_can_and_names_the_rest(tmp_path):
    proc = XmppdProcess(tmp_path)
    proc.start()
    try:
        text = proc.config.read_text()
        proc.config.write_text(
            text.replace("[server]\n", '[server]\nadmins = ["alice@localhost"]\n')
                .replace("auth_timeout = 5.0", "auth_timeout = 7.0")
            + '\n[log]\nlevel = "debug"\n')
        result = proc.ctl("reload")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "applied: [log] level = debug" in lines
        assert "applied: [server] admins" in lines
        assert "needs a restart: [c2s] auth_timeout" in lines
        log = wait_for_log(proc, "[c2s] auth_timeout changed and needs a restart")
        assert "reload: applied [server] admins" in log
        # debug is on: a control call is logged at debug level from now on
        assert proc.ctl("sessions").returncode == 0
        wait_for_log(proc, "control: list_sessions")
        # a broken file changes nothing, and every problem is named (by SIGHUP in the log;
        # xmppdctl reads the file too, to find the control socket, and says them itself)
        proc.config.write_text(text.replace("auth_timeout = 5.0", "auth_timeout = -1")
                               + '\n[log]\nlevel = "loud"\n')
        result = proc.ctl("reload")
        assert result.returncode == 1
        assert "[c2s] auth_timeout" in result.stderr and "[log] level" in result.stderr
        before = len(proc.log())
        proc.process.send_signal(signal.SIGHUP)
        log = wait_for_log(proc, "[log] level: expected one of", before)
        assert "reload: " in log and "[c2s] auth_timeout: must be" in log
        assert proc.process.poll() is None  # still running, on its old settings
        proc.config.write_text(text)
        assert proc.ctl("sessions").returncode == 0
    finally:
        assert proc.stop() == 0, proc.log()


# --------------------------------------------------------------------------- logs


def test_sigusr1_reopens_the_log_file_after_logrotate_moved_it(tmp_path):
    proc = XmppdProcess(tmp_path)
    logfile = tmp_path / "xmppd-file.log"
    process = subprocess.Popen(
        [str(BIN / "twistd"), "--pidfile=", "-n", f"--logfile={logfile}", "xmppd",
         "--config", str(proc.config)], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "xmppd is serving" not in (logfile.read_text() if logfile.exists() else ""):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        logfile.rename(tmp_path / "xmppd-file.log.1")  # what logrotate does
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not logfile.exists():
            assert time.monotonic() < deadline, "the log file was not reopened"
            time.sleep(0.1)
        process.send_signal(signal.SIGHUP)  # something to log
        deadline = time.monotonic() + 10
        while "reload:" not in logfile.read_text():
            assert time.monotonic() < deadline, logfile.read_text()
            time.sleep(0.1)
        assert "reload:" not in (tmp_path / "xmppd-file.log.1").read_text()
        # not moved: SIGUSR1 rotates it the twistd way (the old lines go to .1)
        (tmp_path / "xmppd-file.log.1").unlink()
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (tmp_path / "xmppd-file.log.1").exists():
            assert time.monotonic() < deadline, "not rotated"
            time.sleep(0.1)
        assert "reload:" in (tmp_path / "xmppd-file.log.1").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_journald_lines_carry_the_priority(tmp_path):
    proc = XmppdProcess(tmp_path)
    result = subprocess.Popen(
        [str(BIN / "twistd"), "--pidfile=", "-n", "--logger", "xmppd.ops.journal.observer",
         "xmppd", "--config", str(proc.config)], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in result.stdout:
            lines.append(line)
            if "xmppd is serving" in line:
                break
        proc.config.write_text(proc.config.read_text() + "\n[c2s.bad]\n")
        result.send_signal(signal.SIGHUP)
        for line in result.stdout:
            lines.append(line)
            if "reload:" in line:
                break
    finally:
        result.send_signal(signal.SIGTERM)
        rest, _ = result.communicate(timeout=20)
    assert result.returncode == 0
    assert "<6>xmppd.service: xmppd is serving localhost\n" in lines
    assert any(line.startswith("<3>xmppd.ops.reload: reload: ") for line in lines), lines
    assert PASSWORD not in "".join(lines) + rest


# --------------------------------------------------------------------------- systemd


UNIT = ROOT / "etc" / "xmppd.service"


def test_the_systemd_unit_is_sandboxed():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    assert service["User"] == "xmppd" and service["Group"] == "xmppd"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["Restart"] == "on-failure"
    assert "/var/lib/xmppd" in service["ReadWritePaths"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    exec_start = service["ExecStart"].split()
    assert "--nodaemon" in exec_start and "--pidfile=" in exec_start
    assert exec_start[exec_start.index("--logger") + 1] == "xmppd.ops.journal.observer"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here "
                    "(the unit's keys are checked by test_the_systemd_unit_is_sandboxed)")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    unit = tmp_path / "xmppd.service"
    # verify needs the binaries it names: point ExecStart at ones that exist here
    unit.write_text(UNIT.read_text().replace("/opt/xmppd/venv/bin/twistd", str(BIN / "twistd")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "xmppd.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


# --------------------------------------------------------------------------- plugins reload

RELOADABLE_PLUGINS = '''
from twisted.words.xish import domish
from zope.interface import implementer
from xmppd.interfaces import IXmppdPlugin


def _text(options):
    options.known("text")
    value = options.config.get("text", "hello")
    if not isinstance(value, str):
        raise ValueError("[plugins.%s] text: expected a string" % options.name)
    return value


@implementer(IXmppdPlugin)
class Greeting:
    """Declares itself reloadable: reconfigure(ctx, settings)."""
    name, requires = "greeting", ()

    def configure(self, options):
        return _text(options)

    def setup(self, ctx):
        self.text = ctx.settings
        ctx.iq("get", "urn:example:greeting", "greeting", self.answer)

    def reconfigure(self, ctx, settings):
        self.text = settings

    def answer(self, stanza, origin):
        element = domish.Element(("urn:example:greeting", "greeting"))
        element.addContent(self.text)
        return element


@implementer(IXmppdPlugin)
class Frozen:
    """Not reloadable: a change of its section needs a restart."""
    name, requires = "frozen", ()

    def configure(self, options):
        return _text(options)

    def setup(self, ctx):
        pass


greeting, frozen = Greeting(), Frozen()
'''


def test_reload_reconfigures_a_reloadable_plugin_in_place(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "reloadable_plugins.py").write_text(RELOADABLE_PLUGINS)
    proc = XmppdProcess(tmp_path / "server", extra=(
        '[plugins]\nenabled = ["disco", "ping", "greeting", "frozen"]\n'
        '[plugins.greeting]\ntext = "hello"\n[plugins.frozen]\ntext = "ice"\n'))
    text = proc.config.read_text().replace("[server]\n", f'[server]\nplugin_dirs = ["{plugins}"]\n'
                                           , 1)
    text += f'\n[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n'
    proc.config.write_text(text)
    assert proc.ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
    proc.start()
    try:
        async def greet(client) -> str:
            from slixmpp.xmlstream import ET

            iq = client.make_iq_get(ito="localhost")
            iq.append(ET.Element("{urn:example:greeting}greeting"))
            reply = await iq.send(timeout=5)
            return reply.xml.find("{urn:example:greeting}greeting").text

        async def scenario():
            alice = await login(proc, "alice@localhost")
            assert await greet(alice) == "hello"
            proc.config.write_text(text.replace('text = "hello"', 'text = "bonjour"')
                                   .replace('text = "ice"', 'text = "water"')
                                   + 'deny = ["evil.example"]\n')
            result = await asyncio.to_thread(proc.ctl, "reload")
            assert result.returncode == 0, result.stderr
            lines = result.stdout.splitlines()
            assert "applied: [plugins.greeting]" in lines
            assert "needs a restart: [plugins.frozen] (the plugin is not reloadable)" in lines
            assert "applied: [s2s] deny" in lines
            assert await greet(alice) == "bonjour"  # same session, same plugin, new setting
            # a bad value: configure refuses it, the old setting stays
            proc.config.write_text(text.replace('text = "hello"', "text = 7"))
            result = await asyncio.to_thread(proc.ctl, "reload")
            assert result.returncode == 1
            assert "[plugins.greeting] text: expected a string" in result.stderr
            assert await greet(alice) == "bonjour"
            await logout(alice)

        asyncio.run(scenario())
    finally:
        assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log()


def test_reload_applies_new_limits_to_the_next_connections(tmp_path):
    proc = XmppdProcess(tmp_path, extra='[limits]\nexempt = []\n[limits.c2s]\n'
                                         'unauthenticated_per_ip = 5\n')
    proc.start()
    held = []
    try:
        def connect() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", proc.c2s_port), timeout=5)
            sock.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                         b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
            received = b""
            while b"</stream:features>" not in received and b"</stream:stream>" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            return sock, received

        for _ in range(2):
            sock, received = connect()
            assert b"</stream:features>" in received
            held.append(sock)
        proc.config.write_text(proc.config.read_text().replace("unauthenticated_per_ip = 5",
                                                               "unauthenticated_per_ip = 2"))
        result = proc.ctl("reload")
        assert "applied: [limits] c2s" in result.stdout.splitlines(), result
        sock, received = connect()  # a third while two wait: over the new cap
        held.append(sock)
        assert b"too many unauthenticated connections from 127.0.0.1 (2)" in received
    finally:
        for sock in held:
            sock.close()
        assert proc.stop() == 0, proc.log()


def test_tls_watch_reloads_certificates_when_their_files_change(tmp_path):
    ca = CertificateAuthority(tmp_path / "pki")
    first = ca.issue("localhost", filename="live")
    proc = XmppdProcess(tmp_path / "server", certificate=(first.cert_path, first.key_path))
    proc.config.write_text(proc.config.read_text().replace("[tls]\n", "[tls]\nwatch = 1\n"))
    proc.start()
    try:
        assert presented(proc.direct_tls_port, "localhost") == first.cert
        renewed = ca.issue("localhost", filename="live")
        wait_for_log(proc, "certificates reloaded: new connections use them")
        assert presented(proc.direct_tls_port, "localhost") == renewed.cert
    finally:
        assert proc.stop() == 0, proc.log()


def test_outgoing_s2s_presents_the_sending_domains_certificate(tmp_path):
    """One server hosts a.example and c.example, each with a certificate naming only itself;
    the peer accepts only certificates that validate and name the sending domain
    ("trusted"). Both domains' users reach it: each stream presented its own domain's."""
    ca = CertificateAuthority(tmp_path / "pki")
    C = "c.example"
    certs = tmp_path / "certs"
    certs.mkdir()
    for domain in (A, C):
        issued = ca.issue(domain, dns_names=[domain])
        shutil.copy(issued.cert_path, certs / f"{domain}.crt")
        shutil.copy(issued.key_path, certs / f"{domain}.key")
    peer_cert = ca.issue(B)
    host = XmppdProcess(tmp_path / "host", domain=A)
    peer = XmppdProcess(tmp_path / "peer", domain=B,
                        certificate=(peer_cert.cert_path, peer_cert.key_path))
    text = host.config.read_text().replace(f'domains = ["{A}"]', f'domains = ["{A}", "{C}"]')
    host.config.write_text(
        text.replace(f'certificate = "{host.cert}"\nkey = "{host.key}"',
                     f'certificates = "{certs}"')
        + f'\n[s2s]\nlisten = ["tcp:{host.s2s_port}:interface=127.0.0.1"]\n'
          f'ca_file = "{ca.ca_path}"\ndefault_policy = "trusted"\n'
          f'[s2s.hosts]\n"{B}" = "127.0.0.1:{peer.s2s_port}"\n')
    peer.config.write_text(
        peer.config.read_text()
        + f'\n[s2s]\nlisten = ["tcp:{peer.s2s_port}:interface=127.0.0.1"]\n'
          f'ca_file = "{ca.ca_path}"\ndefault_policy = "trusted"\n'
          f'[s2s.hosts]\n"{A}" = "127.0.0.1:{host.s2s_port}"\n'
          f'"{C}" = "127.0.0.1:{host.s2s_port}"\n')
    host.cert = peer.cert = ca.ca_path
    for proc, jid in ((host, f"alice@{A}"), (host, f"carol@{C}"), (peer, f"bob@{B}")):
        assert proc.ctl("adduser", jid, PASSWORD).returncode == 0
    host.start()
    peer.start()
    try:
        async def scenario():
            bob = await login(peer, f"bob@{B}")
            inbox: asyncio.Queue = asyncio.Queue()
            bob.add_event_handler("message", inbox.put_nowait)
            for jid in (f"alice@{A}", f"carol@{C}"):
                sender = await login(host, jid)  # slixmpp checks c2s SNI: its domain's name
                sender.send_message(mto=bob.boundjid.full, mbody=f"from {jid}", mtype="chat")
                message = await asyncio.wait_for(inbox.get(), 15)
                assert (str(message["from"].bare), message["body"]) == (jid, f"from {jid}")
                await logout(sender)
            await logout(bob)

        asyncio.run(scenario())
    finally:
        assert host.stop() == 0, host.log()
        assert peer.stop() == 0, peer.log()
    for domain in (A, C):
        assert f"from {domain}" in peer.log() and "certificate" in peer.log(), peer.log()


def test_a_reloaded_deny_list_refuses_the_peer_from_the_next_link(servers):  # noqa: F811
    a, b = servers("secure", "secure")

    async def scenario():
        alice, bob = await chat_across(a, b)
        b.config.write_text(b.config.read_text().replace(
            'default_policy = "secure"\n', f'default_policy = "secure"\ndeny = ["{A}"]\n'))
        result = await asyncio.to_thread(b.ctl, "reload")
        assert "applied: [s2s] deny" in result.stdout.splitlines(), result
        assert (await asyncio.to_thread(b.ctl, "s2s-close", A)).returncode == 0
        got: asyncio.Queue = asyncio.Queue()
        bob.add_event_handler("message", got.put_nowait)
        alice.send_message(mto=f"bob@{B}/work", mbody="after the deny", mtype="chat")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(got.get(), 6)
        await close(alice, bob)

    asyncio.run(scenario())
    wait_for_log(b, f"{A} is on the deny list")
