"""xmppd.limits in memory: the token bucket, the connection gate, the authentication
back-off, the [limits] table's checks, and the pause reasons of XmlStream."""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet.task import Clock

from xmppd.config import ConfigError, load_config
from xmppd.limits.auth import AuthThrottle
from xmppd.limits.bucket import TokenBucket
from xmppd.limits.gate import ConnectionGate
from xmppd.limits.policy import Limits
from xmppd.limits.settings import DEFAULTS

# -- token bucket


def test_bucket_starts_full_then_makes_the_spender_wait():
    clock = Clock()
    bucket = TokenBucket(10, 20, clock.seconds)
    assert bucket.take(20) == 0.0
    assert bucket.take(5) == pytest.approx(0.5)  # 5 in debt at 10/s
    clock.advance(0.5)
    assert bucket.take(0) == 0.0
    clock.advance(100)
    assert bucket.take(25) == pytest.approx(0.5)  # never more than the burst saved up


def test_try_take_leaves_the_bucket_as_it_was_when_refused():
    clock = Clock()
    bucket = TokenBucket(1 / 3600, 3, clock.seconds)
    assert [bucket.try_take(1) for _ in range(4)] == [True, True, True, False]
    clock.advance(1200)
    assert not bucket.try_take(1)
    clock.advance(2400)
    assert bucket.try_take(1)


# -- connection gate


def test_gate_caps_per_ip_and_in_total_and_frees_places():
    gate = ConnectionGate("c2s", per_ip=2, total=3)
    assert gate.enter("10.0.0.1") is None
    assert gate.enter("10.0.0.1") is None
    assert "from 10.0.0.1 (2)" in gate.enter("10.0.0.1")
    assert gate.enter("10.0.0.2") is None
    assert "to this server (3)" in gate.enter("10.0.0.3")
    gate.leave("10.0.0.1")
    assert gate.enter("10.0.0.3") is None
    assert gate.counts == {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1}


def test_exempt_networks_skip_the_per_ip_cap_not_the_total():
    gate = ConnectionGate("c2s", per_ip=1, total=3,
                          exempt=[ipaddress.ip_network("10.1.0.0/16")])
    assert [gate.enter("10.1.2.3") for _ in range(3)] == [None, None, None]
    assert "to this server" in gate.enter("10.1.2.3")


# -- authentication back-off


