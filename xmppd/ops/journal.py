"""Logging for journald: ``twistd --nodaemon --logger xmppd.ops.journal.observer xmppd ...``.

One line per event on standard output, prefixed with its syslog priority (``<3>`` error,
``<4>`` warning, ``<6>`` info, ``<7>`` debug: sd-daemon(3)), so ``journalctl -p warning``
filters by level; no timestamp (the journal adds its own), then the logger's namespace and
the message. Messages never carry secrets: xmppd's log calls pass no passwords or keys.
"""

from __future__ import annotations

import sys
from typing import TextIO

from twisted.logger import FileLogObserver, LogLevel, formatEvent

PRIORITIES = {LogLevel.critical: 2, LogLevel.error: 3, LogLevel.warn: 4, LogLevel.info: 6,
              LogLevel.debug: 7}


def format_for_journal(event: dict) -> str | None:
    """``<priority>namespace: message`` plus a traceback for a failure, each line prefixed."""
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}"
    if not text:
        return None
    priority = PRIORITIES.get(event.get("log_level"), 6)
    namespace = event.get("log_namespace") or "-"
    lines = text.rstrip("\n").splitlines() or [""]
    return "".join(f"<{priority}>{namespace}: {line}\n" for line in lines)


def observer(out: TextIO | None = None) -> FileLogObserver:
    """The twistd ``--logger`` factory: journald-ready lines on standard output."""
    return FileLogObserver(sys.stdout if out is None else out, format_for_journal)
