"""A real Redis (Debian's redis-server) for the cluster tests: its own process, in a temporary
directory, on a free loopback port, nothing saved to disk. No Redis is a failure, not a skip:
``.ci/run`` installs redis-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.serverproc import free_port


class RedisUnavailable(RuntimeError):
    pass


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RedisUnavailable(f"redis-server did not start on 127.0.0.1:{self.port}: {log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def command(self, *args: str):
        """One command over RESP; the reply as str, int, list or None."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            request = f"*{len(args)}\r\n" + "".join(
                f"${len(a.encode())}\r\n{a}\r\n" for a in args)
            sock.sendall(request.encode())
            return _Reader(sock.makefile("rb")).reply()


class _Reader:
    def __init__(self, file) -> None:
        self.file = file

    def reply(self):
        line = self.file.readline().rstrip(b"\r\n").decode()
        kind, rest = line[:1], line[1:]
        if kind == "+":
            return rest
        if kind == "-":
            raise RuntimeError(rest)
        if kind == ":":
            return int(rest)
        if kind == "$":
            if int(rest) < 0:
                return None
            data = self.file.read(int(rest) + 2)[:-2]
            return data.decode()
        if kind == "*":
            return None if int(rest) < 0 else [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"not a RESP reply: {line!r}")
