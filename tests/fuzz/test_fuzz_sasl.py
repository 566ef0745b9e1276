"""Property tests of the SASL mechanisms through their public interface (ISASLMechanism from
xmppd.sasl.mechanisms.create_mechanism): whatever a client sends, in whatever order, every
answer is a Challenge or a SASLFailure, never another exception and never a Success without
the password. Structured cases follow SCRAM's grammar (RFC 5802) with one field broken."""

from __future__ import annotations

import base64
import functools

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend
from xmppd.sasl import Challenge, Success
from xmppd.sasl.credentials import HASHES, derive_credentials
from xmppd.sasl.mechanisms import MECHANISMS_PREFERENCE, create_mechanism

DOMAIN = "example.com"
PASSWORD = "pencil"


@implementer(IAuthBackend)
class Accounts:
    """alice@``domain`` with PASSWORD, answering at once."""

    def __init__(self, domain: str = DOMAIN) -> None:
        self.domain = domain

    @functools.cached_property
    def credentials(self) -> dict:
        return {name: derive_credentials(PASSWORD, name, iterations=4096) for name in HASHES}

    def scram_credentials(self, localpart, domain, hash_name):
        if (localpart, domain) == ("alice", self.domain):
            return defer.succeed(self.credentials[hash_name])
        return defer.succeed(None)

    def check_password(self, localpart, domain, password):
        return defer.succeed((localpart, domain, password) == ("alice", self.domain, PASSWORD))


ACCOUNTS = Accounts()


def mechanism(name: str):
    return create_mechanism(name, auth=ACCOUNTS, domain=DOMAIN,
                            channel_binding=lambda kind: b"\x01" * 32,
                            channel_binding_types=["tls-exporter", "tls-server-end-point"],
                            tls=True)


def outcome(d: defer.Deferred):
    """What the Deferred fired: a Challenge, a Success, or the SASLFailure; anything else
    (another exception, or no answer at all from a backend that answers at once) fails."""
    results: list = []
    d.addBoth(results.append)
    assert results, "the mechanism did not answer"
    result = results[0]
    if isinstance(result, Failure):
        assert result.check(SASLFailure), result.getTraceback()
        return result.value
    assert isinstance(result, Challenge | Success), result
    return result


def run(name: str, messages: list[bytes | None]) -> list:
    mech = mechanism(name)
    answers = [outcome(mech.start(messages[0]))]
    for message in messages[1:]:
        answers.append(outcome(mech.step(message)))
    return answers


@given(st.sampled_from(MECHANISMS_PREFERENCE),
       st.lists(st.one_of(st.none(), st.binary(max_size=200)), min_size=1, max_size=5))
def test_arbitrary_messages_end_in_a_failure_never_an_exception(name, messages):
    answers = run(name, messages)
    assert not any(isinstance(answer, Success) for answer in answers)


# --------------------------------------------------------------------------- SCRAM, almost right

SCRAM = [name for name in MECHANISMS_PREFERENCE if name.startswith("SCRAM")]
field = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=12)


@st.composite
def client_first(draw, name: str) -> bytes:
    """A valid client-first-message with at most one field broken."""
    plus = name.endswith("-PLUS")
    broken = draw(st.sampled_from([None, None, "gs2", "user", "nonce", "extra", "order"]))
    gs2, user, nonce, extra, order = ("p=tls-exporter,," if plus else "n,,"), "alice", "abc", \
        "", "n,r"
    if broken == "gs2":
        gs2 = draw(st.sampled_from(["p=tls-unique,,", "y,,", "n,,", "n,a=alice@example.com,",
                                    "n,a=bob@example.com,", "p=,", "x,,", "", ",,", "n,a=,",
                                    "p=tls-exporter,,"]))
    elif broken == "user":
        user = draw(st.sampled_from(["Alice", "bob", "", "al=2Cice", "al=3Dice", "=ZZ"]) | field)
    elif broken == "nonce":
        nonce = draw(st.sampled_from(["", "a,b"]) | field)
    elif broken == "extra":
        extra = draw(st.sampled_from([",m=ext", ",x=1", ",,"]) | field)
    elif broken == "order":
        order = draw(st.sampled_from(["r,n", "n", "r"]))
    parts = {"n": f"n={user}", "r": f"r={nonce}"}
    bare = ",".join(parts[key] for key in order.split(",")) + extra
    return (gs2 + bare).encode("utf-8", "surrogatepass")


@st.composite
def client_final(draw, server_first: bytes) -> bytes:
    fields = dict(part.split("=", 1) for part in server_first.decode().split(",") if "=" in part)
    nonce = fields.get("r", "")
    nonce = draw(st.sampled_from([nonce, nonce + "x", nonce[:-1], "", "zzz"]))
    binding = draw(st.sampled_from(["biws", "eSws", "cD10bHMtZXhwb3J0ZXIsLAEBAQ==", "", "!!",
                                    base64.b64encode(b"n,,").decode()]))
    proof = draw(st.sampled_from(["", "AAAA", "!!", base64.b64encode(bytes(32)).decode(),
                                  base64.b64encode(bytes(20)).decode()]) | field)
    extra = draw(st.sampled_from(["", ",x=1", ",p=AAAA"]))
    return f"c={binding},r={nonce}{extra},p={proof}".encode("utf-8", "surrogatepass")


@given(st.sampled_from(SCRAM), st.data())
def test_scram_with_one_field_wrong_fails_cleanly(name, data):
    mech = mechanism(name)
    first = outcome(mech.start(data.draw(client_first(name))))
    if not isinstance(first, Challenge):
        assert isinstance(first, SASLFailure)
        return
    final = outcome(mech.step(data.draw(client_final(first.data))))
    assert isinstance(final, SASLFailure), final  # no proof of the password: never success
    after = outcome(mech.step(b"c=biws"))  # the exchange is over: nothing more is taken
    assert isinstance(after, SASLFailure)


@given(st.binary(max_size=100), st.binary(max_size=100), st.binary(max_size=100))
def test_plain_with_arbitrary_fields(authzid, authcid, password):
    answers = run("PLAIN", [b"\0".join((authzid, authcid, password))])
    assert not any(isinstance(answer, Success) for answer in answers)


def test_the_harness_can_see_a_success():
    """The properties above are only worth something if a right answer does succeed here."""
    (answer,) = run("PLAIN", [b"\0alice\0" + PASSWORD.encode()])
    assert isinstance(answer, Success)


@given(st.sampled_from(SCRAM), st.data())
def test_scram_first_messages_are_mostly_understood(name, data):
    """The structured strategy reaches the second step (else the test above proves little)."""
    first = outcome(mechanism(name).start(data.draw(client_first(name))))
    REACHED.append(isinstance(first, Challenge))


REACHED: list[bool] = []


def test_zz_the_structured_cases_reached_the_final_step():
    if REACHED:
        assert sum(REACHED) >= len(REACHED) // 4, (sum(REACHED), len(REACHED))
