"""twistd's text log lines, written for less CPU: every login logs two lines at info.

twistd's log file observer (``textFileLogObserver``, stdout or ``--logfile``) formats each
event with Twisted's pure-Python ``string.Formatter`` and rebuilds the timestamp (two
``fromtimestamp`` calls, a time zone object, ``strftime``) for every line: about 5% of a login
over STARTTLS. ``ClassicLine`` writes the very same text (``formatEventAsClassicLogText``):
the message through ``str.format_map``, the timestamp made once per second. Anything it does
not handle exactly as Twisted does (a traceback, a ``{call()}`` field, a flattened or bytes
format, a format error) goes to Twisted's own formatter.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

from twisted.logger import FileLogObserver, formatTime, globalLogPublisher, timeFormatRFC3339

__all__ = ["ClassicLine", "install", "timeFormatRFC3339", "twistd_time_format"]

Formatter = Callable[[dict], "str | None"]


class ClassicLine:
    """``formatEventAsClassicLogText`` with the timestamp of ``time_format``, cheaper."""

    def __init__(self, time_format: str | None, fallback: Formatter) -> None:
        self.time_format = time_format
        self.fallback = fallback
        # A stamp is the same for a whole second unless the format shows fractions.
        self._per_second = time_format is not None and "%f" not in time_format
        self._second = -1.0
        self._stamp = ""

    def __call__(self, event: dict) -> str | None:
        form = event.get("log_format")
        if (type(form) is not str or "()" in form or "log_failure" in event
                or "log_flattened" in event):
            return self.fallback(event)
        try:
            text = form.format_map(event)
            system = event.get("log_system")
            if system is None:
                level = event.get("log_level")
                system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
            else:
                system = str(system)
        except Exception:  # Twisted's formatter says what was wrong, in the line itself
            return self.fallback(event)
        if not text:
            return None
        line = f"{self.stamp(event.get('log_time'))} [{system}] {text}"
        return line.replace("\n", "\n\t") + "\n"

    def stamp(self, when: float | None) -> str:
        """``formatTime(when, time_format)``, remembered for the current second."""
        if when is None or not self._per_second:
            return formatTime(when, self.time_format)
        second = math.floor(when)
        if when - second >= 0.9999995:  # datetime rounds this up into the next second
            return formatTime(when, self.time_format)
        if second != self._second:
            self._stamp = formatTime(when, self.time_format)
            self._second = second
        return self._stamp


def twistd_time_format(formatter: object) -> tuple[bool, str | None]:
    """Whether ``formatter`` is the one ``textFileLogObserver`` made, and its time format."""
    if getattr(formatter, "__qualname__", "") != "textFileLogObserver.<locals>.formatEvent":
        return False, None
    nonlocals = inspect.getclosurevars(formatter).nonlocals
    if "timeFormat" not in nonlocals:
        return False, None
    return True, nonlocals["timeFormat"]


def install() -> int:
    """Give twistd's text file observers the cheaper formatter; how many were changed."""
    changed = 0
    for observer in getattr(globalLogPublisher, "_observers", ()):
        if not isinstance(observer, FileLogObserver):
            continue
        classic, time_format = twistd_time_format(observer.formatEvent)
        if classic:
            observer.formatEvent = ClassicLine(time_format, observer.formatEvent)
            changed += 1
    return changed