def test_failure_answers_wait_longer_and_longer_up_to_the_cap():
    clock = Clock()
    throttle = AuthThrottle(1.0, 8.0, 900.0, clock.seconds)
    waits = [throttle.failed("192.0.2.1", "alice@example.org") for _ in range(7)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_the_owner_s_success_forgets_the_account_but_not_the_guessing_ip():
    clock = Clock()
    throttle = AuthThrottle(1.0, 8.0, 900.0, clock.seconds)
    for _ in range(4):
        throttle.failed("192.0.2.1", "alice@example.org")  # a guesser
    throttle.succeeded("198.51.100.7", "alice@example.org")  # alice herself, elsewhere
    assert throttle.failed("198.51.100.7", "alice@example.org") == 0.0  # her typo: no wait
    assert throttle.failed("192.0.2.1", "bob@example.org") == 8.0  # the guesser's IP: waits


def test_the_wait_before_a_check_is_the_next_failure_s_back_off_from_the_last():
    """For component handshakes (xmppd.component.stream): asked before a check, counts
    nothing, and runs from the last failure of the worst key (IP, account or pair)."""
    clock = Clock()
    throttle = AuthThrottle(1.0, 8.0, 60.0, clock.seconds)
    assert throttle.wait("192.0.2.1", "gw.example.org") == 0.0
    throttle.failed("192.0.2.1", "gw.example.org")
    assert throttle.wait("192.0.2.1", "gw.example.org") == 1.0  # the 2nd would wait 1 s
    throttle.failed("192.0.2.1", "gw.example.org")
    clock.advance(0.5)
    assert throttle.wait("198.51.100.7", "gw.example.org") == 1.5  # the domain's: 2 s - 0.5
    assert throttle.wait("192.0.2.1", "other.example.org") == 1.5  # the address's
    assert throttle.wait("198.51.100.7", "other.example.org") == 0.0
    assert throttle.wait("198.51.100.7", "gw.example.org") == 1.5  # asking counted nothing
    clock.advance(60)  # beyond the window: forgotten
    assert throttle.wait("192.0.2.1", "gw.example.org") == 0.0
    off = AuthThrottle(0.0, 8.0, 60.0, clock.seconds)  # auth_delay = 0: no back-off
    off.failed("192.0.2.1", None)
    off.failed("192.0.2.1", None)
    assert off.wait("192.0.2.1", None) == 0.0


def test_failures_are_forgotten_after_the_window_and_the_table_is_bounded():
    clock = Clock()
    throttle = AuthThrottle(1.0, 8.0, 60.0, clock.seconds, max_entries=10)
    throttle.failed("192.0.2.1", None)
    throttle.failed("192.0.2.1", None)
    clock.advance(61)
    assert throttle.failed("192.0.2.1", None) == 0.0
    for n in range(50):
        throttle.failed(f"192.0.2.{n}", f"user{n}@example.org")
    assert len(throttle._failures) == 10


def test_subscriptions_per_hour_per_account():
    clock = Clock()
    config = DEFAULTS.__class__(**{**DEFAULTS.__dict__, "subscriptions_per_hour": 2})
    limits = Limits(config, clock)
    assert [limits.may_subscribe("alice@example.org") for _ in range(3)] == [True, True, False]
    assert limits.may_subscribe("bob@example.org")
    clock.advance(1800)
    assert limits.may_subscribe("alice@example.org")


# -- the [limits] table


def config_text(tmp_path, text: str):
    path = tmp_path / "xmppd.toml"
    path.write_text('[server]\ndomains = ["example.org"]\n' + text)
    return load_config(path)


def test_limits_defaults_and_overrides(tmp_path):
    assert config_text(tmp_path, "").limits == DEFAULTS
    limits = config_text(tmp_path, """
[limits]
exempt = ["10.0.0.0/8"]
ping_after = 0
[limits.s2s]
bytes_per_second = 1000
burst_bytes = 1000
""").limits
    assert limits.exempt == (ipaddress.ip_network("10.0.0.0/8"),)
    assert limits.ping_after == 0.0
    assert limits.s2s.bytes_per_second == 1000 and limits.c2s == DEFAULTS.c2s


@pytest.mark.parametrize("text, message", [
    ("[limits]\nbogus = 1\n", "[limits] bogus: unknown key"),
    ("[limits.c2s]\nburst = 1\n", "[limits.c2s] burst: unknown key"),
    ("[limits]\nexempt = [\"nope\"]\n", "[limits] exempt: item 1: expected an IP address"),
    ("[limits]\nauth_delay = 4\nauth_max_delay = 2\n",
     "[limits] auth_max_delay: must be at least auth_delay"),
    ("[limits]\ntcp_keepalive = 1.5\n", "[limits] tcp_keepalive: expected a whole number"),
    ("[limits]\nmax_output_buffer = 100\n", "[limits] max_output_buffer: must be at least"),
    ("[limits.c2s]\nunauthenticated_per_ip = 10\nunauthenticated_total = 5\n",
     "[limits.c2s] unauthenticated_total: must be at least unauthenticated_per_ip"),
    ("[limits.s2s]\nbytes_per_second = 100\nburst_bytes = 10\n",
     "[limits.s2s] burst_bytes: must be at least bytes_per_second"),
    ("[limits.c2s]\nstanzas_per_second = \"fast\"\n",
     "[limits.c2s] stanzas_per_second: expected a whole number"),
])
def test_bad_limits_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as raised:
        config_text(tmp_path, text)
    assert message in str(raised.value)


# -- pause reasons


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")


def test_reading_resumes_only_when_no_reason_is_left():
    from xmppd.limits.guard import RATE
    from xmppd.stream.xmlstream import WORK, XmlStream

    stream = XmlStream(Clock(), 10_000)
    stream.transport = FakeTransport()
    stream.pause_reading(WORK)
    stream.pause_reading(RATE)
    stream.pause_reading(WORK, resume=True)
    assert stream.transport.calls == ["pause"]
    stream.pause_reading(RATE, resume=True)
    assert stream.transport.calls == ["pause", "resume"]


# -- stanza pacing (c2s sessions and s2s streams)


class PacedStream:
    """What ``paced`` needs of a stream: its guard, reactor and state."""

    def __init__(self, limits) -> None:
        from xmppd.limits.guard import StreamGuard

        self.reactor = limits.reactor
        self.disconnected = False
        self.peer_address = "192.0.2.9:5269"
        self.guard = StreamGuard(limits, self, "s2s")


def test_s2s_stanzas_beyond_the_rate_wait_in_order_and_none_is_lost():
    from dataclasses import replace

    from xmppd.limits.stanzas import paced

    clock = Clock()
    config = replace(DEFAULTS, s2s=replace(DEFAULTS.s2s, stanzas_per_second=2, burst_stanzas=2))
    stream = PacedStream(Limits(config, clock))
    done: list[int] = []
    results = [paced(stream, lambda n=n: done.append(n)) for n in range(4)]
    assert done == [0, 1]  # the burst
    assert results[2] is not None and not results[2].called
    clock.advance(0.5)
    assert done == [0, 1, 2]
    clock.advance(1.0)
    assert done == [0, 1, 2, 3]
    assert stream.guard.throttled == 2


# -- output bound


class Buffered:
    """What the guard reads of a Twisted TCP transport's write buffer."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0


class Writer:
    def __init__(self) -> None:
        self.disconnected = False
        self.peer_address = "192.0.2.7:4000"
        self.paused: list[tuple[int, bool]] = []
        self.overflowed = 0

    def pause_reading(self, reason: int, resume: bool = False) -> None:
        self.paused.append((reason, resume))

    def output_overflow(self) -> None:
        self.overflowed += 1


def test_a_slow_reader_is_not_read_then_cut():
    from dataclasses import replace

    from xmppd.limits.guard import OUTPUT, StreamGuard

    clock = Clock()
    limits = Limits(replace(DEFAULTS, max_output_buffer=100_000), clock)
    stream = Writer()
    guard = StreamGuard(limits, stream, "c2s")
    guard.tcp = Buffered()
    guard.tcp._tempDataLen = 40_000
    guard.wrote()
    assert stream.paused == []
    guard.tcp._tempDataLen = 60_000  # over half: the peer is not read any more
    guard.wrote()
    guard.wrote()
    assert stream.paused == [(OUTPUT, False)]
    guard.tcp._tempDataLen = 20_000  # down to a fifth: read again
    clock.advance(0.5)
    assert stream.paused == [(OUTPUT, False), (OUTPUT, True)]
    guard.tcp._tempDataLen = 100_001
    guard.wrote()
    guard.wrote()
    clock.advance(0)
    assert stream.overflowed == 1  # once, on the next turn


def test_tcp_keepalive_is_set_on_the_socket():
    import socket

    from xmppd.limits.guard import _keepalive

    class Connection:
        pass

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    connection = Connection()
    connection.socket = client
    try:
        _keepalive(connection, 60)
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 20
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
    finally:
        client.close()
        listener.close()


# -- classes of accounts


def test_account_classes_are_read_and_checked(tmp_path):
    limits = config_text(tmp_path, """
[limits.classes.bots]
stanzas_per_second = 0
[limits.accounts]
"FeedBot@Example.org" = "bots"
""").limits
    assert limits.accounts == {"feedbot@example.org": "bots"}
    bots = limits.classes["bots"]
    assert bots.stanzas_per_second == 0 and bots.bytes_per_second == DEFAULTS.c2s.bytes_per_second
    with pytest.raises(ConfigError, match=r"\[limits.accounts\] \"a@example.org\": \"vip\" is "
                                          r"not a class of \[limits.classes\]"):
        config_text(tmp_path, '[limits.accounts]\n"a@example.org" = "vip"\n')
    with pytest.raises(ConfigError, match=r"\[limits.accounts\] \"a@example.org/r\": not an"):
        config_text(tmp_path, '[limits.classes.x]\n[limits.accounts]\n"a@example.org/r" = "x"\n')
    with pytest.raises(ConfigError, match=r"\[limits.classes.x\] fast: unknown key"):
        config_text(tmp_path, '[limits.classes.x]\nfast = 1\n')


def test_an_account_of_a_class_is_shaped_by_it_once_authenticated():
    from dataclasses import replace
    from types import MappingProxyType

    from xmppd.limits.guard import StreamGuard

    clock = Clock()
    config = replace(DEFAULTS, c2s=replace(DEFAULTS.c2s, stanzas_per_second=1, burst_stanzas=1),
                     classes=MappingProxyType({"bots": replace(DEFAULTS.c2s,
                                                                stanzas_per_second=0)}),
                     accounts=MappingProxyType({"bot@example.org": "bots"}))
    limits = Limits(config, clock)
    person, bot = (StreamGuard(limits, PacedStream(limits), "c2s") for _ in range(2))
    person.authenticated("alice@example.org")
    bot.authenticated("bot@example.org")
    assert [person.stanza_wait() for _ in range(2)] == [0.0, 1.0]
    assert [bot.stanza_wait() for _ in range(100)] == [0.0] * 100


def test_refusals_are_logged_in_summary():
    from twisted.logger import globalLogPublisher

    gate = ConnectionGate("c2s", per_ip=1, total=10)
    lines: list[str] = []

    def observe(event) -> None:
        if "listener refused" in event.get("log_format", ""):
            lines.append(event["log_format"].format(**event))

    globalLogPublisher.addObserver(observe)
    try:
        for second in (0.0, 1.0, 2.0, 11.0):
            gate.note_refusal("192.0.2.1:1", "too many", second)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [line.split(",")[0] for line in lines] == ["c2s listener refused 1 connection(s)",
                                                      "c2s listener refused 3 connection(s)"]


def test_the_byte_shaper_pauses_once_and_waits_for_bytes_already_on_their_way():
    from dataclasses import replace

    from xmppd.limits.guard import RATE, StreamGuard

    clock = Clock()
    limits = Limits(replace(DEFAULTS, c2s=replace(DEFAULTS.c2s, bytes_per_second=1000,
                                                  burst_bytes=1000)), clock)
    stream = Writer()
    guard = StreamGuard(limits, stream, "c2s")
    guard.received(1000)
    assert stream.paused == []
    guard.received(500)  # half a second in debt: paused
    guard.received(500)  # one more second's worth that was already read
    assert stream.paused == [(RATE, False)]
    clock.advance(0.6)
    assert stream.paused == [(RATE, False)]
    clock.advance(0.5)
    assert stream.paused == [(RATE, False), (RATE, True)]
