"""The server-to-server layer as the router sees it: links per domain pair, queues, retries.

``send`` takes a stanza for a remote domain: it goes out on an authenticated outgoing link,
or waits in a bounded queue while one is set up (SRV look-up, connect, TLS, authentication).
When setting up fails, the queued stanzas bounce with remote-server-not-found or
remote-server-timeout, and the domain is not tried again until its back-off has passed.

A peer's bidirectional stream (XEP-0288) that proved the peer's domain for one of ours is a
link too: our stanzas for that pair go out on it whenever we have no outgoing stream of our
own, with no new connection. S2S_LINK_UP is told once per domain a stream authenticated and
S2S_LINK_DOWN once for each of those when the stream closes, however many directions it
carried.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from twisted.internet import defer, endpoints, protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from xmppd import events
from xmppd.interfaces import IRemoteRouter
from xmppd.logs import get_logger
from xmppd.s2s import federation_enabled
from xmppd.s2s.dialback_keys import dialback_key, verify_key
from xmppd.s2s.streams import IncomingServerStream, OutgoingServerStream
from xmppd.stanza import Stanza

log = get_logger(__name__)

FIRST_BACKOFF, MAX_BACKOFF = 5.0, 300.0


@dataclass(eq=False)
class OutgoingLink:
    """Our link from one of our domains to one remote domain."""

    local: str
    remote: str
    queue: deque = field(default_factory=deque)
    stream: OutgoingServerStream | None = None
    connecting: bool = False
    failure_reason: str | None = None
    retry_after: float = 0.0
    backoff: float = FIRST_BACKOFF
    deadline: object = None  # the pending connect+authenticate timeout (an IDelayedCall)
    bidi: IncomingServerStream | None = None  # the peer's bidirectional stream (XEP-0288)

    def cancel_deadline(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None

    @property
    def usable(self) -> bool:
        """Authenticated and not closing: what we write now will go out."""
        return self.stream is not None and self.stream.ready and not self.stream.close_sent

    @property
    def carrier(self) -> OutgoingServerStream | IncomingServerStream | None:
        """Where a stanza for this pair goes out now: our own stream, else the peer's
        bidirectional one; None when we must connect (or wait for a connection)."""
        if self.usable:
            return self.stream
        if self.bidi is not None and self.bidi.carries(self.local, self.remote):
            return self.bidi
        return None


@implementer(IRemoteRouter)
class S2SManager:
    def __init__(self, server, *, tls, trust, policy, resolver, secret: bytes,
                 bind_address: str | None = None, connect_timeout: float = 10.0,
                 auth_timeout: float = 30.0, queue_limit: int = 1000,
                 bidi: bool = False) -> None:
        self.server = server
        self.router = server.router
        self.reactor = server.reactor
        self.domains = server.router.served  # our hosts and services (subdomains), live
        self.max_stanza_size = server.config.server.max_stanza_size
        self.tls, self.trust, self.policy, self.resolver = tls, trust, policy, resolver
        self._secret = secret
        self.bind_address = bind_address
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.queue_limit = queue_limit
        self.bidi = bidi  # offer and ask for XEP-0288; the [s2s] bidi setting, on by default
        self.links: dict[tuple[str, str], OutgoingLink] = {}
        self.incoming: set[IncomingServerStream] = set()
        self._announced: dict[object, list[str]] = {}  # stream -> domains told S2S_LINK_UP

    # -- IRemoteRouter

    def send(self, stanza: Stanza) -> None:
        local = stanza.sender.host if stanza.sender is not None else None
        remote = stanza.recipient.host
        if local not in self.domains:
            log.warn("not relaying {stanza!r}: it is not from a domain of ours", stanza=stanza)
            return
        if not self.policy.allowed(remote):
            self.router.bounce(stanza, "not-allowed", f"federation with {remote} is not allowed")
            return
        decision = self.policy.admits(remote, stanza)  # buddies-only: XEP-0267 trust first
        if not decision.ok:
            self.router.bounce(stanza, decision.condition, decision.reason)
            return
        link = self._link(local, remote)
        carrier = link.carrier
        if carrier is not None:
            carrier.send(stanza.element)
            return
        if self.reactor.seconds() < link.retry_after:
            self.router.bounce(stanza, "remote-server-not-found", link.failure_reason)
            return
        if len(link.queue) >= self.queue_limit:
            self.router.bounce(stanza, "resource-constraint", f"too much waiting for {remote}")
            return
        link.queue.append(stanza)
        if not link.connecting:
            self._connect(link)

    def _link(self, local: str, remote: str) -> OutgoingLink:
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[(local, remote)] = OutgoingLink(local, remote)
        return link

    def _flush(self, link: OutgoingLink) -> None:
        """Stanzas waiting for a link go out, in order, on whatever carries it now."""
        carrier = link.carrier
        while link.queue and carrier is not None:
            carrier.send(link.queue.popleft().element)

    # -- connecting out

    def _connect(self, link: OutgoingLink) -> None:
        link.connecting = True
        link.failure_reason = None
        link.cancel_deadline()
        link.deadline = self.reactor.callLater(self.connect_timeout + self.auth_timeout,
                                               self._timed_out, link)
        d = self.resolver.resolve(link.remote)
        d.addCallback(self._try_targets, link.local, link.remote, link)
        d.addErrback(lambda failure: self._link_failed(link, f"connecting failed: "
                                                       f"{failure.getErrorMessage()}",
                                                       "remote-server-not-found"))

    @defer.inlineCallbacks
    def _try_targets(self, targets, local: str, remote: str, link: OutgoingLink | None,
                     verify=None):
        """Connect to the first target that answers; returns the stream or fails."""
        if not targets:
            raise ConnectionError(f"{remote} offers no server-to-server service")
        errors = []
        for target in targets:
            factory = _OutgoingFactory(self, local, remote, link, verify, target.direct_tls)
            endpoint = endpoints.HostnameEndpoint(
                self.reactor, target.host.encode("idna"), target.port,
                timeout=self.connect_timeout,
                bindAddress=(self.bind_address, 0) if self.bind_address else None)
            if target.direct_tls:
                factory = TLSMemoryBIOFactory(self.tls, True, factory)
            try:
                stream = yield endpoint.connect(factory)
            except Exception as error:
                errors.append(f"{target.host}:{target.port}: {error}")
                continue
            return getattr(stream, "wrappedProtocol", stream)
        raise ConnectionError("; ".join(errors))

    def _timed_out(self, link: OutgoingLink) -> None:
        if link.connecting:
            if link.stream is not None:
                link.stream.transport.abortConnection()
            self._link_failed(link, "timed out", "remote-server-timeout")

    def outgoing_ready(self, stream: OutgoingServerStream) -> None:
        link = stream.link
        link.stream, link.connecting = stream, False
        link.cancel_deadline()
        link.backoff = FIRST_BACKOFF
        self._flush(link)
        self._link_up(stream, link.remote)

    def outgoing_closed(self, stream: OutgoingServerStream) -> None:
        link = stream.link
        self._links_down(stream)
        if link.stream is not stream:
            return  # an older stream of this link closing; a newer one is in charge
        link.stream = None
        if stream.ready:
            log.info("s2s link to {remote} closed", remote=link.remote)
            if link.queue and not link.connecting:
                self._connect(link)
        elif link.connecting:
            self._link_failed(link, link.failure_reason or "the connection closed",
                              "remote-server-not-found")

    def _link_failed(self, link: OutgoingLink, reason: str, condition: str) -> None:
        if not link.connecting:
            return
        link.connecting = False
        link.cancel_deadline()
        link.failure_reason = reason
        link.retry_after = self.reactor.seconds() + link.backoff
        link.backoff = min(link.backoff * 2, MAX_BACKOFF)
        log.warn("s2s to {remote} failed: {reason}; retry after {backoff}s", remote=link.remote,
                 reason=reason, backoff=link.backoff / 2)
        while link.queue:
            self.router.bounce(link.queue.popleft(), condition, reason)

    # -- dialback keys and verification

    def make_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return dialback_key(self._secret, receiving, originating, stream_id)

    def check_key(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        if originating not in self.domains:
            return False
        return verify_key(self._secret, receiving, originating, stream_id, key)

    def verify_dialback(self, peer: str, ours: str, stream_id: str, key: str) -> defer.Deferred:
        """Ask the peer's authoritative server, over a new connection, if ``key`` is its own."""
        answer: defer.Deferred = defer.Deferred()
        timeout = self.reactor.callLater(self.connect_timeout + self.auth_timeout,
                                         lambda: answer.called or answer.callback(False))
        d = self.resolver.resolve(peer)
        d.addCallback(self._try_targets, ours, peer, None, (stream_id, key, answer))

        def failed(failure) -> None:
            log.warn("dialback verification with {peer} failed: {why}", peer=peer,
                     why=failure.getErrorMessage())
            if not answer.called:
                answer.callback(False)

        d.addErrback(failed)
        answer.addBoth(lambda valid: (timeout.active() and timeout.cancel(), valid)[1])
        return answer

    # -- incoming, and bidirectional streams

    def peer_authenticated(self, stream, peer: str, ours: str) -> None:
        """``peer`` proved itself for ``ours`` on ``stream`` (incoming, or the receiving
        server's extra domains on our bidirectional outgoing stream)."""
        self._link_up(stream, peer)

    def bidi_ready(self, stream: IncomingServerStream, local: str, remote: str) -> None:
        """A peer's bidirectional stream may carry our stanzas from ``local`` to ``remote``.
        Our own outgoing stream, if one is up, stays first; the stanzas waiting for one that
        is being set up go out here at once."""
        link = self._link(local, remote)
        link.bidi = stream
        log.info("s2s to {remote} from {local} may go out on the bidirectional stream from "
                 "{remote} ({peer})", remote=remote, local=local, peer=stream.peer_address)
        self._flush(link)

    def incoming_closed(self, stream: IncomingServerStream) -> None:
        for peer, ours in stream.verified:
            link = self.links.get((ours, peer))
            if link is not None and link.bidi is stream:
                link.bidi = None
        self._links_down(stream)

    def _link_up(self, stream, domain: str) -> None:
        self._announced.setdefault(stream, []).append(domain)
        self.server.emit(events.S2S_LINK_UP, domain)

    def _links_down(self, stream) -> None:
        """Each S2S_LINK_UP told for ``stream`` gets its S2S_LINK_DOWN, once."""
        for domain in self._announced.pop(stream, ()):
            self.server.emit(events.S2S_LINK_DOWN, domain)

    def refused(self, stream, domain: str | None, reason: str) -> None:
        log.warn("s2s {direction} {domain} ({peer}) refused: {reason}",
                 direction=stream.direction, domain=domain or "?", peer=stream.peer_address,
                 reason=reason)

    # -- administration

    def list_links(self) -> list[dict]:
        """One row per authenticated direction; a bidirectional stream gives two rows (one
        each way) with the same peer address."""
        rows = [row for link in self.links.values() if link.usable
                for row in link.stream.describe_links()]
        rows += [row for stream in self.incoming if stream.verified
                 for row in stream.describe_links()]
        return rows

    def close_links(self, domain: str) -> int:
        """Close every stream with ``domain``; returns how many links (directions) that
        ended, as ``list_links`` counts them."""
        streams = [link.stream for link in self.links.values()
                   if link.remote == domain and link.stream is not None]
        streams += [s for s in self.incoming if s.remote_domain == domain]
        count = sum(len(stream.describe_links()) for stream in streams)
        for stream in streams:
            stream.close_stream()
        return count

    def open_streams(self) -> list:
        """Every s2s stream with a connection, for shutdown."""
        outgoing = [link.stream for link in self.links.values() if link.stream is not None]
        return outgoing + list(self.incoming)


