"""Server-to-server streams (RFC 6120, XEP-0220, XEP-0178, XEP-0288): incoming and outgoing.

An incoming stream authenticates the peer's domains (SASL EXTERNAL with a certificate, or
dialback, or both) and only then routes the stanzas that come from those domains to ours.
An outgoing stream authenticates us to the peer (SASL EXTERNAL or dialback) and then carries
our stanzas; the peer's own identity there rests on our having reached it through DNS, plus
its certificate if that is valid (see xmppd.s2s.policy). What is enough proof is the
federation policy's decision, per peer domain; every refusal is logged with its reason.

Bidirectional streams (XEP-0288), when both sides want them: the receiving server offers
<bidi xmlns='urn:xmpp:features:bidi'/>, the initiating one answers <bidi xmlns='urn:xmpp:bidi'/>
after TLS and before SASL or dialback. Then one TCP connection carries both directions, each
only for the domain pairs proven on it:

- the incoming stream may carry our stanzas from ``ours`` to ``peer`` for each (peer, ours)
  the peer authenticated (SASL: the stream's 'to'; dialback: each verified pair, reversed),
  and never before; the manager then uses it as the link for that pair;
- the outgoing stream accepts stanzas from the receiving server's domain to ours once it is
  authenticated, on the proof that let us send to it (its certificate for the domain, or
  having reached the domain's own server through DNS, which is all a dialback callback
  proves, XEP-0220 §Security) and only if the policy takes that proof for that domain;
  the same checks as on an incoming stream apply to every stanza. The receiving
  server may also prove more of its domains there with dialback (XEP-0288 §2.2): we verify
  them as we would on an incoming stream, over a new connection.

Dialback answers are only taken for a request we made on that stream (XEP-0220 §Security,
the "unsolicited dialback" attack, which XEP-0288 makes worse): anything else ends the stream.
"""

from __future__ import annotations

import base64
import binascii

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError, StreamError
from xmppd.jid import domain_or_none
from xmppd.limits.guard import guard_for
from xmppd.limits.stanzas import paced, stream_limits_feature
from xmppd.logs import get_logger
from xmppd.router import unforged
from xmppd.s2s import dialback
from xmppd.s2s.certs import chain_from_pyopenssl, check_certificate
from xmppd.s2s.policy import Proof
from xmppd.stanza import Stanza, check_type, parse_address
from xmppd.stream.tls import tls_connection
from xmppd.stream.version import answer_version
from xmppd.stream.xmlstream import XmlStream
from xmppd.xml import StreamHeader

log = get_logger(__name__)

STANZAS = frozenset(("iq", "message", "presence"))


