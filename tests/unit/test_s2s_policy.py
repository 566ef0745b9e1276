"""The federation trust ladder: every level against every proof, allow/deny, per-domain levels."""

from __future__ import annotations

import pytest

from xmppd.s2s.policy import (
    DEFAULT_LEVEL,
    LEVELS,
    Decision,
    FederationPolicy,
    Proof,
    required_proof_text,
)

OK, PV, NA = "ok", "policy-violation", "not-authorized"

# (tls, cert_valid, dialback, external) -> outcome at promiscuous, verified, secure, trusted.
# Written out by hand from the level definitions, not computed.
TABLE = [
    ((False, False, False, False), (OK, NA, PV, PV)),
    ((False, False, False, True), (OK, NA, PV, PV)),
    ((False, False, True, False), (OK, OK, PV, PV)),
    ((False, False, True, True), (OK, OK, PV, PV)),
    ((False, True, False, False), (OK, NA, PV, PV)),  # a "valid cert" without TLS is no proof
    ((False, True, False, True), (OK, NA, PV, PV)),
    ((False, True, True, False), (OK, OK, PV, PV)),
    ((False, True, True, True), (OK, OK, PV, PV)),
    ((True, False, False, False), (OK, NA, NA, NA)),
    ((True, False, False, True), (OK, NA, NA, NA)),  # EXTERNAL without a valid cert: nothing
    ((True, False, True, False), (OK, OK, OK, PV)),  # dialback alone is not enough for trusted
    ((True, False, True, True), (OK, OK, OK, PV)),
    ((True, True, False, False), (OK, OK, OK, OK)),
    ((True, True, False, True), (OK, OK, OK, OK)),
    ((True, True, True, False), (OK, OK, OK, OK)),
    ((True, True, True, True), (OK, OK, OK, OK)),
]
CASES = [(level, Proof(*flags), outcomes[i])
         for flags, outcomes in TABLE for i, level in enumerate(LEVELS)]


def outcome(decision: Decision) -> str:
    return OK if decision.ok else decision.condition


def test_levels_are_the_documented_ladder():
    assert LEVELS == ("promiscuous", "verified", "secure", "trusted")
    assert DEFAULT_LEVEL == "secure"


def test_table_covers_every_proof_combination():
    assert len({flags for flags, _ in TABLE}) == 16
    assert len(CASES) == 64


@pytest.mark.parametrize("level, proof, expected", CASES,
                         ids=[f"{lvl}-{p.tls:d}{p.cert_valid:d}{p.dialback:d}{p.external:d}"
                              for lvl, p, _ in CASES])
def test_every_level_against_every_proof(level, proof, expected):
    decision = FederationPolicy(level).decide("example.org", proof)
    assert outcome(decision) == expected
    assert (decision.condition is None) == decision.ok


# --------------------------------------------------------------------------- reasons


def test_reason_for_missing_tls():
    assert FederationPolicy("secure").decide("example.org", Proof(dialback=True)) == \
        Decision(False, "TLS required (policy secure)", "policy-violation")


def test_reason_for_no_proof():
    assert FederationPolicy("verified").decide("example.org", Proof(tls=True)) == Decision(
        False, "not authenticated (policy verified needs dialback or a valid certificate)",
        "not-authorized")


def test_reason_for_dialback_at_trusted():
    assert FederationPolicy("trusted").decide("example.org", Proof(tls=True, dialback=True)) \
        == Decision(False, "valid certificate required (policy trusted; dialback alone is not "
                    "enough)", "policy-violation")


@pytest.mark.parametrize("level, proof, reason", [
    ("promiscuous", Proof(), "policy promiscuous met: no proof, no TLS"),
    ("verified", Proof(dialback=True), "policy verified met: dialback, no TLS"),
    ("secure", Proof(tls=True, dialback=True), "policy secure met: dialback, TLS"),
    ("trusted", Proof(tls=True, cert_valid=True), "policy trusted met: certificate, TLS"),
    ("trusted", Proof(tls=True, cert_valid=True, external=True),
     "policy trusted met: certificate (SASL EXTERNAL), TLS"),
    ("secure", Proof(tls=True, cert_valid=True, dialback=True),
     "policy secure met: certificate + dialback, TLS"),
])
def test_reasons_for_acceptance(level, proof, reason):
    assert FederationPolicy(level).decide("example.org", proof) == Decision(True, reason, None)


@pytest.mark.parametrize("level, text", [
    ("promiscuous", "nothing (the asserted identity is taken)"),
    ("verified", "dialback or a valid certificate"),
    ("secure", "TLS and (dialback or a valid certificate)"),
    ("trusted", "TLS and a valid certificate"),
])
def test_required_proof_text(level, text):
    assert required_proof_text(level) == text


