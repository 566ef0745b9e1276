# -*- test-case-name: tests.unit.test_limits -*-
"""The ``[limits]`` table: what a stranger may make the server spend, read and checked once.

``[limits]`` holds what is not tied to a kind of stream (authentication back-off, liveness
pings, the output a slow reader may leave queued, subscription requests); ``[limits.c2s]``
and ``[limits.s2s]`` are the classes of streams, each with its connection caps and shapers
(like Prosody's mod_limits or ejabberd's shapers). A rate of 0 turns that shaper off.
``[limits.classes.NAME]`` tables are more classes, and ``[limits.accounts]`` puts accounts in
them: once such an account has authenticated, its streams are shaped by its class (a feed bot
may send faster than a person; only the shapers of a class apply to accounts).
Every default is listed in the README's Security section and in etc/xmppd.toml; the
table is read by xmppd.limits.reading.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class StreamClass:
    """The limits of one class of streams (``[limits.c2s]``, ``[limits.s2s]``)."""

    unauthenticated_per_ip: int  # concurrent unauthenticated connections per IP, per listener
    unauthenticated_total: int  # the same for all IPs together, per listener
    bytes_per_second: int  # token-bucket byte rate of what we read; 0: no shaper
    burst_bytes: int  # the bucket's size
    stanzas_per_second: int  # per bound session (c2s); 0: no shaper
    burst_stanzas: int


# The shapers' defaults stop a flood without binding a busy honest client: the saturated
# messages benchmark (bench/) drives a session at up to ~1,000 stanzas and ~250 KB a second.
C2S_DEFAULTS = StreamClass(unauthenticated_per_ip=10, unauthenticated_total=1000,
                           bytes_per_second=1_048_576, burst_bytes=4_194_304,
                           stanzas_per_second=1000, burst_stanzas=2000)
S2S_DEFAULTS = StreamClass(unauthenticated_per_ip=10, unauthenticated_total=500,
                           bytes_per_second=4_194_304, burst_bytes=16_777_216,
                           stanzas_per_second=0, burst_stanzas=0)


@dataclass(frozen=True)
class LimitsConfig:
    exempt: tuple[IPNetwork, ...]  # never counted against the per-IP caps
    sasl_failures_per_stream: int  # RFC 6120 §6.4.5: the stream ends after this many
    auth_delay: float  # the first back-off step (seconds); 0: no back-off
    auth_max_delay: float  # the longest a failure answer waits
    auth_window: float  # failures older than this are forgotten
    ping_after: float  # silence (seconds) before an XEP-0199 ping; 0: no pings
    ping_timeout: float  # how long the ping's answer (any byte) may take
    tcp_keepalive: float  # seconds of TCP idleness before keepalive probes; 0: off
    max_output_buffer: int  # bytes queued for a slow reader before its stream ends
    subscriptions_per_hour: int  # subscription requests per account; 0: unlimited
    c2s: StreamClass
    s2s: StreamClass
    # [limits.classes.NAME]: shapers for the accounts [limits.accounts] puts in them
    classes: Mapping[str, StreamClass] = field(default_factory=lambda: MappingProxyType({}))
    accounts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


DEFAULTS = LimitsConfig(
    exempt=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
    sasl_failures_per_stream=3, auth_delay=1.0, auth_max_delay=8.0, auth_window=900.0,
    ping_after=300.0, ping_timeout=60.0, tcp_keepalive=120.0, max_output_buffer=2_097_152,
    subscriptions_per_hour=100, c2s=C2S_DEFAULTS, s2s=S2S_DEFAULTS)
