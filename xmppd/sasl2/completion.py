# -*- test-case-name: tests.unit.test_sasl2 -*-
"""What follows a successful SASL2 mechanism, up to <success/> (XEP-0388 §6.1, XEP-0386).

0. A non-empty authorization identity must be the stream header's 'from' (XEP-0388 §5).
1. The extensions' ``authenticated`` work (FAST: check, rotate or issue tokens); it may wait
   on storage, and may still fail the authentication: nothing about the stream has changed
   yet. A SASLFailure there is the client's <failure/>. Then the extensions' ``prepare``:
   in a cluster, an inline <resume/> of a session held by another node waits for its
   hand-over (xmppd.sm.manager ``fetch``, as for a classic <resume/>); on one node, or when
   nothing is to be asked, this waits for nothing and <success/> goes out in this turn.
2. From here on, in one reactor turn, so nothing the server routes can slip between: the
   stream is authenticated (no restart); an inline <resume/> is tried first (XEP-0198 §7);
   if it resumed, <bind/> is ignored; otherwise <bind/> binds a session and runs the Bind 2
   features the client asked for, whose answers go into <bound/>.
3. <success/> with the authorization identifier (the full JID once bound), then the stream
   features, except after a resumption (XEP-0198 §7.2), where what the client missed follows
   instead; then SESSION_BOUND for a new session.

Bind 2's resource is the client's <tag/> (when it is a valid resource), a '/', and a suffix:
derived from the account, the user-agent id and the tag when the client sent an id (the same
device gets the same resource, and a new session from it replaces its old one, as XEP-0386
§2.2 asks), random otherwise. The id itself cannot be read back from it.
"""

from __future__ import annotations

import hashlib
import secrets

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.errors import SASLFailure, StanzaError, StreamError
from xmppd.jid import InvalidJID, parse_jid, prepare_resource
from xmppd.logs import get_logger
from xmppd.sasl2 import BIND2, Sasl2Registry
from xmppd.sasl2 import elements as sasl2_elements

log = get_logger(__name__)

MAX_TAG = 64  # characters of the client's tag kept in its resource


def complete(stream, registry: Sasl2Registry, attempt, result) -> defer.Deferred:
    """Run steps 1-3 for ``attempt`` whose mechanism gave ``result`` (an xmppd.sasl.Success).

    Errbacks only with a SASLFailure from step 1 (the exchange answers <failure/>); a stream
    error in step 2 (say, a resume whose 'h' is too high) ends the stream instead."""
    try:
        check_claimed_from(stream.claimed_from, result.authzid)
    except SASLFailure as failure:
        return defer.fail(failure)
    d = defer.succeed([])
    for extension in registry.extensions.handlers:
        d.addCallback(_gather, extension, attempt, stream)
    d.addCallback(_prepare, stream, registry, attempt)
    d.addCallback(_finish, stream, registry, attempt, result)
    return d


def check_claimed_from(claimed: str | None, authzid: str | None) -> None:
    """XEP-0388 §5: a non-empty authorization identity must match the stream header's 'from'
    when there is one; invalid-authzid otherwise. ``authzid`` is the mechanism's, already
    checked to be the account's own bare JID."""
    if not claimed or not authzid:
        return
    try:
        same = parse_jid(claimed).bare().full() == authzid
    except (InvalidJID, ValueError):
        same = False
    if not same:
        raise SASLFailure("invalid-authzid", "the authorization identity is not the stream's "
                                             "'from'")


def _gather(children: list, extension, attempt, stream) -> defer.Deferred:
    d = defer.maybeDeferred(extension.authenticated, attempt, stream)
    d.addCallback(lambda more: children + list(more or ()))
    return d


def _prepare(children: list, stream, registry: Sasl2Registry, attempt):
    """The extensions' waits before step 2, if any; ``children`` unchanged."""
    if _gone(stream):
        return children
    waits = [d for d in (extension.prepare(attempt, stream)
                         for extension in registry.extensions.handlers) if d is not None]
    if not waits:
        return children
    d = waits[0] if len(waits) == 1 else defer.gatherResults(waits, consumeErrors=True)
    d.addCallback(lambda _: children)
    return d


def _gone(stream) -> bool:
    """Closed or closing (say, its authentication timer ran out during a wait): nothing
    more may be sent, and a session resumed on it would be lost again at once."""
    return stream.disconnected or stream.close_sent


def _finish(children: list, stream, registry: Sasl2Registry, attempt, result) -> None:
    if _gone(stream):
        return
    try:
        _establish(children, stream, registry, attempt, result)
    except StreamError as error:
        stream.fail(error)
    except Exception:
        log.failure("SASL2 completion failed for {account}", account=stream.account)
        stream.fail(StreamError("internal-server-error"))


def _establish(children: list, stream, registry: Sasl2Registry, attempt, result) -> None:
    stream.authenticated(result.authcid, attempt.mechanism.name, restart=False)
    answers: list[domish.Element] = []
    resumption = None
    for extension in registry.extensions.handlers:
        resumption = extension.resume(attempt, stream)
        if resumption is not None:
            answers.append(resumption.element)
            if resumption.resumed:
                break
            resumption = None
    bind = attempt.child(BIND2, "bind")
    bound = None
    if resumption is None and bind is not None:
        bound = _bind(stream, registry, bind, attempt)
        if bound is not None:
            answers.append(bound)
    identifier = (stream.session.jid if stream.session is not None else stream.account).full()
    stream.send(sasl2_elements.success(identifier, result.additional_data,
                                       answers + children))
    if resumption is not None:
        if resumption.after is not None:
            resumption.after()
        return
    stream.send_features()
    if bound is not None:
        stream.announce_session()


def _bind(stream, registry: Sasl2Registry, bind: domish.Element, attempt
          ) -> domish.Element | None:
    """Bind a session as <bind/> asks and enable its inline features; <bound/>, or None when
    no session could be bound (the client then sees a bare JID in <success/>)."""
    resource = bind2_resource(_tag(bind), str(stream.account), attempt.user_agent.id)
    try:
        stream.bind_resource(resource)
    except StanzaError as error:
        log.info("{account} from {peer}: no Bind 2 session: {condition}",
                 account=stream.account, peer=stream.peer_address, condition=error.condition)
        return None
    stream.session_bound()
    bound = domish.Element((BIND2, "bound"))
    for child in bind.elements():
        if child.uri == BIND2:
            continue
        handler = registry.bind2_handler(child.uri)
        if handler is None:
            continue  # a feature we did not offer: ignored, as unknown extensions are
        answer = handler(child, stream)
        if answer is not None:
            bound.addChild(answer)
    return bound


def _tag(bind: domish.Element) -> str | None:
    for tag in bind.elements(BIND2, "tag"):
        text = str(tag).strip()[:MAX_TAG]
        try:
            return prepare_resource(text) if text else None
        except (InvalidJID, ValueError):
            return None  # not usable in a resource: the server's part alone
    return None


def bind2_resource(tag: str | None, account: str, user_agent_id: str | None) -> str:
    """``tag/suffix``: the suffix stable for one device's tag, random without a device id."""
    if user_agent_id:
        seed = "\0".join((account, user_agent_id, tag or "")).encode("utf-8")
        suffix = hashlib.sha256(seed).hexdigest()[:12]
    else:
        suffix = secrets.token_hex(6)
    return f"{tag}/{suffix}" if tag else suffix
