"""The write batch (xmppd.stream.output) and how XmlStream uses it."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from xmppd import ns
from xmppd.stream.output import WriteBatch, batch
from xmppd.stream.xmlstream import XmlStream


class Queue:
    def __init__(self, log: list, name: str) -> None:
        self.pending: list[bytes] = []
        self.log = log
        self.name = name

    def flush(self) -> None:
        self.log.append((self.name, b"".join(self.pending)))
        self.pending.clear()


def test_outside_a_batch_nothing_is_queued():
    assert WriteBatch().queue(Queue([], "a"), b"x") is False


def test_the_outermost_end_flushes_each_output_once_in_first_write_order():
    log: list = []
    writes = WriteBatch()
    a, b = Queue(log, "a"), Queue(log, "b")
    writes.begin()
    assert writes.queue(b, b"1")
    writes.begin()
    assert writes.queue(a, b"2")
    assert writes.queue(b, b"3")
    writes.end()
    assert log == []  # still inside the outer batch
    writes.end()
    assert log == [("b", b"13"), ("a", b"2")]
    assert not writes.active


def test_a_failing_flush_does_not_keep_the_others_from_going_out():
    log: list = []
    writes = WriteBatch()

    class Broken(Queue):
        def flush(self) -> None:
            self.pending.clear()
            raise RuntimeError("boom")

    broken, fine = Broken(log, "x"), Queue(log, "fine")
    writes.begin()
    writes.queue(broken, b"1")
    writes.queue(fine, b"2")
    writes.end()
    assert log == [("fine", b"2")]


class EchoStream(XmlStream):
    """Answers each element by writing one element to every stream in ``peers``."""

    def __init__(self, peers: list) -> None:
        super().__init__(Clock(), 65536)
        self.peers = peers

    def header_received(self, header) -> None:
        self.send_header("example.org")

    def element_received(self, element) -> None:
        for peer in self.peers:
            peer.send(element)


class CountingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


def connected(stream: XmlStream) -> CountingTransport:
    transport = CountingTransport()
    stream.makeConnection(transport)
    return transport


HEADER = (f"<stream:stream xmlns='{ns.CLIENT}' xmlns:stream='{ns.STREAMS}' to='example.org' "
          "version='1.0'>").encode()


def test_stanzas_one_read_sends_to_a_stream_go_out_in_one_write_in_order():
    receiver = EchoStream([])
    receiver_transport = connected(receiver)
    sender = EchoStream([receiver])
    connected(sender).clear()
    sender.dataReceived(HEADER)
    receiver_transport.clear()
    receiver_transport.writes = 0
    sender.dataReceived(b"<message id='1'/><message id='2'/><message id='3'/>")
    assert receiver_transport.writes == 1
    assert receiver_transport.value() == b"<message id='1'/><message id='2'/><message id='3'/>"
    assert not batch.active


def test_outside_input_handling_a_send_is_written_at_once():
    stream = EchoStream([])
    transport = connected(stream)
    transport.clear()
    stream.send_header("example.org")
    assert transport.value().startswith(b"<?xml")


def test_a_stream_error_goes_out_before_the_connection_is_closed():
    stream = EchoStream([])
    transport = connected(stream)
    stream.dataReceived(HEADER + b"<message><unclosed></message>")
    assert transport.disconnecting
    assert b"<not-well-formed" in transport.value()
    assert transport.value().endswith(b"</stream:stream>")
    assert stream.pending == []


def test_after_connection_loss_queued_output_is_dropped():
    receiver = EchoStream([])
    receiver_transport = connected(receiver)
    receiver_transport.clear()
    batch.begin()
    try:
        receiver.send_header("example.org")
        receiver.connectionLost(None)
    finally:
        batch.end()
    assert receiver_transport.value() == b""
