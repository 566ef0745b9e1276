"""One line per finding, and the exit status they make."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OK, NOTE, WARN, ERROR = "ok", "note", "warn", "error"
AREAS = ("config", "dns", "certificates", "connectivity")  # in the order they run
PROBLEMS = (WARN, ERROR)  # what makes `xmppdctl check` exit non-zero


@dataclass(frozen=True)
class Finding:
    """``level`` (ok, note, warn, error), the area (config, dns, certificates,
    connectivity) and what was found, for one line of the report."""

    level: str
    area: str
    text: str

    def line(self) -> str:
        return f"{self.level:<5} {self.area}: {' '.join(self.text.split())}"


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when any finding is a warning or an error, else 0."""
    return 1 if any(f.level in PROBLEMS for f in findings) else 0


def summary(findings: list[Finding]) -> str:
    errors = sum(f.level == ERROR for f in findings)
    warnings = sum(f.level == WARN for f in findings)
    if not errors and not warnings:
        return "all checks passed"
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