class ServerStream(XmlStream):
    """What both kinds share: the peer's certificate, proofs, and the receiving server's
    part (dialback requests, stanzas from proven domains), which an outgoing stream plays
    too once it is bidirectional."""

    content_ns = ns.SERVER
    prefixes = {ns.DIALBACK: "db"}

    def __init__(self, manager) -> None:
        super().__init__(manager.reactor, manager.max_stanza_size)
        self.manager = manager
        # connection caps, byte shaper (xmppd.limits)
        self.guard = guard_for(getattr(manager, "server", None), self, "s2s")
        self.local_domain: str | None = None
        self.remote_domain: str | None = None
        self.auth_method: str | None = None  # "certificate", "dialback" or "dialback+certificate"
        self.verified: set[tuple[str, str]] = set()  # (peer domain, our domain): stanzas
        # from the first to the second are taken on this stream
        self.bidi = False  # XEP-0288 requested on this stream (by the peer, or by us)

    @property
    def dialback_stream_id(self) -> str | None:
        """The stream id a dialback key made for this stream is bound to: the receiving
        server's (ours on an incoming stream, the peer's on an outgoing one)."""
        raise NotImplementedError

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
        log.info("s2s {direction} {remote} ({peer}) sent stream error {condition}{text}",
                 direction=self.direction, remote=self.remote_domain or "?",
                 peer=self.peer_address, condition=condition,
                 text=f": {text[:300]}" if text else "")
        self.stream_error_received(condition)
        self.close_stream()

    def stream_error_received(self, condition: str) -> None:
        """Hook for what a peer's stream error means to this kind of stream."""

    def describe(self) -> dict:
        return {"direction": self.direction, "local": self.local_domain,
                "remote": self.remote_domain, "auth": self.auth_method,
                "tls": self.secure, "peer": self.peer_address}

    @property
    def two_way(self) -> bool:
        """Bidirectional and authenticated: stanzas flow both ways on this one connection."""
        return self.bidi and bool(self.verified)

    def describe_links(self) -> list[dict]:
        """One row per direction this stream carries, for the admin listing: two, with the
        same peer address, for a bidirectional one."""
        row = self.describe()
        if not self.two_way:
            return [row]
        other = "outgoing" if self.direction == "incoming" else "incoming"
        return [row, {**row, "direction": other}]

    # -- this server as the receiving server (or the authoritative one) of dialback

    def _dialback_request(self, db: dialback.DialbackElement):
        if db.name == "verify":
            valid = self.manager.check_key(receiving=db.sender, originating=db.receiver,
                                           stream_id=db.id or "", key=db.key)
            log.info("dialback key of {ours} checked for {peer}: {answer}", ours=db.receiver,
                     peer=db.sender, answer="valid" if valid else "invalid")
            self.send(dialback.answer("verify", db.receiver, db.sender, valid, db.id))
            return None
        if db.receiver not in self.manager.domains:
            self.send(dialback.error("result", db.receiver, db.sender, "item-not-found"))
            return None
        return self._dialback_result(db)

    def _dialback_result(self, db: dialback.DialbackElement):
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
        # always over a new connection: never on the one the request came on (XEP-0288 §2.2)
        d = self.manager.verify_dialback(peer, ours, self.dialback_stream_id or "", db.key)

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
        if self.guard is not None:  # no longer counted at the listener's gate
            self.guard.authenticated()
        self.peer_accepted(peer, ours, method)
        log.info("incoming s2s from {peer} authenticated for {ours} by {method}: {why}",
                 peer=peer, ours=ours, method=method, why=why)
        self.manager.peer_authenticated(self, peer, ours)

    def peer_accepted(self, peer: str, ours: str, method: str) -> None:
        """Hook: ``peer`` may now send to ``ours`` on this stream (before the manager hears)."""

    # -- stanzas from the peer

    def _stanza(self, element: domish.Element):
        sender = _address(element, "from")
        recipient = _address(element, "to")
        if (sender.host, recipient.host) not in self.verified:
            if not self.verified:  # RFC 6120 §4.9.3.16: stanzas before authentication
                raise StreamError("not-authorized", "authenticate before sending stanzas")
            if recipient.host not in self.manager.domains:
                raise StreamError("host-unknown", f"{recipient.host} is not served here")
            raise StreamError("invalid-from", f"{sender.host} is not authenticated on this stream")
        stanza = Stanza(element, sender, recipient)
        try:
            check_type(stanza)
        except StanzaError as error:
            self._refuse(stanza, error)
            return None
        decision = self.manager.policy.admits(sender.host, stanza)
        if not decision.ok:
            self.manager.refused(self, sender.host, decision.reason)
            self._refuse(stanza, StanzaError(decision.condition, decision.reason))
            return None
        if stanza.kind == "message":
            stanza = unforged(stanza, self.manager.domains)
        # [limits.s2s] stanzas_per_second: later stanzas wait (xmppd.limits.stanzas)
        return paced(self, lambda: self.manager.router.route(stanza, self))

    def _refuse(self, stanza: Stanza, error: StanzaError) -> None:
        """Answer a stanza we will not route. An outgoing or bidirectional stream carries the
        answer back itself; on a plain incoming one the peer does not read, so the answer goes
        out through the router like any stanza for that domain (policies let errors pass)."""
        if stanza.type == "error":
            return
        reply = error.to_response(stanza.element)
        if self.direction == "outgoing" or self.two_way:
            self.send(reply)
        else:
            self.manager.router.send_from_server(reply)


