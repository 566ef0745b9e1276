# -*- test-case-name: tests.unit.test_services -*-
"""Services on subdomains (``conference.example.org``, ``pubsub.…``, ``upload.…``,
XEP-0114 components): domains of ours that are not hosts, each with its own chain and IQ
answerers (as in Prosody every component is a host with its own events) and its own disco.

The router looks the recipient's domain up in hosts, then in services, then sends it to
federation. Inside a service, targets are relative to it: 'host' is the service's domain
itself, 'bare' a JID at it (a room), 'full' one with a resource (an occupant). What no link
consumes and no answerer takes goes to the service's ``handler`` if it has one (a component
gets everything it does not answer itself), else IQ requests and messages are refused with
service-unavailable. The server's disco#items lists each service under its parent host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from xmppd import ns
from xmppd.disco import DiscoEntity, DiscoItem
from xmppd.dispatch import Dispatcher
from xmppd.jid import prepare_domain
from xmppd.stanza import Stanza

ANSWER_TYPES = frozenset(("result", "error"))


class Service:
    """One service: its domains (one per host for a label), its dispatcher, its disco."""

    def __init__(self, domains: frozenset[str], router, handler: Callable | None = None,
                 name: str | None = None) -> None:
        self.domains = domains
        self.name = name
        self.router = router
        self.handler = handler
        self.dispatcher = Dispatcher(router.send_from_server)
        self.disco = DiscoEntity()
        if handler is None:  # a component answers its own disco; a built-in service here
            self.dispatcher.add_iq("get", ns.DISCO_INFO, "query", "host", self.disco.on_info)
            self.dispatcher.add_iq("get", ns.DISCO_ITEMS, "query", "host", self.disco.on_items)
            self.disco.add_feature(ns.DISCO_INFO)
            self.disco.add_feature(ns.DISCO_ITEMS)

    def route(self, stanza: Stanza, origin):
        recipient = stanza.recipient
        if recipient.user is None:
            target = "host" if recipient.resource is None else "full"
        else:
            target = "bare" if recipient.resource is None else "full"
        if (stanza.kind == "iq" and stanza.type in ANSWER_TYPES
                and self.router.iq_tracker.answer(stanza)):
            return None
        return self.dispatcher.dispatch(stanza, target, origin, self._end_of_chain)

    def _end_of_chain(self, stanza: Stanza, target: str, origin):
        if stanza.kind == "iq" and stanza.type in ("get", "set"):
            answered = self.dispatcher.dispatch_iq(stanza, target, origin)
            if answered:
                return answered
        if self.handler is not None:
            return self.handler(stanza, origin)
        if stanza.kind != "presence" and stanza.type not in ("error", "result", "headline"):
            self.router.bounce(stanza, "service-unavailable")
        return None

    def items_under(self, host: str) -> list[DiscoItem]:
        """This service's entries in the disco#items of our host ``host``."""
        suffix = "." + host
        return [DiscoItem(domain, name=self.name) for domain in sorted(self.domains)
                if domain.endswith(suffix)]


def service_domains(name: str, hosts: Iterable[str]) -> frozenset[str]:
    """A label ('conference') is a subdomain of every host; a name with a dot (or a host's
    name) is one domain."""
    if "." in name or name in hosts:
        return frozenset((prepare_domain(name),))
    return frozenset(prepare_domain(f"{name}.{host}") for host in hosts)


class ServiceTable:
    """The router's domain → service table, and the services' lines in the hosts' disco."""

    def __init__(self, router, hosts: frozenset[str]) -> None:
        self.router = router
        self.hosts = hosts

    def add(self, name: str, handler: Callable | None = None,
            title: str | None = None) -> tuple[Service, Callable[[], None]]:
        """A new service for ``name``; returns it and the function that removes it."""
        domains = service_domains(name, self.hosts)
        taken = sorted(d for d in domains if d in self.router.served)
        if taken:
            raise ValueError(f"{taken[0]} is already served here")
        service = Service(domains, self.router, handler, title)
        table = self.router.services
        for domain in domains:
            table[domain] = service

        def remove() -> None:
            for domain in domains:
                if table.get(domain) is service:
                    del table[domain]

        return service, remove

    def disco_items(self, stanza: Stanza, node: str | None) -> list[DiscoItem] | None:
        """An items provider for the hosts' disco: every service under the host asked."""
        if node is not None:
            return None
        host = stanza.recipient.host
        services = {id(s): s for s in self.router.services.values()}.values()
        return [item for service in services for item in service.items_under(host)]

