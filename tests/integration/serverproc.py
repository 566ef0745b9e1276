"""Run a real xmppd (twistd) in a subprocess with its own config, certificate and ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ports import free_port  # noqa: F401 (re-exported to the tests)
from xmppd.stream.selfsigned import make_self_signed

BIN = Path(sys.executable).parent


class XmppdProcess:
    """One server: ``start()``, ``ctl(...)``, ``stop()``; its log stays in ``log_path``."""

    def __init__(self, directory: Path, domain: str = "localhost", extra: str = "",
                 c2s_extra: str = "", auth_timeout: float = 5.0,
                 certificate: tuple[Path, Path] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.domain = domain
        self.c2s_port = free_port()
        self.direct_tls_port = free_port()
        self.s2s_port = free_port()
        if certificate is None:
            self.cert = directory / "tls" / f"{domain}.crt"
            self.key = directory / "tls" / f"{domain}.key"
            make_self_signed(self.cert, self.key, [domain])
        else:
            self.cert, self.key = certificate
        self.config = directory / "xmppd.toml"
        self.config.write_text(f"""
[server]
domains = ["{domain}"]
data_dir = "data"
shutdown_timeout = 3.0

[tls]
certificate = "{self.cert}"
key = "{self.key}"

[c2s]
listen = ["tcp:{self.c2s_port}:interface=127.0.0.1"]
direct_tls = ["tcp:{self.direct_tls_port}:interface=127.0.0.1"]
auth_timeout = {auth_timeout}
{c2s_extra}
{extra}
""")
        self.log_path = directory / "xmppd.log"
        self.process: subprocess.Popen | None = None

    def ctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "xmppdctl"), "--config", str(self.config), *args],
                              capture_output=True, text=True, input=input, timeout=60)

    def start(self, timeout: float = 30.0) -> None:
        already = len(self.log())  # a restart appends: only what this run logs counts
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / "twistd"), "--pidfile=", "-n", "xmppd", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"xmppd exited with {self.process.returncode}:\n{self.log()}")
            if "xmppd is serving" in self.log()[already:]:
                return
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"xmppd did not start in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