class IncomingServerStream(ServerStream):
    """A peer connected to us: it must prove each domain it sends from."""

    direction = "incoming"

    def __init__(self, manager) -> None:
        super().__init__(manager)
        self.sasl_done = False
        self.dialback_allowed = False
        self._held: list[domish.Element] = []  # written once the restarted stream is open

    @property
    def dialback_stream_id(self) -> str | None:
        return self.stream_id

    def carries(self, local: str, remote: str) -> bool:
        """Whether our stanzas from ``local`` to ``remote`` may go out on this stream now:
        only when bidirectional and ``remote`` proved itself here for ``local``."""
        return (self.bidi and (remote, local) in self.verified
                and not self.close_sent and not self.disconnected)

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
        version = answer_version(header.attributes.get("version"))
        if not version.supported:
            self.send_header(to, version=version.header)
            raise StreamError("unsupported-version", "only XMPP 1.x streams are supported")
        self.local_domain = to
        self.dialback_allowed = header.prefixes.get("db") == ns.DIALBACK
        claimed = domain_or_none(header.attributes.get("from"))
        if claimed is not None:
            self.remote_domain = self.remote_domain or claimed
            refusal = self.manager.policy.refusal(claimed)
            if refusal:
                self.manager.refused(self, claimed, refusal)
                raise StreamError("policy-violation", "federation with you is not allowed")
        self.send_header(self.local_domain, to=self.remote_domain)
        self.send(self._features())
        held, self._held = self._held, []
        for element in held:
            self.send(element)

    def send(self, element: domish.Element) -> None:
        """Between SASL success and our answer to the peer's restarted stream header nothing
        may be written: a stanza of ours routed here then (bidi: the peer is authenticated
        already) waits, and follows our new header and features."""
        if not self.header_sent and not self.close_sent:
            self._held.append(element)
            return
        super().send(element)

    def _features(self) -> domish.Element:
        features = domish.Element((ns.STREAMS, "features"))
        if self.secure:  # XEP-0478; nothing about us before TLS
            features.addChild(stream_limits_feature(self))
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
        if self.dialback_allowed and self._dialback_possible(hint):
            features.addElement((ns.DIALBACK_FEATURE, "dialback")).addElement("errors")
        if self.manager.bidi:  # before and after TLS (XEP-0288 §2.1)
            features.addElement((ns.BIDI_FEATURE, "bidi"))
        return features

    def _tls_mandatory(self, domain: str | None) -> bool:
        """Whether STARTTLS is mandatory-to-negotiate before ``domain`` may authenticate
        (RFC 6120 §5.3.1): we offer TLS, have not got it, and the peer's level asks for it
        or the peer did not say who it is (then <required/> was in our features)."""
        if self.secure or self.manager.tls is None:
            return False
        return domain is None or self.remote_domain is None \
            or self.manager.policy.needs_tls(domain)

    def _dialback_possible(self, hint: str | None) -> bool:
        """Dialback is offered only where it could satisfy the policy: never where a
        certificate is needed, and not before a mandatory STARTTLS."""
        if hint is not None and not self.manager.policy.can_offer_dialback(hint):
            return False
        return not self._tls_mandatory(hint)

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
        if (element.uri, element.name) == (ns.BIDI, "bidi"):
            return self._bidi_request()
        raise StreamError("unsupported-stanza-type", f"unexpected element {element.name}")

    # -- STARTTLS

    def _starttls(self, element: domish.Element) -> None:
        if element.name != "starttls" or self.secure or self.manager.tls is None:
            self.send(domish.Element((ns.TLS, "failure")))
            self.close_stream()
            return
        self.send(domish.Element((ns.TLS, "proceed")))
        self.start_tls(self.manager.tls)
        self.secure = True
        # TLS comes before bidi (XEP-0288 §2.1) and what was said in the clear is forgotten
        # (RFC 6120 §5.4.3.3): a <bidi/> sent before STARTTLS does not count.
        self.bidi = False
        self.restart()

    # -- bidirectional streams (XEP-0288)

    def _bidi_request(self) -> None:
        if not self.manager.bidi:
            raise StreamError("unsupported-stanza-type",
                              "bidirectional streams (XEP-0288) are not offered here")
        if self.bidi:
            return
        self.bidi = True
        log.debug("incoming s2s from {remote} ({peer}) asked for a bidirectional stream",
                  remote=self.remote_domain or "?", peer=self.peer_address)
        for peer, ours in sorted(self.verified):  # asked late: the pairs proven so far count
            self.manager.bidi_ready(self, ours, peer)

    def peer_accepted(self, peer: str, ours: str, method: str) -> None:
        self.remote_domain = self.remote_domain or peer
        self.auth_method = method
        if self.bidi:  # only now, and only for this pair reversed (XEP-0288 §2.2)
            self.manager.bidi_ready(self, ours, peer)

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
        # Restart first: what the link-up makes us send (probes, queued stanzas) is held
        # until our new stream header, never written into the stream that just ended.
        self.restart()
        self._accept(domain, self.local_domain, "certificate", decision.reason)

    # -- dialback (XEP-0220), this server as the receiving server or the authoritative one

    def _dialback(self, element: domish.Element):
        db = dialback.read(element)
        if db.type is not None:  # we never ask on an incoming stream: unsolicited
            raise StreamError("bad-format", "dialback answers do not belong on an incoming stream")
        if db.name == "result" and self._tls_mandatory(db.sender):
            # RFC 6120 §5.3.1: TLS is mandatory-to-negotiate for this peer; authenticating
            # in the clear is a policy violation, not a dialback to answer
            self.manager.refused(self, db.sender, "dialback before STARTTLS, TLS required")
            raise StreamError("policy-violation", "STARTTLS is required before dialback")
        return self._dialback_request(db)


