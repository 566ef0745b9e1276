"""xmppd.ops.logline writes exactly the lines Twisted's text log observer writes."""

from __future__ import annotations

import io

from twisted.logger import (
    FileLogObserver,
    LogLevel,
    LogPublisher,
    formatEventAsClassicLogText,
    formatTime,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from xmppd.ops import logline
from xmppd.ops.logline import ClassicLine, twistd_time_format

NOW = 1_796_000_000.25


def twisted_line(event: dict) -> str | None:
    return textFileLogObserver(io.StringIO()).formatEvent(event)


def events() -> list[dict]:
    base = {"log_time": NOW, "log_namespace": "xmppd.c2s.stream", "log_level": LogLevel.info}
    failure = Failure(ZeroDivisionError("division by zero"))
    return [
        {**base, "log_format": "{account} authenticated with {mechanism} from {peer}",
         "account": "alice@example.org", "mechanism": "SCRAM-SHA-256", "peer": "127.0.0.1"},
        {**base, "log_format": "two\nlines {n:>5} {r!r}", "n": 7, "r": "x"},
        {**base, "log_format": "called {f()}", "f": lambda: "yes"},
        {**base, "log_format": "missing {nothing}"},
        {**base, "log_format": "braces {{literal}}"},
        {**base, "log_format": ""},
        {**base, "log_format": b"bytes {n}", "n": 1},
        {**base, "log_format": "failed", "log_failure": failure},
        {"log_format": "no time, level or namespace"},
        {**base, "log_format": "system", "log_system": "tcp,127.0.0.1"},
        {**base, "log_time": 1_796_000_000.9999997, "log_format": "rounds up"},
        {**base},
    ]


def test_same_text_as_twisted() -> None:
    line = ClassicLine(logline.timeFormatRFC3339, formatEventAsClassicLogText)
    for event in events():
        assert line(event) == twisted_line(event), event


def test_plain_lines_need_no_twisted_formatter() -> None:
    used = []
    line = ClassicLine(logline.timeFormatRFC3339, lambda event: used.append(event))
    plain = [events()[i] for i in (0, 1, 4, 5, 8, 9, 10)]
    for event in plain:
        line(event)
    assert used == []


def test_stamp_is_remembered_per_second_only() -> None:
    line = ClassicLine("%Y-%m-%dT%H:%M:%S", formatEventAsClassicLogText)
    for when in (NOW, NOW + 0.5, NOW + 1.0, NOW + 0.2, NOW + 3600.7):
        assert line.stamp(when) == formatTime(when, "%Y-%m-%dT%H:%M:%S")
    fractions = ClassicLine("%S.%f", formatEventAsClassicLogText)
    assert fractions.stamp(NOW) != fractions.stamp(NOW + 0.5)


def test_install_replaces_only_twistds_text_observer(monkeypatch) -> None:
    publisher = LogPublisher()
    out, other = io.StringIO(), io.StringIO()
    text = textFileLogObserver(out)
    custom = FileLogObserver(other, lambda event: "custom\n")
    publisher.addObserver(text)
    publisher.addObserver(custom)
    monkeypatch.setattr(logline, "globalLogPublisher", publisher)
    assert twistd_time_format(text.formatEvent) == (True, logline.timeFormatRFC3339)
    assert logline.install() == 1
    assert isinstance(text.formatEvent, ClassicLine)
    assert logline.install() == 0  # already done
    event = events()[0]
    publisher(event)
    assert out.getvalue() == twisted_line(event)
    assert other.getvalue() == "custom\n"