def test_required_proof_text_of_an_unknown_level():
    with pytest.raises(ValueError, match="unknown level 'paranoid'"):
        required_proof_text("paranoid")


# --------------------------------------------------------------------------- per-domain


def test_per_domain_levels_override_the_default():
    policy = FederationPolicy("secure", {"example.org": "trusted", "lab.example": "promiscuous"})
    assert policy.level_for("example.org") == "trusted"
    assert policy.level_for("lab.example") == "promiscuous"
    assert policy.level_for("example.net") == "secure"
    dialback_over_tls = Proof(tls=True, dialback=True)
    assert not policy.decide("example.org", dialback_over_tls).ok
    assert policy.decide("example.net", dialback_over_tls).ok
    assert policy.decide("lab.example", Proof()).ok


def test_per_domain_level_does_not_extend_to_subdomains():
    policy = FederationPolicy("secure", {"example.org": "trusted"})
    assert policy.level_for("conference.example.org") == "secure"


@pytest.mark.parametrize("asked", ["Example.ORG", "example.org.", "EXAMPLE.ORG."])
def test_domains_are_compared_prepared(asked):
    policy = FederationPolicy("secure", {"example.org": "trusted"}, deny={"Bad.Example."})
    assert policy.level_for(asked) == "trusted"
    assert not policy.allowed("bad.example")
    assert not policy.allowed("BAD.example")


def test_config_keys_are_prepared_too():
    policy = FederationPolicy("secure", {"Example.ORG.": "verified"})
    assert policy.level_for("example.org") == "verified"


def test_idn_domain_as_a_label_or_u_label():
    policy = FederationPolicy("secure", {"xn--bcher-kva.example": "trusted"})
    assert policy.level_for("bücher.example") == "trusted"
    assert policy.level_for("BÜCHER.example") == "trusted"


def test_unknown_default_level_is_refused():
    with pytest.raises(ValueError, match=r"federation policy: unknown level 'strict' \(one of "
                                         r"promiscuous, verified, secure, trusted\)"):
        FederationPolicy("strict")


def test_unknown_per_domain_level_names_the_domain():
    with pytest.raises(ValueError, match="policy for 'example.org': unknown level 'Trusted'"):
        FederationPolicy("secure", {"example.org": "Trusted"})


def test_invalid_domain_in_config_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid domainpart"):
        FederationPolicy("secure", {"bad domain": "trusted"})


def test_invalid_domain_asked_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid domainpart"):
        FederationPolicy("secure").decide("bad domain", Proof(tls=True, dialback=True))


# --------------------------------------------------------------------------- allow / deny


def test_everyone_is_allowed_without_lists():
    assert FederationPolicy("secure").allowed("example.org")


def test_deny_list():
    policy = FederationPolicy("promiscuous", deny=["spam.example"])
    assert not policy.allowed("spam.example")
    assert policy.allowed("example.org")
    assert policy.decide("spam.example", Proof(tls=True, cert_valid=True, dialback=True)) == \
        Decision(False, "spam.example is on the deny list", "policy-violation")


def test_allow_list_admits_only_its_domains():
    policy = FederationPolicy("secure", allow={"example.org", "example.net"})
    assert policy.allowed("example.org")
    assert not policy.allowed("example.com")
    assert policy.decide("example.com", Proof(tls=True, cert_valid=True)) == \
        Decision(False, "example.com is not on the allow list", "policy-violation")
    assert policy.decide("example.org", Proof(tls=True, cert_valid=True)).ok


def test_deny_wins_over_allow():
    policy = FederationPolicy("secure", allow={"example.org"}, deny={"example.org"})
    assert not policy.allowed("example.org")
    assert policy.decide("example.org", Proof(tls=True, cert_valid=True)).reason == \
        "example.org is on the deny list"


def test_empty_allow_list_admits_nobody():
    assert not FederationPolicy("secure", allow=[]).allowed("example.org")


# --------------------------------------------------------------------------- stream set-up


@pytest.mark.parametrize("level, tls, certificate, dialback", [
    ("promiscuous", False, False, True),
    ("verified", False, False, True),
    ("secure", True, False, True),
    ("trusted", True, True, False),
])
def test_what_each_level_asks_of_the_stream(level, tls, certificate, dialback):
    policy = FederationPolicy("secure", {"peer.example": level})
    assert policy.needs_tls("Peer.Example") is tls
    assert policy.needs_certificate("peer.example") is certificate
    assert policy.can_offer_dialback("peer.example") is dialback
