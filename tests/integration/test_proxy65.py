"""XEP-0065 through the real proxy: two slixmpp clients (xep_0065) find proxy.localhost in
the server's disco, transfer a file through it at the configured per-user rate and the
bytes match; an activation by a third party is refused while the requester's succeeds; a
SOCKS5 client that never gets activated is closed after the timeout; a target that does not
read holds the requester back without the proxy's memory growing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port

NS = "http://jabber.org/protocol/bytestreams"
RATE = 1_000_000  # bytes per second for each user
TIMEOUT = 2


@pytest.fixture
def server(tmp_path):
    port = free_port()
    extra = (f'[plugins]\nenabled = ["disco", "ping", "roster", "presence", "proxy65"]\n'
             f'[plugins.proxy65]\nhost = "127.0.0.1"\nbind = "127.0.0.1"\nport = {port}\n'
             f'max_rate = {RATE}\ntimeout = {TIMEOUT}\n')
    proc = XmppdProcess(tmp_path, extra=extra)
    proc.proxy_port = port
    yield from serve(proc, ("alice", "bob", "carol"))


def digest(sid: str, requester: str, target: str) -> bytes:
    return hashlib.sha1(f"{sid}{requester}{target}".encode()).hexdigest().encode()


async def socks5(port: int, address: bytes):
    """A SOCKS5 connection through the XEP's handshake; (reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    writer.write(bytes((5, 1, 0, 3, len(address))) + address + b"\0\0")
    assert await reader.readexactly(7 + len(address)) == (
        bytes((5, 0, 0, 3, len(address))) + address + b"\0\0")
    return reader, writer


async def activate(client, sid: str, target: str):
    iq = client.make_iq_set(ito="proxy.localhost")
    query = ET.SubElement(iq.xml, f"{{{NS}}}query", sid=sid)
    ET.SubElement(query, f"{{{NS}}}activate").text = target
    return await iq.send(timeout=10)


def test_file_transfer_between_two_slixmpp_clients(server):
    payload = os.urandom(3 * RATE)

    async def scenario():
        alice = await login(server, "alice@localhost/laptop")
        bob = await login(server, "bob@localhost/pc")
        alice.register_plugin("xep_0065")
        bob.register_plugin("xep_0065", {"auto_accept": True})
        received = bytearray()
        closed = asyncio.get_running_loop().create_future()
        bob.add_event_handler("socks5_data", received.extend)
        bob.add_event_handler("socks5_closed",
                              lambda _exc: closed.done() or closed.set_result(True))

        proxies = await alice.plugin["xep_0065"].discover_proxies(timeout=10)
        assert proxies == {"proxy.localhost": ("127.0.0.1", str(server.proxy_port))}
        stream = await alice.plugin["xep_0065"].handshake("bob@localhost/pc", timeout=10)
        assert stream is not None
        started = time.monotonic()
        for start in range(0, len(payload), 65536):
            await stream.write(payload[start:start + 65536])
        stream.transport.close()
        await asyncio.wait_for(closed, 30)
        elapsed = time.monotonic() - started
        assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
        assert len(received) == len(payload)
        # 3 MB at 1 MB/s with a one-second burst: two seconds at least.
        assert elapsed >= 1.7, elapsed
        await logout(alice)
        await logout(bob)

    asyncio.run(scenario())


def test_only_the_requester_activates(server):
    async def scenario():
        alice = await login(server, "alice@localhost/laptop")
        carol = await login(server, "carol@localhost/x")
        address = digest("s1", "alice@localhost/laptop", "bob@localhost/pc")
        target_reader, target_writer = await socks5(server.proxy_port, address)
        with pytest.raises(IqError) as early:
            await activate(alice, "s1", "bob@localhost/pc")
        assert early.value.condition == "not-allowed"
        requester_reader, requester_writer = await socks5(server.proxy_port, address)

        with pytest.raises(IqError) as refused:
            await activate(carol, "s1", "bob@localhost/pc")
        assert refused.value.condition == "item-not-found"

        await activate(alice, "s1", "bob@localhost/pc")
        requester_writer.write(b"hello through the proxy")
        assert await target_reader.readexactly(23) == b"hello through the proxy"
        target_writer.write(b"and back")
        assert await requester_reader.readexactly(8) == b"and back"
        requester_writer.close()
        assert await asyncio.wait_for(target_reader.read(), 10) == b""
        target_writer.close()
        await logout(alice)
        await logout(carol)

    asyncio.run(scenario())


def test_unactivated_connections_are_closed_after_the_timeout(server):
    async def scenario():
        reader, writer = await socks5(server.proxy_port, digest("s", "a@localhost/r", "b@l/r"))
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1",
                                                                     server.proxy_port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), TIMEOUT + 5) == b""
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""
        assert time.monotonic() - started >= TIMEOUT - 0.5
        writer.close()
        silent_writer.close()

    asyncio.run(scenario())


