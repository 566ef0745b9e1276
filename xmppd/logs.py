"""xmppd's loggers, filtered by ``[log] level`` before they reach twistd's log observers."""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def get_logger(namespace: str) -> Logger:
    """A Logger for one module; use ``get_logger(__name__)``."""
    return Logger(namespace=namespace, observer=_observer)


def set_level(name: str) -> None:
    """Apply the configured level to every xmppd logger (Twisted's own logs are untouched)."""
    _predicate.setLogLevelForNamespace("xmppd", LEVELS[name])
    _enabled.clear()


def enabled(namespace: str, level: LogLevel) -> bool:
    """Whether a line of ``level`` from ``namespace`` would be kept: callers that log per
    network frame skip building lines nobody reads."""
    key = (namespace, level)
    kept = _enabled.get(key)
    if kept is None:
        kept = _enabled[key] = level >= _predicate.logLevelForNamespace(namespace)
    return kept


_enabled: dict[tuple[str, LogLevel], bool] = {}  # enabled()'s answers until set_level()
