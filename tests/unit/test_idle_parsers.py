"""Idle client streams release their parser, and carry on as if nothing happened."""

from __future__ import annotations

from twisted.internet.task import Clock

from tests.unit.test_stream_output import HEADER, EchoStream, connected
from xmppd.stream.idle import SWEEP_INTERVAL, idle_parser_sweeper, release_idle_parsers


def started_stream() -> tuple[EchoStream, object]:
    stream = EchoStream([])
    transport = connected(stream)
    stream.peers = [stream]  # echo each element back
    stream.dataReceived(HEADER)
    transport.clear()
    return stream, transport


def test_a_stream_idle_for_a_whole_interval_releases_its_parser_and_still_works():
    stream, transport = started_stream()
    assert release_idle_parsers([stream]) == 0  # it was fed since the last sweep
    assert release_idle_parsers([stream]) == 1
    assert stream.parser._parser is None  # expat is gone
    stream.dataReceived(b"<message id='after'><body>still here</body></message>")
    assert transport.value() == b"<message id='after'><body>still here</body></message>"


def test_a_busy_stream_or_one_inside_a_stanza_keeps_its_parser():
    stream, transport = started_stream()
    release_idle_parsers([stream])
    stream.dataReceived(b"<message id='half'><body>wait")
    assert release_idle_parsers([stream]) == 0  # fed since the last sweep
    assert release_idle_parsers([stream]) == 0  # idle, but in the middle of a stanza
    stream.dataReceived(b"ing</body></message>")
    assert transport.value() == b"<message id='half'><body>waiting</body></message>"


def test_the_sweeper_runs_on_its_interval():
    clock = Clock()
    stream, _transport = started_stream()
    sweeper = idle_parser_sweeper(lambda: {stream}, clock)
    sweeper.startService()
    clock.advance(SWEEP_INTERVAL)
    assert stream.parser._parser is None
    sweeper.stopService()