def test_one_address_cannot_take_every_waiting_slot(capped):
    """Beyond max_waiting_per_ip unactivated connections from one address, the next is
    closed at once; another address still gets in, and a slot freed is a slot again."""
    async def scenario():
        held = [await socks5(capped.proxy_port, digest(f"s{n}", "a@localhost/r", "b@l/r"))
                for n in range(PER_IP)]
        try:  # the proxy aborts it at once: closed or reset, no method chosen
            reader, writer = await asyncio.open_connection("127.0.0.1", capped.proxy_port)
            writer.write(b"\x05\x01\x00")
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        except ConnectionResetError:
            pass
        other_reader, other_writer = await asyncio.open_connection(
            "127.0.0.1", capped.proxy_port, local_addr=("127.0.0.2", 0))
        other_writer.write(b"\x05\x01\x00")
        assert await asyncio.wait_for(other_reader.readexactly(2), 5) == b"\x05\x00"
        other_writer.close()
        held.pop()[1].close()
        await asyncio.sleep(0.5)
        again = await socks5(capped.proxy_port, digest("again", "a@localhost/r", "b@l/r"))
        for _, held_writer in [*held, again]:
            held_writer.close()

    asyncio.run(scenario())


PER_IP = 3


@pytest.fixture
def capped(tmp_path):
    port = free_port()
    extra = (f'[plugins]\nenabled = ["disco", "ping", "proxy65"]\n'
             f'[plugins.proxy65]\nhost = "127.0.0.1"\nbind = "127.0.0.1"\nport = {port}\n'
             f'max_waiting_per_ip = {PER_IP}\n')
    proc = XmppdProcess(tmp_path, extra=extra)
    proc.proxy_port = port
    yield from serve(proc, ())


def test_the_streamhost_address(server):
    async def scenario():
        alice = await login(server, "alice@localhost/laptop")
        iq = alice.make_iq_get(ito="proxy.localhost")
        ET.SubElement(iq.xml, f"{{{NS}}}query")
        answer = await iq.send(timeout=10)
        streamhost = answer.xml.find(f"{{{NS}}}query/{{{NS}}}streamhost")
        assert streamhost.attrib == {"jid": "proxy.localhost", "host": "127.0.0.1",
                                     "port": str(server.proxy_port)}
        await logout(alice)

    asyncio.run(scenario())


@pytest.fixture
def uncapped(tmp_path):
    port = free_port()
    extra = (f'[plugins]\nenabled = ["disco", "ping", "proxy65"]\n'
             f'[plugins.proxy65]\nhost = "127.0.0.1"\nbind = "127.0.0.1"\nport = {port}\n'
             f'max_rate = 0\n')
    proc = XmppdProcess(tmp_path, extra=extra)
    proc.proxy_port = port
    yield from serve(proc, ("alice",))


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def test_a_reader_that_does_not_read_stops_the_writer(uncapped):
    """Backpressure end to end: with the target not reading, the requester's writes stall
    once the sockets' buffers are full, and the proxy's memory does not grow with what the
    requester tries to send; then everything arrives, in order."""
    chunk = os.urandom(1 << 20)

    async def scenario():
        alice = await login(uncapped, "alice@localhost/laptop")
        address = digest("big", "alice@localhost/laptop", "alice@localhost/other")
        target_reader, target_writer = await socks5(uncapped.proxy_port, address)
        requester_reader, requester_writer = await socks5(uncapped.proxy_port, address)
        await activate(alice, "big", "alice@localhost/other")
        before = resident_kib(uncapped.process.pid)
        sent = hashlib.sha256()
        count = 0
        while count < 200:  # 200 MiB would be in the proxy's memory without backpressure
            requester_writer.write(chunk)
            sent.update(chunk)
            count += 1
            try:
                await asyncio.wait_for(requester_writer.drain(), 2)
            except TimeoutError:
                break
        assert count < 64, f"{count} MiB accepted with nobody reading"
        grown = resident_kib(uncapped.process.pid) - before
        assert grown < 32 * 1024, f"the proxy grew by {grown} KiB"

        received = hashlib.sha256()
        expected = count << 20
        total = 0
        while total < expected:
            data = await asyncio.wait_for(target_reader.read(1 << 20), 10)
            assert data, f"the stream ended after {total} of {expected} bytes"
            received.update(data)
            total += len(data)
        assert total == expected and received.digest() == sent.digest()
        requester_writer.close()
        assert await asyncio.wait_for(target_reader.read(), 10) == b""
        target_writer.close()
        await logout(alice)

    asyncio.run(scenario())
