"""Server-to-server streams (RFC 6120, XEP-0220, XEP-0178): one incoming, one outgoing kind.

An incoming stream authenticates the peer's domains (SASL EXTERNAL with a certificate, or
dialback, or both) and only then routes the stanzas that come from those domains to ours.
An outgoing stream authenticates us to the peer and then carries our stanzas. What is
enough proof is the federation policy's decision, per peer domain; every refusal is logged
with its reason.
"""

from __future__ import annotations

import base64
import binascii

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError, StreamError
from xmppd.jid import domain_or_none
from xmppd.logs import get_logger
from xmppd.s2s import dialback
from xmppd.s2s.certs import chain_from_pyopenssl, check_certificate
from xmppd.s2s.policy import Proof
from xmppd.stanza import Stanza, check_type, parse_address
from xmppd.stream.tls import tls_connection
from xmppd.stream.xmlstream import XmlStream
from xmppd.xml import StreamHeader

log = get_logger(__name__)

STANZAS = frozenset(("iq", "message", "presence"))


class ServerStream(XmlStream):
    content_ns = ns.SERVER
    prefixes = {ns.DIALBACK: "db"}

    def __init__(self, manager) -> None:
        super().__init__(manager.reactor, manager.max_stanza_size)
        self.manager = manager
        self.local_domain: str | None = None
        self.remote_domain: str | None = None
        self.auth_method: str | None = None  # "certificate", "dialback" or "dialback+certificate"

    def certificate_check(self, domain: str):
        """RFC 6125 check of the peer's certificate for ``domain``; None without one."""
        connection = tls_connection(self.transport)
        if connection is None:
            return None
        chain = chain_from_pyopenssl(connection)
        if not chain:
            return None
        return check_certificate(chain, domain, self.manager.trust)

    def proof(self, domain: str, dialback_ok: bool = False, external: bool = False) -> Proof:
        check = self.certificate_check(domain) if self.secure else None
        return Proof(tls=self.secure, cert_valid=bool(check and check.valid),
                     dialback=dialback_ok, external=external)

    def peer_stream_error(self, element: domish.Element) -> None:
        """The peer ended the stream with an error: log it, close without answering back."""
        condition = next((child.name for child in element.elements()
                          if child.uri == ns.STREAM_ERRORS and child.name != "text"), "unknown")
        text = next((str(child) for child in element.elements() if child.name == "text"), "")
        log.info("s2s {direction} {remote} ({peer}) sent stream error {condition}: {text}",
                 direction=self.direction, remote=self.remote_domain or "?",
                 peer=self.peer_address, condition=condition, text=text[:300])
        self.stream_error_received(condition)
        self.close_stream()

    def stream_error_received(self, condition: str) -> None:
        """Hook for what a peer's stream error means to this kind of stream."""

    def describe(self) -> dict:
        return {"direction": self.direction, "local": self.local_domain,
                "remote": self.remote_domain, "auth": self.auth_method,
                "tls": self.secure, "peer": self.peer_address}


