"""A minimal TURN client (RFC 5389 STUN messages, RFC 5766 Allocate over UDP) for tests: an
Allocate without credentials gets 401 with the realm and nonce, then an Allocate with the
long-term credential's MESSAGE-INTEGRITY succeeds, or not."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
ALLOCATE_REQUEST = 0x0003
ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
REALM = 0x0014
NONCE = 0x0015
REQUESTED_TRANSPORT = 0x0019
XOR_RELAYED_ADDRESS = 0x0016
UDP = 17


@dataclass
class Response:
    type: int
    attributes: dict[int, bytes]

    @property
    def error_code(self) -> int | None:
        value = self.attributes.get(ERROR_CODE)
        return None if value is None else value[2] * 100 + value[3]

    @property
    def relayed_port(self) -> int | None:
        value = self.attributes.get(XOR_RELAYED_ADDRESS)
        return None if value is None else struct.unpack("!H", value[2:4])[0] ^ (MAGIC_COOKIE >> 16)


def attribute(kind: int, value: bytes) -> bytes:
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def message(kind: int, transaction: bytes, attributes: bytes) -> bytes:
    return struct.pack("!HHI", kind, len(attributes), MAGIC_COOKIE) + transaction + attributes


def with_integrity(kind: int, transaction: bytes, attributes: bytes, key: bytes) -> bytes:
    """RFC 5389 §15.4: the HMAC covers the message up to the attribute, with a length that
    already counts the attribute's 24 bytes."""
    head = message(kind, transaction, attributes)
    head = head[:2] + struct.pack("!H", len(attributes) + 24) + head[4:]
    digest = hmac.new(key, head, hashlib.sha1).digest()
    return message(kind, transaction, attributes + attribute(MESSAGE_INTEGRITY, digest))


def parse(data: bytes, transaction: bytes) -> Response:
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    assert cookie == MAGIC_COOKIE and data[8:20] == transaction, "not our answer"
    attributes: dict[int, bytes] = {}
    position = 20
    while position < 20 + length:
        name, size = struct.unpack("!HH", data[position:position + 4])
        attributes.setdefault(name, data[position + 4:position + 4 + size])
        position += 4 + size + (-size % 4)
    return Response(kind, attributes)


def exchange(sock: socket.socket, packet: bytes, transaction: bytes) -> Response:
    sock.send(packet)
    return parse(sock.recv(2048), transaction)


def allocate(host: str, port: int, username: str, password: str,
             timeout: float = 5.0) -> tuple[Response, Response]:
    """The two Allocate exchanges: (the challenge, the authenticated answer)."""
    transport = attribute(REQUESTED_TRANSPORT, bytes((UDP, 0, 0, 0)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        first = os.urandom(12)
        challenge = exchange(sock, message(ALLOCATE_REQUEST, first, transport), first)
        realm, nonce = challenge.attributes.get(REALM), challenge.attributes.get(NONCE)
        if challenge.error_code != 401 or realm is None or nonce is None:
            return challenge, challenge
        key = hashlib.md5(username.encode() + b":" + realm + b":" + password.encode()).digest()
        second = os.urandom(12)
        attributes = (attribute(USERNAME, username.encode()) + attribute(REALM, realm)
                      + attribute(NONCE, nonce) + transport)
        answer = exchange(sock, with_integrity(ALLOCATE_REQUEST, second, attributes, key),
                          second)
        return challenge, answer
