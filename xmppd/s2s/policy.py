"""How much proof each peer domain must give before we accept its stanzas: the trust ladder.

Levels, weakest first (``[s2s] default_policy`` and ``[s2s.policy]`` per domain):

- promiscuous: the asserted identity is accepted, no proof (isolated test networks only);
- verified: dialback or a valid certificate;
- secure: TLS, and dialback or a valid certificate (the default);
- trusted: TLS and a valid certificate; dialback alone is not enough;
- buddies-only: what secure asks, and the peer must be a trusted buddy: our server and the peer
  are subscribed to each other's server presence (XEP-0267, mutual 'both' in the server roster,
  asked of the IServerTrust given to the policy). A peer that is not (yet) a buddy may still
  authenticate, but the only stanzas ``admits`` lets through, either way, are the server
  subscription presences of XEP-0267 between the two bare domains (and presence errors
  bouncing them): without them two admins could never make their servers buddies. Everything
  else is refused per stanza with ``not-allowed``, so trust given or revoked takes effect on
  the next stanza, with no need to close links. Without an IServerTrust nobody is a buddy.

"Valid certificate" means CertCheck.valid: chains to our CA store *and* names the domain. It
counts only on a TLS stream (a certificate cannot be presented otherwise). ``external`` (SASL
EXTERNAL succeeded, XEP-0178) is recorded for logs and the admin listing but proves nothing by
itself: EXTERNAL is only accepted on a valid certificate, so ``cert_valid`` carries the proof.

"Dialback" is the proof of a peer that connected to us: we called its domain's authoritative
server, found through DNS, and it vouched for the key (XEP-0220). A peer we connected to is
proven the same way by the connection itself: ``reached`` says we dialled the address DNS
(or ``[s2s.hosts]``) gives for its domain, which is all a dialback callback shows (XEP-0220
§Security), so it counts wherever dialback does. It does not depend on how *we* then
authenticated to the peer: SASL EXTERNAL with our certificate, or our dialback key, proves us
to the peer and nothing about the peer. ``trusted`` still needs the peer's valid certificate.

Refusals use these RFC 6120 §4.9.3 stream errors:

- ``policy-violation`` when the domain is denied (deny list, not on the allow list, or
  blocked: IDomainBlocklist, the domain_block plugin's admin and buddy lists), when
  TLS is required but absent, and when the level needs a certificate that is missing or
  invalid although the peer did authenticate (e.g. dialback alone at trusted);
- ``not-authorized`` when the peer gave no proof of identity at all.

A new level is one more Requirement in REQUIREMENTS, plus whatever predicate it needs in
``decide`` (per stream) or ``admits`` (per stanza).

The s2s streams ask ``decide`` when a peer authenticates, and ``admits`` for every stanza:
incoming, before routing it (peer = the sender's domain), and outgoing, before sending it
(peer = the recipient's domain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from xmppd.interfaces import IDomainBlocklist, IServerTrust
from xmppd.jid import prepare_domain
from xmppd.stanza import Stanza
from xmppd.trust.server_roster import is_server_subscription

DEFAULT_LEVEL = "secure"
POLICY_VIOLATION = "policy-violation"
NOT_AUTHORIZED = "not-authorized"
NOT_ALLOWED = "not-allowed"  # the stanza error for a stanza ``admits`` refuses


@dataclass(frozen=True)
class Requirement:
    """What one level asks of a peer."""

    tls: bool  # the stream must be encrypted
    authentication: bool  # some proof of identity: dialback (or, for a peer we connected
    # to, having reached it through DNS) or a valid certificate
    certificate: bool  # the proof must be a valid certificate
    text: str  # for log lines
    buddies: bool = False  # only trusted buddies (XEP-0267) may exchange stanzas beyond
    # the server subscription presences


REQUIREMENTS: dict[str, Requirement] = {
    "promiscuous": Requirement(False, False, False, "nothing (the asserted identity is taken)"),
    "verified": Requirement(False, True, False, "dialback or a valid certificate"),
    "secure": Requirement(True, True, False, "TLS and (dialback or a valid certificate)"),
    "trusted": Requirement(True, True, True, "TLS and a valid certificate"),
    "buddies-only": Requirement(True, True, False, "TLS and (dialback or a valid certificate), "
                                "and mutual server presence subscriptions", buddies=True),
}
LEVELS = tuple(REQUIREMENTS)


@dataclass(frozen=True)
class Proof:
    """What a peer has shown on one stream, for one domain."""

    tls: bool = False
    cert_valid: bool = False  # chain and name ok against our CA store
    dialback: bool = False  # dialback verified for this domain pair (a peer that connected)
    external: bool = False  # SASL EXTERNAL succeeded
    reached: bool = False  # we connected to the domain's server as DNS (or [s2s.hosts])
    # gives it: on our outgoing streams, the assurance dialback gives on incoming ones

    @property
    def certificate(self) -> bool:
        """A valid certificate, which only exists on a TLS stream."""
        return self.tls and self.cert_valid

    @property
    def authenticated(self) -> bool:
        return self.certificate or self.dialback or self.reached

    def describe(self) -> str:
        """How the peer proved itself, e.g. 'certificate (SASL EXTERNAL), TLS'."""
        methods = []
        if self.certificate:
            methods.append("certificate (SASL EXTERNAL)" if self.external else "certificate")
        if self.dialback:
            methods.append("dialback")
        if self.reached:
            methods.append("reached through DNS")
        return f"{' + '.join(methods) or 'no proof'}, {'TLS' if self.tls else 'no TLS'}"


@dataclass(frozen=True)
class Decision:
    """Accept or refuse; ``condition`` is the error to answer with when refused: a stream
    error from ``decide``, a stanza error from ``admits``."""

    ok: bool
    reason: str
    condition: str | None = None


def required_proof_text(level: str) -> str:
    """What ``level`` asks for, in words for log lines."""
    return _requirement(level).text


class ProvidedTrust:
    """The one question the policy asks, of whichever plugin provides IServerTrust now
    (``query`` is ``server.query``): the policy is made before plugins load, and the
    server_trust plugin may be reloaded, so nothing is wired to it. Without a provider
    nobody is a trusted buddy (start-up refuses buddies-only without one)."""

    def __init__(self, query: Callable) -> None:
        self.query = query
        self._query = query

    def is_trusted_buddy(self, domain: str) -> bool:
        trust = self._query(IServerTrust)
        return trust is not None and bool(trust.is_trusted_buddy(domain))


class ProvidedBlocklist:
    """The admin's domain blocklist, asked of whichever plugin provides IDomainBlocklist now
    (the domain_block plugin, which may be reloaded or absent: then nothing is blocked)."""

    def __init__(self, query: Callable) -> None:
        self._query = query

    def blocked(self, domain: str) -> str | None:
        blocklist = self._query(IDomainBlocklist)
        return None if blocklist is None else blocklist.blocked(domain)


class FederationPolicy:
    """The configured ladder: a default level, per-domain levels, and allow/deny lists.

    Domains are compared in their prepared form (RFC 7622: lower case, U-labels, no trailing
    dot), so "Example.ORG." in the config and "example.org" on the wire are the same peer.
    A per-domain level applies to that exact domain, not to its subdomains. Invalid domains
    raise xmppd.jid.InvalidJID (a ValueError) naming the problem.
    """

    def __init__(self, default: str, per_domain: Mapping[str, str] | None = None,
                 allow: Iterable[str] | None = None, deny: Iterable[str] = (),
                 trust: IServerTrust | None = None) -> None:
        _requirement(default)
        self.default = default
        self._levels: dict[str, str] = {}
        for domain, level in (per_domain or {}).items():
            _requirement(level, where=f"policy for {domain!r}")
            self._levels[prepare_domain(domain)] = level
        self._allow = None if allow is None else frozenset(map(prepare_domain, allow))
        self._deny = frozenset(map(prepare_domain, deny))
        # Asked only at buddies-only; anything with is_trusted_buddy(domain) will do, e.g.
        # ProvidedTrust(server.query) for a policy made before plugins load.
        self.trust = trust
        # The blocklist (xmppd.plugins.domain_block) comes through the same server look-up
        # as the trust, so a policy remade from the config (reload) keeps it.
        self.blocklist = (ProvidedBlocklist(trust.query) if isinstance(trust, ProvidedTrust)
                          else None)

    def level_for(self, domain: str) -> str:
        return self._levels.get(prepare_domain(domain), self.default)

    def allowed(self, domain: str) -> bool:
        """The deny list wins; with an allow list, only the domains on it."""
        return self.refusal(domain) is None

    def refusal(self, domain: str) -> str | None:
        """Why ``domain`` may not federate at all (deny list, allow list, blocklist), for
        the log; None when it may."""
        return self._refusal(prepare_domain(domain))

    def needs_tls(self, domain: str) -> bool:
        return REQUIREMENTS[self.level_for(domain)].tls

    def needs_certificate(self, domain: str) -> bool:
        return REQUIREMENTS[self.level_for(domain)].certificate

    def can_offer_dialback(self, domain: str) -> bool:
        """Dialback is pointless where it cannot satisfy the level (trusted)."""
        return not self.needs_certificate(domain)

    def decide(self, domain: str, proof: Proof) -> Decision:
        """Whether ``proof`` is enough for ``domain``; checks in the order a reader expects:
        is the domain welcome at all, is TLS there, did it prove anything, was it enough."""
        domain = prepare_domain(domain)
        refusal = self._refusal(domain)
        if refusal:
            return Decision(False, refusal, POLICY_VIOLATION)
        level = self.level_for(domain)
        need = REQUIREMENTS[level]
        if need.tls and not proof.tls:
            return Decision(False, f"TLS required (policy {level})", POLICY_VIOLATION)
        if need.authentication and not proof.authenticated:
            return Decision(False, f"not authenticated (policy {level} needs {need.text})",
                            NOT_AUTHORIZED)
        if need.certificate and not proof.certificate:
            return Decision(False, f"valid certificate required (policy {level}; dialback "
                            "alone is not enough)", POLICY_VIOLATION)
        if need.buddies and not self._is_buddy(domain):
            return Decision(True, f"policy {level} met: {proof.describe()}; not a trusted "
                            "buddy: server subscription presence only")
        return Decision(True, f"policy {level} met: {proof.describe()}")

    def admits(self, domain: str, stanza: Stanza) -> Decision:
        """Whether ``stanza``, exchanged with the authenticated peer ``domain`` in either
        direction, may pass; refused, with the stanza error ``not-allowed``, at buddies-only
        and for a domain blocked since its link came up. Error replies always pass at
        buddies-only, so refusals reach the refused; nothing passes a block."""
        blocked = self._blocked(domain)  # a JID's host: prepared already
        if blocked:
            return Decision(False, blocked, NOT_ALLOWED)
        level = self.level_for(domain)
        if not REQUIREMENTS[level].buddies or is_server_subscription(stanza):
            return Decision(True, f"policy {level}")
        if stanza.type == "error":  # an answer to what the peer sent: it may always have it
            return Decision(True, f"policy {level}: an error reply")
        if self._is_buddy(domain):
            return Decision(True, f"policy {level}: a trusted buddy")
        return Decision(False, f"policy {level}: {prepare_domain(domain)} is not a trusted "
                        "buddy (XEP-0267 server presence subscriptions both ways)", NOT_ALLOWED)

    def _is_buddy(self, domain: str) -> bool:
        return self.trust is not None and bool(self.trust.is_trusted_buddy(domain))

    def _blocked(self, domain: str) -> str | None:
        return None if self.blocklist is None else self.blocklist.blocked(domain)

    def _refusal(self, domain: str) -> str | None:
        if domain in self._deny:
            return f"{domain} is on the deny list"
        blocked = self._blocked(domain)
        if blocked:
            return blocked
        if self._allow is not None and domain not in self._allow:
            return f"{domain} is not on the allow list"
        return None


def _requirement(level: str, where: str = "federation policy") -> Requirement:
    try:
        return REQUIREMENTS[level]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: unknown level {level!r} (one of {', '.join(LEVELS)})")
