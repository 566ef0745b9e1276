"""Waiting for a line in a peer server's log (Prosody, ejabberd)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable


def wait_for_line(read_log: Callable[[], str], pattern: str, timeout: float = 10.0) -> str:
    """The first line of ``read_log()`` matching the regular expression ``pattern``, waiting
    for it; AssertionError with the log's end when none comes within ``timeout`` seconds."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in read_log().splitlines():
            if compiled.search(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matched {pattern!r} in {timeout}s:\n"
                                 f"{read_log()[-20000:]}")
        time.sleep(0.1)
