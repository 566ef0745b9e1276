"""xmppd's loggers, filtered by ``[log] level`` before they reach twistd's log observers."""

from __future__ import annotations

from twisted.logger import (
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)


def _observer(event: dict) -> None:
    """What Twisted's FilteringLogObserver with ``_predicate`` does, with the answer per
    namespace and level remembered (``enabled``): it runs for every line xmppd logs."""
    if enabled(event["log_namespace"], event["log_level"]):
        globalLogPublisher(event)


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
