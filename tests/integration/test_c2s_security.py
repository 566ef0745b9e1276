"""Negotiation rules over real sockets and real TLS: STARTTLS hygiene, channel binding, limits."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.scramclient import ScramClient

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def starttls(server, client: RawClient, openssl: bool = False):
    client.header()
    client.read_until(b"</stream:features>")
    client.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    client.read_until(b"<proceed")
    if openssl:
        return client.starttls_openssl(str(server.cert))
    client.starttls(str(server.cert))
    return client.sock


def scram_login(client: RawClient, mechanism: str, scram: ScramClient) -> bytes:
    """Run SCRAM over the raw stream; returns what the server said last."""
    client.header()
    client.read_until(b"</stream:features>")
    client.received = b""
    first = base64.b64encode(scram.first()).decode()
    client.send(f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{first}</auth>")
    answer = client.read_until(b"</challenge>")
    challenge = re.search(rb"<challenge[^>]*>([^<]*)</challenge>", answer).group(1)
    final = base64.b64encode(scram.final(base64.b64decode(challenge))).decode()
    client.received = b""
    client.send(f"<response xmlns='{SASL}'>{final}</response>")
    return client.read_until_any(b"</success>", b"</failure>")


def test_bytes_pipelined_after_starttls_are_discarded(server):
    client = RawClient(server.c2s_port)
    client.header()
    client.read_until(b"</stream:features>")
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    client.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>")
    client.read_until(b"<proceed")
    client.starttls(str(server.cert))
    client.header()
    features = client.read_until(b"</stream:features>")
    assert b"<mechanisms" in features  # still unauthenticated: the injected <auth/> was dropped
    assert b"<success" not in features
    client.close()


@pytest.mark.parametrize("binding", ["tls-server-end-point", "tls-exporter"])
def test_scram_sha256_plus_with_channel_binding(server, binding):
    client = RawClient(server.c2s_port)
    tls = starttls(server, client, openssl=binding == "tls-exporter")
    if binding == "tls-exporter":
        cb_data = tls.export_keying_material(b"EXPORTER-Channel-Binding", 32)
    else:
        cb_data = hashlib.sha256(tls.getpeercert(binary_form=True)).digest()
    scram = ScramClient("sha-256", "alice", PASSWORD, gs2_header=f"p={binding},,",
                        cb_data=cb_data)
    outcome = scram_login(client, "SCRAM-SHA-256-PLUS", scram)
    assert b"<success" in outcome, outcome
    assert base64.b64encode(scram.expected_success_data()) in outcome
    client.close()
    assert "authenticated with SCRAM-SHA-256-PLUS" in server.log()


def test_scram_plus_with_wrong_binding_data_fails(server):
    client = RawClient(server.c2s_port)
    starttls(server, client)
    scram = ScramClient("sha-256", "alice", PASSWORD, gs2_header="p=tls-server-end-point,,",
                        cb_data=b"\0" * 32)  # what a man in the middle's certificate would give
    outcome = scram_login(client, "SCRAM-SHA-256-PLUS", scram)
    assert b"<not-authorized" in outcome
    client.close()


def test_channel_binding_types_are_advertised(server):
    client = RawClient(server.c2s_port)
    starttls(server, client)
    client.header()
    features = client.read_until(b"</stream:features>").decode()
    assert "SCRAM-SHA-256-PLUS" in features
    assert "urn:xmpp:sasl-cb:0" in features and "tls-server-end-point" in features
    client.close()


def test_oversized_stanza_is_a_policy_violation(server):
    client = RawClient(server.c2s_port)
    client.header()
    client.read_until(b"</stream:features>")
    client.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                + b"A" * 400_000 + b"</auth>")
    data = client.read_until_closed(timeout=10)
    assert b"<policy-violation" in data


def test_idle_unauthenticated_stream_is_closed(tmp_path):
    proc = XmppdProcess(tmp_path, auth_timeout=1.0)
    proc.start()
    try:
        client = RawClient(proc.c2s_port)
        client.header()
        data = client.read_until_closed(timeout=10)
        assert b"<connection-timeout" in data
        assert data.endswith(b"</stream:stream>")
    finally:
        assert proc.stop() == 0


def test_direct_tls_needs_no_starttls(server):
    context = ssl.create_default_context(cafile=str(server.cert))
    client = RawClient(server.direct_tls_port)
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    client.header()
    features = client.read_until(b"</stream:features>").decode()
    assert "starttls" not in features
    assert "<mechanism>PLAIN</mechanism>" in features
    client.close()
