"""The federation trust ladder: every level against every proof, allow/deny, per-domain levels,
and buddies-only's per-stanza check."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd.jid import parse_jid
from xmppd.s2s.policy import (
    DEFAULT_LEVEL,
    LEVELS,
    Decision,
    FederationPolicy,
    Proof,
    required_proof_text,
)
from xmppd.stanza import Stanza

OK, PV, NA = "ok", "policy-violation", "not-authorized"

# (tls, cert_valid, dialback, external) -> outcome at promiscuous, verified, secure, trusted,
# buddies-only. Written out by hand from the level definitions, not computed. buddies-only asks
# for the proof secure asks for; who is a buddy is decided per stanza (see ``admits`` below).
TABLE = [
    ((False, False, False, False), (OK, NA, PV, PV, PV)),
    ((False, False, False, True), (OK, NA, PV, PV, PV)),
    ((False, False, True, False), (OK, OK, PV, PV, PV)),
    ((False, False, True, True), (OK, OK, PV, PV, PV)),
    ((False, True, False, False), (OK, NA, PV, PV, PV)),  # a "valid cert" without TLS: no proof
    ((False, True, False, True), (OK, NA, PV, PV, PV)),
    ((False, True, True, False), (OK, OK, PV, PV, PV)),
    ((False, True, True, True), (OK, OK, PV, PV, PV)),
    ((True, False, False, False), (OK, NA, NA, NA, NA)),
    ((True, False, False, True), (OK, NA, NA, NA, NA)),  # EXTERNAL without a valid cert: none
    ((True, False, True, False), (OK, OK, OK, PV, OK)),  # dialback alone: not enough, trusted
    ((True, False, True, True), (OK, OK, OK, PV, OK)),
    ((True, True, False, False), (OK, OK, OK, OK, OK)),
    ((True, True, False, True), (OK, OK, OK, OK, OK)),
    ((True, True, True, False), (OK, OK, OK, OK, OK)),
    ((True, True, True, True), (OK, OK, OK, OK, OK)),
]
CASES = [(level, Proof(*flags), outcomes[i])
         for flags, outcomes in TABLE for i, level in enumerate(LEVELS)]


def outcome(decision: Decision) -> str:
    return OK if decision.ok else decision.condition


def test_levels_are_the_documented_ladder():
    assert LEVELS == ("promiscuous", "verified", "secure", "trusted", "buddies-only")
    assert DEFAULT_LEVEL == "secure"


def test_table_covers_every_proof_combination():
    assert len({flags for flags, _ in TABLE}) == 16
    assert len(CASES) == 80


@pytest.mark.parametrize("level, proof, expected", CASES,
                         ids=[f"{lvl}-{p.tls:d}{p.cert_valid:d}{p.dialback:d}{p.external:d}"
                              for lvl, p, _ in CASES])
def test_every_level_against_every_proof(level, proof, expected):
    decision = FederationPolicy(level).decide("example.org", proof)
    assert outcome(decision) == expected
    assert (decision.condition is None) == decision.ok


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("flags", [(tls, cert, ext) for tls in (False, True)
                                   for cert in (False, True) for ext in (False, True)])
def test_reaching_a_peer_through_dns_counts_exactly_where_dialback_does(level, flags):
    """On our outgoing streams the peer's proof is our having reached it through DNS: the
    assurance a dialback callback gives, so the same outcome at every level (and trusted
    still wants the certificate)."""
    tls, cert_valid, external = flags
    policy = FederationPolicy(level)
    reached = policy.decide("example.org", Proof(tls, cert_valid, external=external,
                                                 reached=True))
    dialback = policy.decide("example.org", Proof(tls, cert_valid, dialback=True,
                                                  external=external))
    assert (reached.ok, reached.condition) == (dialback.ok, dialback.condition)


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
    ("secure", Proof(tls=True, external=True, reached=True),
     "policy secure met: reached through DNS, TLS"),
    ("verified", Proof(reached=True), "policy verified met: reached through DNS, no TLS"),
    ("trusted", Proof(tls=True, cert_valid=True, external=True, reached=True),
     "policy trusted met: certificate (SASL EXTERNAL) + reached through DNS, TLS"),
])
def test_reasons_for_acceptance(level, proof, reason):
    assert FederationPolicy(level).decide("example.org", proof) == Decision(True, reason, None)


@pytest.mark.parametrize("level, text", [
    ("promiscuous", "nothing (the asserted identity is taken)"),
    ("verified", "dialback or a valid certificate"),
    ("secure", "TLS and (dialback or a valid certificate)"),
    ("trusted", "TLS and a valid certificate"),
    ("buddies-only", "TLS and (dialback or a valid certificate), and mutual server presence "
     "subscriptions"),
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
                                         r"promiscuous, verified, secure, trusted, buddies-only\)"):
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
    ("buddies-only", True, False, True),
])
def test_what_each_level_asks_of_the_stream(level, tls, certificate, dialback):
    policy = FederationPolicy("secure", {"peer.example": level})
    assert policy.needs_tls("Peer.Example") is tls
    assert policy.needs_certificate("peer.example") is certificate
    assert policy.can_offer_dialback("peer.example") is dialback


# --------------------------------------------------------------------------- buddies-only

PROOF = Proof(tls=True, dialback=True)


class Buddies:
    """Just the question the policy asks of IServerTrust (the real one is tested in
    test_server_trust, against this policy too)."""

    def __init__(self, *domains: str) -> None:
        self.domains = set(domains)
        self.asked: list[str] = []

    def is_trusted_buddy(self, domain: str) -> bool:
        self.asked.append(domain)
        return domain in self.domains


def stanza(xml_kind: str, type: str | None, sender: str, recipient: str) -> Stanza:
    element = domish.Element((None, xml_kind))
    if type is not None:
        element["type"] = type
    return Stanza(element, parse_jid(sender), parse_jid(recipient))


SERVER_SUBSCRIPTIONS = [stanza("presence", t, "peer.example", "example.org")
                        for t in ("subscribe", "subscribed", "unsubscribe", "unsubscribed",
                                  "error")]
OTHER_STANZAS = [
    stanza("message", "chat", "bob@peer.example/phone", "alice@example.org"),
    stanza("presence", None, "bob@peer.example/phone", "alice@example.org"),
    stanza("presence", "subscribe", "bob@peer.example", "alice@example.org"),  # a user's
    stanza("presence", "subscribe", "peer.example/x", "example.org"),  # not a bare domain
    stanza("presence", "subscribe", "peer.example", "alice@example.org"),
    stanza("presence", "probe", "peer.example", "example.org"),
    stanza("presence", None, "peer.example", "example.org"),
    stanza("iq", "set", "peer.example", "example.org"),
    stanza("message", "normal", "peer.example", "example.org"),
]


def test_buddies_only_takes_the_proof_secure_takes_from_buddies_and_strangers():
    policy = FederationPolicy("buddies-only", trust=Buddies("peer.example"))
    assert policy.decide("peer.example", PROOF) == Decision(
        True, "policy buddies-only met: dialback, TLS", None)
    assert policy.decide("stranger.example", PROOF) == Decision(
        True, "policy buddies-only met: dialback, TLS; not a trusted buddy: server "
        "subscription presence only", None)
    assert policy.decide("peer.example", Proof(dialback=True)).condition == "policy-violation"
    assert policy.decide("peer.example", Proof(tls=True)).condition == "not-authorized"


@pytest.mark.parametrize("item", OTHER_STANZAS, ids=repr)
def test_buddies_only_refuses_everything_but_server_subscriptions_from_strangers(item):
    trust = Buddies("buddy.example")
    policy = FederationPolicy("buddies-only", trust=trust)
    decision = policy.admits("Peer.Example", item)
    assert decision == Decision(False, "policy buddies-only: peer.example is not a trusted "
                                "buddy (XEP-0267 server presence subscriptions both ways)",
                                "not-allowed")
    assert trust.asked == ["Peer.Example"]


@pytest.mark.parametrize("item", SERVER_SUBSCRIPTIONS, ids=repr)
def test_buddies_only_lets_server_subscriptions_through_so_trust_can_be_made(item):
    for trust in (Buddies(), Buddies("peer.example"), None):
        assert FederationPolicy("buddies-only", trust=trust).admits("peer.example", item).ok


@pytest.mark.parametrize("item", OTHER_STANZAS, ids=repr)
def test_buddies_only_admits_everything_from_a_buddy(item):
    policy = FederationPolicy("buddies-only", trust=Buddies("peer.example"))
    assert policy.admits("peer.example", item) == Decision(
        True, "policy buddies-only: a trusted buddy", None)


def test_without_a_trust_service_nobody_is_a_buddy():
    policy = FederationPolicy("buddies-only")
    assert not policy.admits("peer.example", OTHER_STANZAS[0]).ok


def test_trust_changes_take_effect_on_the_next_stanza():
    trust = Buddies()
    policy = FederationPolicy("buddies-only", trust=trust)
    assert not policy.admits("peer.example", OTHER_STANZAS[0]).ok
    trust.domains.add("peer.example")
    assert policy.admits("peer.example", OTHER_STANZAS[0]).ok
    trust.domains.clear()
    assert not policy.admits("peer.example", OTHER_STANZAS[0]).ok


@pytest.mark.parametrize("level", ["promiscuous", "verified", "secure", "trusted"])
def test_other_levels_admit_every_stanza_without_asking(level):
    trust = Buddies()
    policy = FederationPolicy(level, trust=trust)
    for item in OTHER_STANZAS + SERVER_SUBSCRIPTIONS:
        assert policy.admits("peer.example", item) == Decision(True, f"policy {level}", None)
    assert trust.asked == []


def test_buddies_only_per_domain():
    policy = FederationPolicy("secure", {"lab.example": "buddies-only"}, trust=Buddies())
    assert policy.admits("peer.example", OTHER_STANZAS[0]).ok
    assert not policy.admits("lab.example", OTHER_STANZAS[0]).ok
    assert policy.level_for("lab.example") == "buddies-only"


def test_existing_calls_without_trust_keep_working():
    policy = FederationPolicy("secure", {"example.org": "trusted"}, None, ())
    assert policy.trust is None
    assert policy.decide("example.net", PROOF).ok