class IncomingServerStream(ServerStream):
    """A peer connected to us: it must prove each domain it sends from."""

    direction = "incoming"

    def __init__(self, manager) -> None:
        super().__init__(manager)
        self.verified: set[tuple[str, str]] = set()  # (peer domain, our domain) pairs
        self.sasl_done = False
        self.dialback_allowed = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.manager.incoming.add(self)
        self._timer = self.reactor.callLater(self.manager.auth_timeout, self._auth_timeout)

    def stream_closed(self, polite: bool) -> None:
        self.manager.incoming.discard(self)
        if self._timer.active():
            self._timer.cancel()
        if self.verified:
            self.manager.incoming_closed(self)

    def _auth_timeout(self) -> None:
        if not self.verified:
            self.fail(StreamError("connection-timeout", "authentication took too long"))

    def default_from(self) -> str | None:
        return self.local_domain or next(iter(sorted(self.manager.domains)))

    def header_received(self, header: StreamHeader) -> None:
        to = domain_or_none(header.attributes.get("to"))
        if to is None or to not in self.manager.domains:
            raise StreamError("host-unknown",
                              f"this server does not serve {header.attributes.get('to')!r}")
        if header.attributes.get("version") != "1.0":
            raise StreamError("unsupported-version", "only XMPP 1.0 streams are supported")
        self.local_domain = to
        self.dialback_allowed = header.prefixes.get("db") == ns.DIALBACK
        claimed = domain_or_none(header.attributes.get("from"))
        if claimed is not None:
            self.remote_domain = self.remote_domain or claimed
            if not self.manager.policy.allowed(claimed):
                self.manager.refused(self, claimed, f"{claimed} is not allowed by policy")
                raise StreamError("policy-violation", "federation with you is not allowed")
        self.send_header(self.local_domain, to=self.remote_domain)
        self.send(self._features())

    def _features(self) -> domish.Element:
        features = domish.Element((ns.STREAMS, "features"))
        if self.sasl_done:
            return features
        hint = self.remote_domain
        policy = self.manager.policy
        if not self.secure and self.manager.tls is not None:
            starttls = features.addElement((ns.TLS, "starttls"))
            if hint is None or policy.needs_tls(hint):
                starttls.addElement("required")
        if self.secure and hint is not None:
            check = self.certificate_check(hint)
            if check is not None and check.valid:
                mechanisms = features.addElement((ns.SASL, "mechanisms"))
                mechanisms.addElement("mechanism", content="EXTERNAL")
        if self.dialback_allowed and (hint is None or policy.can_offer_dialback(hint)):
            features.addElement((ns.DIALBACK_FEATURE, "dialback")).addElement("errors")
        return features

    def element_received(self, element: domish.Element):
        if (element.uri, element.name) == (ns.STREAMS, "error"):
            return self.peer_stream_error(element)
        if element.uri == ns.TLS:
            return self._starttls(element)
        if element.uri == ns.SASL:
            return self._sasl(element)
        if element.uri == ns.DIALBACK:
            return self._dialback(element)
        if element.uri == ns.SERVER and element.name in STANZAS:
            return self._stanza(element)
        raise StreamError("unsupported-stanza-type", f"unexpected element {element.name}")

    # -- STARTTLS

    def _starttls(self, element: domish.Element) -> None:
        if element.name != "starttls" or self.secure or self.manager.tls is None:
            self.send(domish.Element((ns.TLS, "failure")))
            self.close_stream()
            return
        self.send(domish.Element((ns.TLS, "proceed")))
        self.transport.startTLS(self.manager.tls)
        self.secure = True
        self.restart()

    # -- SASL EXTERNAL (XEP-0178)

    def _sasl(self, element: domish.Element) -> None:
        if element.name != "auth" or self.sasl_done:
            raise StreamError("policy-violation", "unexpected SASL element")
        if element.getAttribute("mechanism") != "EXTERNAL" or not self.secure:
            self.send(_sasl_failure("invalid-mechanism"))
            return
        text = str(element).strip()
        try:
            authzid = "" if text in ("", "=") else base64.b64decode(text, validate=True).decode()
        except (binascii.Error, ValueError):
            self.send(_sasl_failure("incorrect-encoding"))
            return
        domain = domain_or_none(authzid) if authzid else self.remote_domain
        if domain is None:
            self.send(_sasl_failure("invalid-authzid"))
            return
        check = self.certificate_check(domain)
        decision = self.manager.policy.decide(domain, self.proof(domain, external=True))
        if check is None or not check.valid or not decision.ok:
            reason = check.reason if check is not None else "no certificate"
            self.manager.refused(self, domain,
                                 f"SASL EXTERNAL refused: {reason}; {decision.reason}")
            self.send(_sasl_failure("not-authorized"))
            return
        self.send(domish.Element((ns.SASL, "success")))
        self.sasl_done = True
        self.remote_domain = domain
        self._accept(domain, self.local_domain, "certificate", decision.reason)
        self.restart()

    # -- dialback (XEP-0220), this server as the receiving server or the authoritative one

    def _dialback(self, element: domish.Element):
        db = dialback.read(element)
        if db.type is not None:
            raise StreamError("bad-format", "dialback answers do not belong on an incoming stream")
        if db.name == "verify":
            valid = self.manager.check_key(receiving=db.sender, originating=db.receiver,
                                           stream_id=db.id or "", key=db.key)
            self.send(dialback.answer("verify", db.receiver, db.sender, valid, db.id))
            return None
        if db.receiver not in self.manager.domains:
            self.send(dialback.error("result", db.receiver, db.sender, "item-not-found"))
            return None
        return self._dialback_result(db)

    def _dialback_result(self, db):
        peer, ours = db.sender, db.receiver
        policy = self.manager.policy
        check = self.certificate_check(peer) if self.secure else None
        cert_ok = bool(check and check.valid)
        decision = policy.decide(peer, Proof(tls=self.secure, cert_valid=cert_ok, dialback=True))
        if not decision.ok:
            self.manager.refused(self, peer, f"dialback refused: {decision.reason}")
            self.send(dialback.error("result", ours, peer, "policy-violation"))
            return None
        if policy.level_for(peer) == "promiscuous":  # its word is taken, by configuration
            self._accept(peer, ours, "asserted", decision.reason)
            self.send(dialback.answer("result", ours, peer, True))
            return None
        if cert_ok:  # XEP-0344: a valid certificate for the domain makes the callback moot
            self._accept(peer, ours, "dialback+certificate", decision.reason)
            self.send(dialback.answer("result", ours, peer, True))
            return None
        d = self.manager.verify_dialback(peer, ours, self.stream_id, db.key)

        def verified(valid: bool) -> None:
            if self.disconnected:
                return
            self.send(dialback.answer("result", ours, peer, valid))
            if valid:
                self._accept(peer, ours, "dialback", decision.reason)
            else:
                self.manager.refused(self, peer, "dialback key did not verify")
                self.close_stream()

        return d.addCallback(verified)

    def _accept(self, peer: str, ours: str, method: str, why: str) -> None:
        if (peer, ours) in self.verified:
            return  # a repeated dialback for a pair already proven changes nothing
        self.verified.add((peer, ours))
        self.remote_domain = self.remote_domain or peer
        self.auth_method = method
        log.info("incoming s2s from {peer} authenticated for {ours} by {method}: {why}",
                 peer=peer, ours=ours, method=method, why=why)
        self.manager.incoming_authenticated(self, peer)

    # -- stanzas

    def _stanza(self, element: domish.Element):
        sender = _address(element, "from")
        recipient = _address(element, "to")
        if (sender.host, recipient.host) not in self.verified:
            if recipient.host not in self.manager.domains:
                raise StreamError("host-unknown", f"{recipient.host} is not served here")
            raise StreamError("invalid-from", f"{sender.host} is not authenticated on this stream")
        stanza = Stanza(element, sender, recipient)
        try:
            check_type(stanza)
        except StanzaError as error:
            if stanza.type != "error":
                self.send(error.to_response(element))
            return None
        decision = self.manager.policy.admits(sender.host, stanza)
        if not decision.ok:  # answered here: the router would not send it to a non-buddy
            self.manager.refused(self, sender.host, decision.reason)
            if stanza.type != "error":
                self.send(StanzaError(decision.condition, decision.reason).to_response(element))
            return None
        return self.manager.router.route(stanza, self)


