# -*- test-case-name: tests.unit.test_fast -*-
"""FAST tokens (XEP-0484): a device that logged in with its password gets a token, and its
next connections log in with one HT-* message instead of a SCRAM exchange.

Tokens are per account and device (the SASL2 <user-agent id/>), in the map store ``fast``:
owner the bare JID, key the SHA-256 of the device id (the id is the device's own secret-ish
name; it is not kept), value the device's software and name as the client gave them and its
two token slots, as XEP-0484 §6 suggests: ``new`` (issued, not used yet) and ``current``.
Using the ``new`` token makes it ``current``, which ends the one before; issuing a token
replaces an unused ``new`` one. So a device never has more than two, and one that missed
the <success/> with its new token still logs in with the old.

A token is never stored: only its SHA-256 (``hash``). Tokens are 128 characters, longer than
SHA-256's 64-byte block, so HMAC keyed by the token is HMAC keyed by its SHA-256 (RFC 2104
§2) and the HT proofs are checked from the hash alone (xmppd.sasl.ht). A copy of the
database does not reveal the token a device holds; it does let its holder compute HT proofs
for that device until the token is revoked or expires, which no HT design can avoid (the
server must compute the same HMAC as the client). Revoke with ``xmppdctl fast revoke``.

Each token is bound to the mechanism it was asked for (§4.3: a -ENDP token does not work
with -NONE), expires ``lifetime`` seconds after issue, and a token older than ``rotate_after``
gets a successor at its next use. A <fast count/> must grow from one use to the next (a
replayed authentication fails), and <fast invalidate='true'/> ends the token it came with.

A token is also bound to the password it was issued under: ``password`` is a fingerprint of
the account's SCRAM-SHA-256 salt and StoredKey (new with every password), so changing the
password ends every token; using one then fails with credentials-expired (XEP-0484 §5: the
server no longer trusts it), which tells the device to log in with the password again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.errors import SASLFailure
from xmppd.logs import get_logger
from xmppd.sasl.ht import HtServer, ht_proof, offered_ht_mechanisms
from xmppd.sasl2 import FAST, Sasl2Extension
from xmppd.stream.tls import channel_binding_data, channel_binding_types, tls_connection

log = get_logger(__name__)

STORE = "fast"
TOKEN_BYTES = 96  # 128 base64 characters: longer than SHA-256's block (see the docstring)
TRUE_VALUES = ("true", "1")
USED = "fast_used"  # Attempt.state key: (device key, record, slot) of the token that logged in


@dataclass(frozen=True)
class Settings:
    lifetime: int  # seconds a token is valid
    rotate_after: int  # seconds after issue when its next use brings a successor


def device_key(user_agent_id: str) -> str:
    return hashlib.sha256(user_agent_id.encode("utf-8")).hexdigest()[:32]


def token_hash(token: str) -> str:
    return base64.b64encode(hashlib.sha256(token.encode("utf-8")).digest()).decode("ascii")


def password_fingerprint(credentials) -> str | None:
    """What ties a token to the password it was issued under (None: no such account)."""
    if credentials is None:
        return None
    digest = hashlib.sha256(b"xmppd FAST\0" + credentials.salt + credentials.stored_key)
    return base64.b64encode(digest.digest()[:12]).decode("ascii")


def xep0082(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FastTokens(Sasl2Extension):
    """The FAST extension: the <fast/> inline feature, HT mechanisms, token issue and use.

    ``store`` is the map store, ``clock`` has ``seconds()`` (the reactor), ``credentials``
    ``(localpart, domain)`` a Deferred of the account's SCRAM-SHA-256 credentials or None."""

    def __init__(self, store, settings: Settings, clock, credentials) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.credentials = credentials

    # -- SASL2

    def feature(self, stream) -> domish.Element:
        fast = domish.Element((FAST, "fast"))
        for name in self._mechanisms(stream):
            fast.addElement("mechanism", content=name)
        return fast

    def _mechanisms(self, stream) -> list[str]:
        return offered_ht_mechanisms(channel_binding_types(tls_connection(stream.transport)))

    def mechanism(self, name: str, stream, attempt):
        """An HtServer for an offered HT mechanism, with <fast/> in the request (§4.4)."""
        if attempt.child(FAST, "fast") is None or name not in self._mechanisms(stream):
            return None
        connection = tls_connection(stream.transport)
        return HtServer(name, stream.domain,
                        lambda kind: channel_binding_data(connection, kind),
                        lambda localpart, mech, proof, cb_data: self._check(
                            attempt, stream.domain, localpart, mech, proof, cb_data))

    @defer.inlineCallbacks
    def _check(self, attempt, domain: str, localpart: str, mechanism: str, proof: bytes,
               cb_data: bytes):
        """The key (the hash) of the device's token that ``proof`` was made with, or None."""
        agent_id = attempt.user_agent.id
        if not agent_id:
            return None
        key = device_key(agent_id)
        record = yield self.store.get(f"{localpart}@{domain}", key)
        if not record:
            return None
        now = self.clock.seconds()
        count = _count(attempt.child(FAST, "fast"))
        for slot in ("new", "current"):
            token = record.get(slot)
            if not token or token["mechanism"] != mechanism or token["expiry"] <= now:
                continue
            secret = base64.b64decode(token["hash"])
            if not hmac.compare_digest(ht_proof(secret, b"Initiator", cb_data), proof):
                continue
            if count is not None and count <= token.get("count", 0):
                log.info("FAST: {localpart}@{domain} replayed a count", localpart=localpart,
                         domain=domain)
                return None
            current = password_fingerprint((yield self.credentials(localpart, domain)))
            if current is None or not hmac.compare_digest(token.get("password", ""), current):
                raise SASLFailure("credentials-expired", "the password changed")
            attempt.state[USED] = (key, record, slot, count)
            return secret
        return None

    @defer.inlineCallbacks
    def authenticated(self, attempt, stream):
        """Rotate, invalidate and issue tokens; the new token's element for <success/>."""
        account = f"{attempt.localpart}@{stream.domain}"
        used = attempt.state.get(USED)
        request = attempt.child(FAST, "request-token")
        fast = attempt.child(FAST, "fast")
        agent = attempt.user_agent
        now = self.clock.seconds()
        record = None
        key = device_key(agent.id) if agent.id else None
        issue = None
        if used is not None:
            key, record, slot, count = used
            token = record[slot]
            if count is not None:
                token["count"] = count
            if slot == "new":  # the successor is in use: its predecessor ends
                record["current"], record["new"] = token, None
            if fast is not None and fast.getAttribute("invalidate", "").lower() in TRUE_VALUES:
                for name in ("current", "new"):
                    if record.get(name) is token:
                        record[name] = None
                log.info("FAST token of {account} invalidated by its device", account=account)
            elif now - token["issued"] >= self.settings.rotate_after:
                issue = token["mechanism"]  # due for rotation: a successor, unasked (§4.5)
        if request is not None:
            wanted = request.getAttribute("mechanism")
            if not agent.id:
                log.info("FAST: {account} asked for a token without a user-agent id",
                         account=account)
            elif wanted not in self._mechanisms(stream):
                log.info("FAST: {account} asked for a token for {mechanism!r}, not offered",
                         account=account, mechanism=(wanted or "")[:40])
            else:
                issue = wanted
        if issue is not None and key is not None:
            if record is None:
                record = (yield self.store.get(account, key)) or {}
            record["software"], record["device"] = agent.software, agent.device
            password = password_fingerprint(
                (yield self.credentials(attempt.localpart, stream.domain)))
            token = secrets.token_urlsafe(TOKEN_BYTES)
            expiry = now + self.settings.lifetime
            record["new"] = {"hash": token_hash(token), "mechanism": issue, "issued": now,
                             "expiry": expiry, "count": 0, "password": password}
            yield self._save(account, key, record)
            element = domish.Element((FAST, "token"))
            element["expiry"] = xep0082(expiry)
            element["token"] = token
            log.info("FAST token for {mechanism} issued to {account}", mechanism=issue,
                     account=account)
            return [element]
        if record is not None:
            yield self._save(account, key, record)
        return []

    def _save(self, account: str, key: str, record: dict) -> defer.Deferred:
        if not record.get("new") and not record.get("current"):
            return self.store.delete(account, key)
        return self.store.set(account, key, record)

    # -- operators

    @defer.inlineCallbacks
    def list(self, account: str):
        """The devices of ``account`` with their tokens' mechanism and expiry (no hashes)."""
        items = yield self.store.items(account)
        now = self.clock.seconds()
        rows = []
        for key, record in sorted(items.items()):
            tokens = [{"slot": slot, "mechanism": token["mechanism"],
                       "issued": xep0082(token["issued"]), "expiry": xep0082(token["expiry"]),
                       "expired": token["expiry"] <= now}
                      for slot in ("current", "new") if (token := record.get(slot))]
            rows.append({"device": key, "software": record.get("software"),
                         "name": record.get("device"), "tokens": tokens})
        return rows

    @defer.inlineCallbacks
    def revoke(self, account: str, device: str | None = None):
        """Delete the tokens of one device of ``account``, or of all; how many devices."""
        if device is None:
            items = yield self.store.items(account)
            yield self.store.clear(account)
            count = len(items)
        else:
            count = 1 if (yield self.store.delete(account, device)) else 0
            if not count:
                raise ValueError(f"{account} has no FAST device {device!r}")
        log.info("FAST tokens of {account} revoked ({devices} devices)", account=account,
                 devices=count)
        return {"account": account, "revoked_devices": count}


def _count(fast: domish.Element | None) -> int | None:
    """<fast count/>: a positive integer, or None when absent; malformed-request otherwise."""
    value = None if fast is None else fast.getAttribute("count")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1 or len(value) > 10:
        raise SASLFailure("malformed-request", "bad FAST count")
    return int(value)
