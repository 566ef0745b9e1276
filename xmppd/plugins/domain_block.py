# -*- test-case-name: tests.unit.test_domain_block -*-
"""Abuse across federation (issue 15): domain blocklists, shared between trusted buddies,
and a limit on what strangers on other servers may send our users.

* ``xmppdctl block-domain DOMAIN`` / ``unblock-domain DOMAIN`` / ``blocked-domains``: the
  admin's list, subdomains included, kept in a store. A blocked domain cannot federate: the
  federation policy (xmppd.s2s.policy) asks IDomainBlocklist when a peer connects or
  authenticates, before we connect out, and for every stanza either way on links that were
  up before the block (``not-allowed``).
* Shared lists (``share = true``): each change is sent to every trusted buddy (XEP-0267) as a
  XEP-0268 incident report marked as spam (xmppd.abuse.shared), and a buddy's such report
  replaces what we held from it; ``buddy_policy`` says what a buddy's entry does here: 'log'
  (a log line per domain and hour), 'quarantine' (its messages and subscription requests to
  our users are kept for the admins, ``xmppdctl quarantine list``, not delivered, until
  ``quarantine release`` delivers or ``quarantine clear`` forgets them) or
  'block' (as the admin's own). ``unblock-domain`` of a domain only buddies list allows it
  here whatever they say. Reports are read only from trusted buddies.
* Strangers: a remote sender with no subscription either way to one of our accounts (and no
  request or pre-approval of the account's) may send it first-contact messages (chat,
  normal) and subscription requests, at most ``stranger_messages`` and
  ``stranger_subscriptions`` per sending domain per ``stranger_period`` seconds, counted over
  all our accounts; more are refused with ``policy-violation`` (0: no limit).
"""

from __future__ import annotations

import uuid

from twisted.internet import defer
from zope.interface import implementer

from xmppd import ns
from xmppd.abuse.domains import ADMIN, POLICIES, DomainLists, Match, domain_entry
from xmppd.abuse.shared import build_blocklist_report, read_blocklist_report
from xmppd.errors import StanzaError
from xmppd.interfaces import IDomainBlocklist, IRoster, IServerTrust, IXmppdPlugin
from xmppd.jid import parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, make_iq_set
from xmppd.storage.records import ArchiveEntry
from xmppd.trust.ratelimit import RateLimiter
from xmppd.trust.server_roster import is_bare_domain
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)

LINK_PRIORITY = 1100  # above the users' own blocking (1000): the server's word comes first
FIRST_CONTACT_TYPES = ("chat", "normal")
QUARANTINED_MESSAGES = ("chat", "normal", "headline", "groupchat")
OWNER = "domain_block"  # the map store's owners: OWNER (the admin's entries), ALLOWED_OWNER
ALLOWED_OWNER = "domain_block.allowed"  # (the admin's exceptions), BUDDIES_OWNER (by buddy)
BUDDIES_OWNER = "domain_block.buddies"
QUARANTINED_OWNER = "domain_block.quarantined"  # the domains with stanzas in quarantine


@implementer(IXmppdPlugin)
class DomainBlockPlugin:
    name = "domain_block"
    requires = ()
    provides = (IDomainBlocklist,)

    def configure(self, options) -> dict:
        options.known("share", "buddy_policy", "stranger_messages", "stranger_subscriptions",
                      "stranger_period", "quarantine_max")
        return {
            "share": options.option_bool("share", False),
            "buddy_policy": options.option_str("buddy_policy", "log", POLICIES),
            "stranger_messages": options.option_int("stranger_messages", 20, minimum=0),
            "stranger_subscriptions": options.option_int("stranger_subscriptions", 10,
                                                         minimum=0),
            "stranger_period": options.option_int("stranger_period", 3600, minimum=1),
            "quarantine_max": options.option_int("quarantine_max", 500, minimum=1),
        }

    def setup(self, ctx) -> defer.Deferred:
        blocklist = Blocklist(ctx, ctx.settings)
        ctx.provide(IDomainBlocklist, blocklist)
        for type in QUARANTINED_MESSAGES:
            ctx.stanza("message", type, ("bare", "full"), blocklist.on_message, LINK_PRIORITY)
        ctx.stanza("presence", "subscribe", ("bare", "full"), blocklist.on_subscribe,
                   LINK_PRIORITY)
        ctx.stanza("iq", "set", "host", blocklist.on_host_iq, LINK_PRIORITY)
        ctx.admin_command("block-domain", blocklist.block,
                          "refuse federation with DOMAIN and its subdomains", args=("DOMAIN",))
        ctx.admin_command("unblock-domain", blocklist.unblock,
                          "end the admin's block of DOMAIN, or allow a domain trusted buddies "
                          "list", args=("DOMAIN",))
        ctx.admin_command("blocked-domains", blocklist.listing,
                          "the admin's blocked domains, exceptions and buddies' lists")
        ctx.admin_command("blocklist share", blocklist.share,
                          "send our blocklist to every trusted buddy now (share = true)")
        ctx.admin_command("quarantine list", blocklist.quarantined,
                          "what quarantined domains sent, newest last", args=("DOMAIN?",))
        ctx.admin_command("quarantine clear", blocklist.clear_quarantine,
                          "forget what DOMAIN sent while quarantined", args=("DOMAIN",))
        ctx.admin_command("quarantine release", blocklist.release,
                          "deliver what DOMAIN sent while quarantined, then forget it",
                          args=("DOMAIN",))
        return defer.ensureDeferred(blocklist.load())