class OutgoingServerStream(ServerStream):
    """We connected to a peer: authenticate our domain, then carry stanzas (or verify a key)."""

    direction = "outgoing"
    receiving = False

    def __init__(self, manager, local_domain: str, remote_domain: str, link=None,
                 verify=None, direct_tls: bool = False) -> None:
        super().__init__(manager)
        self.local_domain = local_domain
        self.remote_domain = remote_domain
        self.link = link  # the OutgoingLink this stream serves, or None for a verify stream
        self.verify = verify  # (stream_id, key, Deferred) for a key verification
        self.secure = direct_tls
        self.peer_stream_id: str | None = None
        self.ready = False
        self.sasl_done = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.send_header(self.local_domain, to=self.remote_domain)

    def default_from(self) -> str | None:
        return self.local_domain

    def header_received(self, header: StreamHeader) -> None:
        self.peer_stream_id = header.attributes.get("id")
        if header.attributes.get("version") != "1.0":
            raise StreamError("unsupported-version", "only XMPP 1.0 streams are supported")
        if not self.peer_stream_id:
            raise StreamError("invalid-xml", "the receiving server must name the stream (id)")

    def stream_error_received(self, condition: str) -> None:
        if self.link is not None and not self.ready:
            self.link.failure_reason = f"{self.remote_domain} refused us: {condition}"

    def stream_closed(self, polite: bool) -> None:
        if self.verify is not None and not self.verify[2].called:
            self.verify[2].callback(False)
        if self.link is not None:
            self.manager.outgoing_closed(self)

    def element_received(self, element: domish.Element):
        key = (element.uri, element.name)
        if key == (ns.STREAMS, "error"):
            return self.peer_stream_error(element)
        if key == (ns.STREAMS, "features"):
            return self._features(element)
        if key == (ns.TLS, "proceed"):
            self.transport.startTLS(self.manager.tls)
            self.secure = True
            self.restart()
            self.send_header(self.local_domain, to=self.remote_domain)
            return None
        if element.uri == ns.SASL:
            return self._sasl_answer(element)
        if element.uri == ns.DIALBACK:
            return self._dialback_answer(dialback.read(element))
        raise StreamError("unsupported-stanza-type", f"unexpected element {element.name}")

    def _features(self, features: domish.Element) -> None:
        offered = {(child.uri, child.name): child for child in features.elements()}
        policy = self.manager.policy
        if self.ready:
            return
        if (ns.TLS, "starttls") in offered and not self.secure and self.manager.tls is not None:
            self.send(domish.Element((ns.TLS, "starttls")))
            return
        remote = self.remote_domain
        if not self.secure and policy.needs_tls(remote) and self.verify is None:
            self._give_up("TLS required by policy but not offered")
            return
        check = self.certificate_check(remote) if self.secure else None
        if policy.needs_certificate(remote) and not (check and check.valid):
            self._give_up(f"certificate required: {check.reason if check else 'none presented'}")
            return
        if self.verify is not None:
            stream_id, key, _ = self.verify
            self.send(dialback.request("verify", self.local_domain, remote, key, stream_id))
            return
        if self.sasl_done:
            self._authenticated("certificate")
            return
        mechanisms = offered.get((ns.SASL, "mechanisms"))
        if self.secure and mechanisms is not None and "EXTERNAL" in (
                str(m).strip() for m in mechanisms.elements()):
            auth = domish.Element((ns.SASL, "auth"))
            auth["mechanism"] = "EXTERNAL"
            auth.addContent(base64.b64encode(self.local_domain.encode()).decode())
            self.send(auth)
            return
        if not policy.can_offer_dialback(remote):
            self._give_up("the peer did not accept our certificate and policy forbids dialback")
            return
        key = self.manager.make_key(receiving=remote, originating=self.local_domain,
                                    stream_id=self.peer_stream_id or "")
        self.send(dialback.request("result", self.local_domain, remote, key))

    def _sasl_answer(self, element: domish.Element) -> None:
        if element.name == "success":
            self.sasl_done = True
            self.restart()
            self.send_header(self.local_domain, to=self.remote_domain)
        else:
            self._give_up(f"the peer refused SASL EXTERNAL ({element.toXml()[:200]})")

    def _dialback_answer(self, db) -> None:
        if db.name == "verify" and self.verify is not None and db.type is not None:
            deferred = self.verify[2]
            if not deferred.called:
                deferred.callback(db.type == "valid")
            self.close_stream()
            return
        if db.name == "result" and db.type is not None:
            if db.type == "valid":
                self._authenticated("dialback")
            else:
                self._give_up(f"the peer refused our dialback ({db.type})")
            return
        raise StreamError("bad-format", "unexpected dialback element on an outgoing stream")

    def _authenticated(self, method: str) -> None:
        check = self.certificate_check(self.remote_domain) if self.secure else None
        proof = Proof(tls=self.secure, cert_valid=bool(check and check.valid),
                      dialback=method == "dialback", external=method == "certificate")
        decision = self.manager.policy.decide(self.remote_domain, proof)
        if not decision.ok:
            self._give_up(decision.reason)
            return
        self.auth_method = method
        self.ready = True
        log.info("outgoing s2s to {remote} from {local} authenticated by {method}: {why}",
                 remote=self.remote_domain, local=self.local_domain, method=method,
                 why=decision.reason)
        self.manager.outgoing_ready(self)

    def _give_up(self, reason: str) -> None:
        self.manager.refused(self, self.remote_domain, reason)
        if self.link is not None:
            self.link.failure_reason = reason
        self.close_stream("policy-violation", reason)


def _address(element: domish.Element, attribute: str):
    try:
        jid = parse_address(element, attribute)
    except StanzaError:
        jid = None
    if jid is None:
        raise StreamError("improper-addressing", f"s2s stanzas need a valid '{attribute}'")
    return jid


def _sasl_failure(condition: str) -> domish.Element:
    failure = domish.Element((ns.SASL, "failure"))
    failure.addElement(condition)
    return failure
