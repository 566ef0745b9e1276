# -- test-case-name: tests.integration.test_service_ops --
"""SIGUSR1 and twistd's ``--logfile``: work with logrotate as well as on its own.

twistd's own SIGUSR1 handler rotates its log file itself (xmppd.log → xmppd.log.1) and does
nothing if the file was already moved away, so after logrotate's rename it would go on
writing into the moved file for ever. Here SIGUSR1 reopens the file when logrotate moved it
(the path is gone or is another file than the one open), and otherwise rotates it as twistd
would: either way the log is written at its configured path afterwards.
"""

from __future__ import annotations

import os

from twisted.logger import globalLogPublisher
from twisted.python.logfile import BaseLogFile


def twistd_log_files() -> list[BaseLogFile]:
    """The log files twistd's observers write to (``--logfile``); none with stdout/syslog."""
    found = []
    for observer in getattr(globalLogPublisher, "_observers", ()):
        out = getattr(observer, "_outFile", None)
        if isinstance(out, BaseLogFile) and out not in found:
            found.append(out)
    return found


def reopen_log_files() -> list[str]:
    """Reopen (moved away) or rotate (still in place) each log file; returns their paths."""
    done = []
    for log_file in twistd_log_files():
        if moved_away(log_file):
            log_file.reopen()
        else:
            log_file.rotate()
        done.append(log_file.path)
    return done


def moved_away(log_file: BaseLogFile) -> bool:
    """The open file is no longer the one at its path (renamed or deleted by logrotate)."""
    try:
        at_path = os.stat(log_file.path)
    except FileNotFoundError:
        return True
    open_file = os.fstat(log_file._file.fileno())
    return (at_path.st_dev, at_path.st_ino) != (open_file.st_dev, open_file.st_ino)