class _OutgoingFactory(protocol.ClientFactory):
    def __init__(self, manager, local, remote, link, verify, direct_tls) -> None:
        self.args = (manager, local, remote, link, verify, direct_tls)

    def buildProtocol(self, addr) -> OutgoingServerStream:
        manager, local, remote, link, verify, direct_tls = self.args
        stream = OutgoingServerStream(manager, local, remote, link, verify, direct_tls)
        if link is not None:
            link.stream = stream
        return stream


class IncomingServerFactory(protocol.Factory):
    def __init__(self, manager: S2SManager, direct_tls: bool = False) -> None:
        self.manager = manager
        self.direct_tls = direct_tls

    def buildProtocol(self, addr) -> IncomingServerStream:
        stream = IncomingServerStream(self.manager)
        stream.secure = self.direct_tls
        return stream


def federation_from_config(server, certificates=None) -> S2SManager | None:
    """The S2S manager the [s2s] section asks for; None when federation is off (no listener:
    a peer could not reach us back for dialback or bidirectional streams). ``certificates``:
    the server's CertificateStore (xmppd.stream.certstore), shared with c2s and reloaded."""
    from xmppd.s2s.certs import TrustStore
    from xmppd.s2s.policy import FederationPolicy, ProvidedTrust
    from xmppd.s2s.srv import S2SResolver
    from xmppd.s2s.tlsctx import S2STLS

    config = server.config
    s2s = config.s2s
    if not federation_enabled(s2s):
        return None
    return S2SManager(
        server,
        tls=S2STLS(config.tls.certificate, config.tls.key, config.tls.min_version,
                   store=certificates),
        trust=TrustStore.from_file(s2s.ca_file),
        policy=FederationPolicy(s2s.default_policy, s2s.policy, s2s.allow, s2s.deny,
                                trust=ProvidedTrust(server.query)),
        resolver=S2SResolver([tuple(a) for a in s2s.dns_servers] or None, s2s.hosts,
                             server.reactor),
        secret=_dialback_secret(config),
        bind_address=s2s.bind_address, connect_timeout=s2s.connect_timeout,
        auth_timeout=s2s.auth_timeout, queue_limit=s2s.queue_limit, bidi=s2s.bidi)


def _dialback_secret(config) -> bytes:
    """The node's own secret file; in a cluster, the one every node derives from
    ``[cluster] secret`` (xmppd.cluster.federation), so that any node verifies any node's keys."""
    if config.cluster is not None and config.cluster.secret is not None:
        from xmppd.cluster.federation import dialback_secret

        return dialback_secret(config.cluster.secret)
    from xmppd.s2s.dialback_keys import load_or_create_secret

    return load_or_create_secret(config.server.data_dir / "dialback.secret")