@implementer(IDomainBlocklist)
class Blocklist:
    def __init__(self, ctx, settings: dict) -> None:
        self.ctx = ctx
        self.settings = settings
        self.policy = settings["buddy_policy"]
        self.lists = DomainLists()
        self.store = ctx.open_store("domain_block", "map")
        self.quarantine = ctx.open_store("domain_quarantine", "archive")
        now = ctx.reactor.seconds
        period = settings["stranger_period"]
        self.limits = {
            kind: RateLimiter(limit, period, now) if limit else None
            for kind, limit in (("message", settings["stranger_messages"]),
                                ("subscribe", settings["stranger_subscriptions"]))}
        self.logged = RateLimiter(1, 3600, now)  # one log line per (what, domain) per hour
        self.releasing: list = []  # stanzas the admin released, delivered past these links

    async def load(self) -> None:
        for entry in await self.store.keys(OWNER):
            self.lists.add(ADMIN, entry)
        self.lists.allowed.update(await self.store.keys(ALLOWED_OWNER))
        for buddy, entries in (await self.store.items(BUDDIES_OWNER)).items():
            self.lists.replace(buddy, set(entries))

    # -- IDomainBlocklist (asked by the federation policy)

    def blocked(self, domain: str) -> str | None:
        match = self.lists.match(domain)
        if match is None:
            return None
        if match.source == ADMIN or self.policy == "block":
            return match.describe()
        return None

    # -- the admin's commands

    def block(self, domain: str) -> defer.Deferred:
        return defer.ensureDeferred(self._block(domain_entry(domain)))

    async def _block(self, entry: str) -> dict:
        if entry in self.ctx.domains:
            raise ValueError(f"{entry} is one of ours")
        added = self.lists.add(ADMIN, entry)
        await self.store.set(OWNER, entry, {"since": self.ctx.reactor.seconds()})
        if entry in self.lists.allowed:
            self.lists.allowed.discard(entry)
            await self.store.delete(ALLOWED_OWNER, entry)
        log.info("domain {entry} blocked by the admin (subdomains included)", entry=entry)
        closed = self.ctx.close_federation(lambda remote: self.blocked(remote) is not None)
        shared = await self._share() if added else []
        return {"blocked": entry, "new": added, "links_closed": closed, "shared_with": shared}

    def unblock(self, domain: str) -> defer.Deferred:
        return defer.ensureDeferred(self._unblock(domain_entry(domain)))

    async def _unblock(self, entry: str) -> dict:
        removed = self.lists.remove(ADMIN, entry)
        if removed:
            await self.store.delete(OWNER, entry)
        listed_by_buddies = self.lists.match(entry)
        allowed = listed_by_buddies is not None and not removed
        if allowed:  # only buddies list it: the admin overrides them here
            self.lists.allowed.add(entry)
            await self.store.set(ALLOWED_OWNER, entry, {"since": self.ctx.reactor.seconds()})
        if not removed and not allowed:
            raise ValueError(f"{entry} is not blocked")
        log.info("domain {entry} {what} by the admin", entry=entry,
                 what="unblocked" if removed else "allowed against trusted buddies' lists")
        shared = await self._share() if removed else []
        return {"unblocked": entry, "allowed_against_buddies": allowed, "shared_with": shared}

    def listing(self) -> defer.Deferred:
        return defer.succeed({
            "blocked": self.lists.entries(ADMIN),
            "allowed": sorted(self.lists.allowed),
            "buddy_policy": self.policy,
            "buddies": {source: self.lists.entries(source) for source in self.lists.sources()
                        if source != ADMIN},
        })

    def share(self) -> defer.Deferred:
        if not self.settings["share"]:
            return defer.fail(ValueError("[plugins.domain_block] share is false"))
        return defer.ensureDeferred(self._share())

    # -- sharing with trusted buddies (XEP-0267, XEP-0268)

    async def _share(self) -> list[str]:
        trust = self.ctx.query(IServerTrust)
        if not self.settings["share"] or trust is None:
            return []
        entries = self.lists.entries(ADMIN)
        now = self.ctx.reactor.seconds()
        admins = self.ctx.server_config.server.admins
        incident_id = str(uuid.uuid4()).upper()
        for local, peer in trust.buddies():
            report = build_blocklist_report(local, incident_id, now, entries, admins)
            sender, recipient = parse_jid(local), parse_jid(peer)
            iq = make_iq_set(sender, recipient, report, "blocklist")
            self.ctx.route(Stanza(iq, sender, recipient), None)
        peers = sorted({peer for _, peer in trust.buddies()})
        log.info("blocklist ({count} domains) shared with trusted buddies: {peers}",
                 count=len(entries), peers=", ".join(peers) or "none")
        return peers

    def on_host_iq(self, stanza: Stanza, origin):
        """A trusted buddy's incident report marked as spam replaces its list here; the
        incident plugin (if loaded) then answers and keeps the report as any other."""
        payload = stanza.payload()
        if payload is None or (payload.uri, payload.name) != (ns.INCIDENT, "report"):
            return None
        sender = stanza.sender
        trust = self.ctx.query(IServerTrust)
        if not (is_bare_domain(sender) and sender.host not in self.ctx.domains
                and trust is not None and trust.is_trusted_buddy(sender.host)):
            return None  # the incident plugin refuses it, and logs it
        try:
            entries = read_blocklist_report(payload)
        except ValueError as error:
            log.warn("blocklist from trusted buddy {peer} ignored: {error}", peer=sender.host,
                     error=error)
            raise StanzaError("bad-request", f"blocklist not taken: {error}") from None
        if entries is None:
            return None
        entries = [entry for entry in entries if entry not in self.ctx.domains]
        return defer.ensureDeferred(self._take_buddy_list(sender.host, entries))

    async def _take_buddy_list(self, buddy: str, entries: list[str]) -> None:
        added, removed = self.lists.replace(buddy, set(entries))
        await self.store.set(BUDDIES_OWNER, buddy, entries)
        log.info("blocklist from trusted buddy {buddy}: {count} domains ({added} new, "
                 "{removed} gone), applied as '{policy}'", buddy=buddy, count=len(entries),
                 added=len(added), removed=len(removed), policy=self.policy)
        return None  # the chain goes on: the incident plugin answers

    # -- what comes from other servers for our users

    def on_message(self, stanza: Stanza, origin):
        return self._inbound(stanza, "message")

    def on_subscribe(self, stanza: Stanza, origin):
        return self._inbound(stanza, "subscribe")

    def _inbound(self, stanza: Stanza, kind: str):
        sender = stanza.sender
        if sender is None or self._ours(sender.host) or self._released(stanza):
            return None
        match = self.lists.match(sender.host)
        if match is not None:
            held = self._listed(match, stanza)
            if held is not None:
                return held
        if kind == "message" and stanza.type not in FIRST_CONTACT_TYPES:
            return None
        limiter = self.limits[kind]
        roster = self.ctx.query(IRoster)
        if limiter is None or roster is None or stanza.recipient.user is None:
            return None
        d = roster.get_state(stanza.recipient.bare(), sender.bare())
        return d.addCallback(self._stranger, stanza, kind, limiter)

    def _released(self, stanza: Stanza) -> bool:
        return any(stanza.element is element for element in self.releasing)

    def _ours(self, domain: str) -> bool:
        """One of our hosts or a service below one (pubsub.DOMAIN): never a stranger."""
        return any(domain == host or domain.endswith("." + host) for host in self.ctx.domains)

    def _listed(self, match: Match, stanza: Stanza):
        """What a listed domain's stanza meets: dropped (the admin's or a blocking buddy's:
        it came on a link that was up before the block), kept in quarantine, or logged."""
        if match.source == ADMIN or self.policy == "block":
            self._log_once(("blocked", match.domain), "dropped a stanza from {domain}: {why}",
                           domain=match.domain, why=match.describe())
            return True
        if self.policy == "quarantine":
            return self._hold(match, stanza)
        self._log_once(("listed", match.domain), "{why} (buddy_policy 'log'): stanzas from "
                       "{domain} are delivered", why=match.describe(), domain=match.domain)
        return None

    def _hold(self, match: Match, stanza: Stanza) -> defer.Deferred:
        self._log_once(("quarantine", match.domain), "{why}: quarantined what it sends",
                       why=match.describe())
        entry = ArchiveEntry(self.ctx.reactor.seconds(), stanza.recipient.bare().full(),
                             stanza_to_text(stanza.element))
        owner = match.domain
        d = self.store.set(QUARANTINED_OWNER, owner, {"last": entry.stamp})
        d.addCallback(lambda _: self.quarantine.append(owner, entry))
        d.addCallback(lambda _id: self.quarantine.trim(owner, self.settings["quarantine_max"]))
        return d.addCallback(lambda _count: True)

    def _stranger(self, state, stanza: Stanza, kind: str, limiter: RateLimiter):
        if state.subscription != "none" or state.pending_out or state.approved:
            return None  # the account knows the sender
        domain = stanza.sender.host
        if not limiter.hit(domain):
            return None
        self._log_once((kind, domain), "{domain}: more than {limit} first-contact {what} from "
                       "strangers in {period}s; refusing the rest", domain=domain,
                       limit=limiter.limit, period=limiter.period,
                       what="messages" if kind == "message" else "subscription requests")
        if stanza.type != "error":
            self.ctx.bounce(stanza, "policy-violation",
                            f"too many {kind}s from {domain} to people who do not know its "
                            "users; try later")
        return True

    def _log_once(self, key, text: str, **fields) -> None:
        if self.logged.hit(key) == 0:
            log.info(text, **fields)

    # -- quarantine, for the admins

    def quarantined(self, domain: str | None = None) -> defer.Deferred:
        return defer.ensureDeferred(self._quarantined(domain))

    async def _quarantined(self, domain: str | None) -> list[dict]:
        owners = [domain_entry(domain)] if domain else await self.store.keys(QUARANTINED_OWNER)
        rows = []
        for owner in owners:
            page = await self.quarantine.query(owner)
            rows.extend({"domain": owner, "to": entry.with_jid, "stamp": entry.stamp,
                         "stanza": entry.payload} for entry in page.entries)
        return rows

    def release(self, domain: str) -> defer.Deferred:
        return defer.ensureDeferred(self._release(domain_entry(domain)))

    async def _release(self, domain: str) -> dict:
        """Deliver the kept stanzas in the order they came (each as if it arrived now, past
        the quarantine and the stranger limits: the admin vouched for them), then forget
        them."""
        page = await self.quarantine.query(domain)
        delivered = 0
        for entry in page.entries:
            element = stanza_from_text(entry.payload)
            if element is None:
                continue
            try:
                stanza = Stanza(element, parse_jid(element["from"]), parse_jid(element["to"]))
            except (KeyError, ValueError):
                continue
            self.releasing.append(element)
            try:
                result = self.ctx.route(stanza, None)
                if isinstance(result, defer.Deferred):
                    await result
            finally:
                self.releasing.remove(element)
            delivered += 1
        await self._clear_quarantine(domain)
        log.info("quarantine of {domain} released by the admin: {count} stanzas delivered",
                 domain=domain, count=delivered)
        return {"domain": domain, "delivered": delivered}

    def clear_quarantine(self, domain: str) -> defer.Deferred:
        return defer.ensureDeferred(self._clear_quarantine(domain_entry(domain)))

    async def _clear_quarantine(self, domain: str) -> dict:
        count = await self.quarantine.clear(domain)
        await self.store.delete(QUARANTINED_OWNER, domain)
        return {"domain": domain, "forgotten": count}


domain_block = DomainBlockPlugin()
