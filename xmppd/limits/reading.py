# -*- test-case-name: tests.unit.test_limits -*-
"""Reading ``[limits]`` (xmppd.limits.settings) with the checks of xmppd.config: a bad value or
an unknown key names the key."""

from __future__ import annotations

import dataclasses
import ipaddress
from types import MappingProxyType

from xmppd.config import BARE_KEY, _bare_jid, _integer, _Invalid, _list, _seconds, _show, _Table
from xmppd.limits.settings import DEFAULTS, IPNetwork, LimitsConfig, StreamClass


def read_limits(t: _Table) -> LimitsConfig:
    """``[limits]`` and its class tables, every key checked (called by xmppd.config)."""
    d = DEFAULTS
    config = LimitsConfig(
        exempt=t.get("exempt", _list(_network, unique=True), d.exempt),
        sasl_failures_per_stream=t.get("sasl_failures_per_stream", _integer(minimum=1),
                                       d.sasl_failures_per_stream),
        auth_delay=t.get("auth_delay", _seconds_or_off, d.auth_delay),
        auth_max_delay=t.get("auth_max_delay", _seconds_or_off, d.auth_max_delay),
        auth_window=t.get("auth_window", _seconds, d.auth_window),
        ping_after=t.get("ping_after", _seconds_or_off, d.ping_after),
        ping_timeout=t.get("ping_timeout", _seconds, d.ping_timeout),
        tcp_keepalive=t.get("tcp_keepalive", _whole_seconds_or_off, d.tcp_keepalive),
        max_output_buffer=t.get("max_output_buffer", _integer(minimum=65_536),
                                d.max_output_buffer),
        subscriptions_per_hour=t.get("subscriptions_per_hour", _integer(minimum=0),
                                     d.subscriptions_per_hour),
        c2s=_stream_class(t.table("c2s"), d.c2s),
        s2s=_stream_class(t.table("s2s"), d.s2s),
    )
    classes = _classes(t.table("classes"), config.c2s)
    config = dataclasses.replace(config, classes=classes,
                                 accounts=_accounts(t.table("accounts"), classes))
    if config.auth_max_delay < config.auth_delay:
        raise t.error("auth_max_delay", f"must be at least auth_delay ({config.auth_delay})")
    return config


def _classes(t: _Table, c2s: StreamClass) -> MappingProxyType:
    """[limits.classes.NAME] tables: what they leave out is [limits.c2s]'s."""
    classes = {}
    for name in list(t.values):
        if not BARE_KEY.fullmatch(name):
            raise t.error(name, "a class name is a bare TOML key (letters, digits, - and _)")
        classes[name] = _stream_class(t.table(name), c2s)
    t.finish()
    return MappingProxyType(classes)


def _accounts(t: _Table, classes) -> MappingProxyType:
    """[limits.accounts]: bare JID = a class of [limits.classes]."""
    accounts = {}
    for key in list(t.values):
        t.known.add(key)
        try:
            account = _bare_jid(key).userhost()
        except _Invalid as problem:
            raise t.error(key, f"not an account: {problem}") from None
        name = t.values[key]
        if name not in classes:
            raise t.error(key, f"{_show(name)} is not a class of [limits.classes] "
                               f"(known: {', '.join(sorted(classes)) or 'none'})")
        accounts[account] = name
    t.finish()
    return MappingProxyType(accounts)


def _stream_class(t: _Table, d: StreamClass) -> StreamClass:
    result = StreamClass(
        unauthenticated_per_ip=t.get("unauthenticated_per_ip", _integer(minimum=1),
                                     d.unauthenticated_per_ip),
        unauthenticated_total=t.get("unauthenticated_total", _integer(minimum=1),
                                    d.unauthenticated_total),
        bytes_per_second=t.get("bytes_per_second", _integer(minimum=0), d.bytes_per_second),
        burst_bytes=t.get("burst_bytes", _integer(minimum=0), d.burst_bytes),
        stanzas_per_second=t.get("stanzas_per_second", _integer(minimum=0),
                                 d.stanzas_per_second),
        burst_stanzas=t.get("burst_stanzas", _integer(minimum=0), d.burst_stanzas),
    )
    if result.unauthenticated_total < result.unauthenticated_per_ip:
        raise t.error("unauthenticated_total",
                      f"must be at least unauthenticated_per_ip ({result.unauthenticated_per_ip})")
    if result.bytes_per_second and result.burst_bytes < result.bytes_per_second:
        raise t.error("burst_bytes", f"must be at least bytes_per_second "
                                     f"({result.bytes_per_second})")
    if result.stanzas_per_second and result.burst_stanzas < result.stanzas_per_second:
        raise t.error("burst_stanzas", f"must be at least stanzas_per_second "
                                       f"({result.stanzas_per_second})")
    t.finish()
    return result


def _network(value: object) -> IPNetwork:
    try:
        return ipaddress.ip_network(value if isinstance(value, str) else None, strict=False)
    except (ValueError, TypeError):
        raise _Invalid(f"expected an IP address or network such as \"10.0.0.0/8\", "
                       f"got {_show(value)}") from None


def _seconds_or_off(value: object) -> float:
    """A number of seconds, or 0 for "off"."""
    return 0.0 if value == 0 and not isinstance(value, bool) else _seconds(value)


def _whole_seconds_or_off(value: object) -> float:
    """TCP keepalive times are whole seconds (the socket options take integers)."""
    seconds = _seconds_or_off(value)
    if seconds != int(seconds):
        raise _Invalid(f"expected a whole number of seconds, got {_show(value)}")
    return seconds