class OutgoingServerStream(ServerStream):
    """We connected to a peer: authenticate our domain, then carry stanzas (or verify a key);
    when bidirectional, take the peer's stanzas too."""

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
        self.dialback_asked = False  # our <db:result/> went out and waits for its answer

    @property
    def dialback_stream_id(self) -> str | None:
        return self.peer_stream_id

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
            self.start_tls(self.manager.tls)
            self.secure = True
            self.restart()
            self.send_header(self.local_domain, to=self.remote_domain)
            return None
        if element.uri == ns.SASL:
            return self._sasl_answer(element)
        if element.uri == ns.DIALBACK:
            return self._dialback_answer(dialback.read(element))
        if self.bidi and element.uri == ns.SERVER and element.name in STANZAS:
            return self._stanza(element)
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
        if (self.manager.bidi and not self.bidi and not self.sasl_done
                and (ns.BIDI_FEATURE, "bidi") in offered):
            # after TLS (we would have asked for it above) and before SASL or dialback
            self.send(domish.Element((ns.BIDI, "bidi")))
            self.bidi = True
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
        self.dialback_asked = True

    def _sasl_answer(self, element: domish.Element) -> None:
        if element.name == "success":
            self.sasl_done = True
            self.restart()
            self.send_header(self.local_domain, to=self.remote_domain)
        else:
            self._give_up(f"the peer refused SASL EXTERNAL ({element.toXml()[:200]})")

    def _dialback_answer(self, db: dialback.DialbackElement):
        if db.type is None:  # a request: the peer's, as receiving server of our bidi stream
            if self.bidi and self.ready:
                return self._dialback_request(db)
            raise StreamError("bad-format", "unexpected dialback request on an outgoing stream")
        answers_us = (db.sender, db.receiver) == (self.remote_domain, self.local_domain)
        if db.name == "verify" and self.verify is not None and answers_us \
                and db.id in (None, self.verify[0]):
            deferred = self.verify[2]
            if not deferred.called:
                deferred.callback(db.type == "valid")
            self.close_stream()
            return None
        if db.name == "result" and self.dialback_asked and answers_us:
            self.dialback_asked = False
            if db.type == "valid":
                self._authenticated("dialback")
            else:
                self._give_up(f"the peer refused our dialback ({db.type})")
            return None
        raise StreamError("bad-format", f"unsolicited dialback answer ({db.name} from "
                          f"{db.sender} to {db.receiver}) on an outgoing stream")

    def _authenticated(self, method: str) -> None:
        """The peer accepted us (``method`` is how we proved ourselves): is the peer, in
        turn, who the policy needs it to be? We reached it through DNS whatever the method,
        and its certificate is what it is; our dialback key or our certificate says nothing
        about the peer, so the decision does not depend on the method."""
        check = self.certificate_check(self.remote_domain) if self.secure else None
        proof = Proof(tls=self.secure, cert_valid=bool(check and check.valid), reached=True,
                      external=method == "certificate")
        decision = self.manager.policy.decide(self.remote_domain, proof)
        if not decision.ok:
            self._give_up(decision.reason)
            return
        self.auth_method = method
        self.ready = True
        log.info("outgoing s2s to {remote} from {local} authenticated by {method}: {why}",
                 remote=self.remote_domain, local=self.local_domain, method=method,
                 why=decision.reason)
        if self.bidi:
            # The decision just made is about the receiving server's identity (its
            # certificate for the domain, or our reaching it through DNS): the policy
            # took it for this domain, so its stanzas to us are taken on that same proof.
            self.verified.add((self.remote_domain, self.local_domain))
            log.info("outgoing s2s to {remote} from {local} is bidirectional: stanzas from "
                     "{remote} to {local} are taken on it", remote=self.remote_domain,
                     local=self.local_domain)
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
