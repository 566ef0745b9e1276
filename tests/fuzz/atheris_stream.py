"""Coverage-guided fuzz target (atheris, libFuzzer) for what a stranger reaches first: the
stream parser (xmppd.xml.parser) under a header, JID preparation (xmppd.jid) and the SASL
mechanisms (xmppd.sasl). Any exception other than the one each promises is a crash.

Run by tests/fuzz/test_atheris.py for a bounded time (XMPPD_ATHERIS_SECONDS, 30 by default);
by hand, for longer, with a corpus directory that keeps what it learnt:

    .venv/bin/python tests/fuzz/atheris_stream.py -max_total_time=600 \
        -dict=tests/fuzz/xmpp.dict var/fuzz-corpus
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.fuzz.streams

with atheris.instrument_imports(include=["xmppd"]):
    from twisted.internet import defer
    from twisted.python.failure import Failure

    from tests.fuzz.streams import client_stream
    from tests.fuzz.test_fuzz_sasl import PASSWORD, Accounts
    from xmppd.errors import STREAM_ERROR_CONDITIONS, SASLFailure, StreamError
    from xmppd.jid import InvalidJID, parse_jid
    from xmppd.sasl.mechanisms import MECHANISMS_PREFERENCE, create_mechanism
    from xmppd.xml import StreamParser

HEADER = (b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


class _NoAccounts:
    """An IAuthBackend that knows nobody (enough for failures to be exercised)."""

    def scram_credentials(self, localpart, domain, hash_name):
        return defer.succeed(None)

    def check_password(self, localpart, domain, password):
        return defer.succeed(False)


def _parse(provider: atheris.FuzzedDataProvider) -> None:
    parser = StreamParser(lambda header: None, lambda element: element.toXml(), lambda: None,
                          max_stanza_size=2048, max_depth=16)
    chunks = [HEADER] if provider.ConsumeBool() else []
    while provider.remaining_bytes():
        chunks.append(provider.ConsumeBytes(provider.ConsumeIntInRange(1, 256)))
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except StreamError as error:
            if error.condition not in STREAM_ERROR_CONDITIONS:
                raise AssertionError(f"not an RFC 6120 condition: {error.condition}") from None
            return


def _jid(provider: atheris.FuzzedDataProvider) -> None:
    text = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 80))
    try:
        jid = parse_jid(text)
    except InvalidJID:
        return
    if parse_jid(jid.full()) != jid:
        raise AssertionError(f"preparation is not idempotent: {text!r} -> {jid.full()!r}")


def _sasl(provider: atheris.FuzzedDataProvider) -> None:
    name = MECHANISMS_PREFERENCE[provider.ConsumeIntInRange(0, len(MECHANISMS_PREFERENCE) - 1)]
    mechanism = create_mechanism(name, auth=_NoAccounts(), domain="localhost",
                                 channel_binding=lambda kind: b"\x01" * 32,
                                 channel_binding_types=["tls-exporter"], tls=True)
    step = mechanism.start
    while provider.remaining_bytes():
        outcome: list = []
        step(provider.ConsumeBytes(provider.ConsumeIntInRange(0, 200))).addBoth(outcome.append)
        if not outcome:
            raise AssertionError("the mechanism did not answer")
        if isinstance(outcome[0], Failure):
            if not outcome[0].check(SASLFailure):
                outcome[0].raiseException()
            return
        step = mechanism.step


_LOCAL = Accounts("localhost")
_LOGIN = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
          + base64.b64encode(b"\0alice\0" + PASSWORD.encode()) + b"</auth>")


def _stream(provider: atheris.FuzzedDataProvider) -> None:
    """A whole client stream (counted as encrypted): header, maybe a login and a restart,
    then the fuzzer's bytes; it must never fail inside (internal-server-error)."""
    stream, transport = client_stream(True, _LOCAL)
    stream.dataReceived(HEADER)
    if provider.ConsumeBool():
        stream.dataReceived(_LOGIN)
        stream.dataReceived(HEADER)
    while provider.remaining_bytes() and not transport.disconnecting:
        stream.dataReceived(provider.ConsumeBytes(provider.ConsumeIntInRange(1, 200)))
    if b"internal-server-error" in transport.value():
        raise AssertionError(transport.value()[-2000:])


TARGETS = (_parse, _parse, _jid, _sasl, _stream)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    TARGETS[provider.ConsumeIntInRange(0, len(TARGETS) - 1)](provider)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
