# -*- test-case-name: tests.unit.test_pep_plugin -*-
"""The server's own entity capabilities (XEP-0115 §6.3): a ``<c/>`` in the stream features
of each host, and the answer to disco#info of its ``node#ver``.

The ``ver`` hashes the host's disco#info, which plugins build together, so it is read the
way any entity would read it: by asking the host itself (ctx.send_iq from the host to the
host), once the server has started and every plugin has declared its features. Until then,
and for a host whose answer failed, no ``<c/>`` is offered: a wrong ``ver`` would be cached
by clients for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import Caps, DiscoInfo, parse_disco_info
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)

NODE = "urn:xmppd:caps"


class ServerCaps:
    """The caps of each host, computed by ``refresh``."""

    def __init__(self, ask: Callable[[domish.Element], defer.Deferred],
                 domains: Iterable[str]) -> None:
        self._ask = ask
        self._domains = tuple(domains)
        self._by_domain: dict[str, tuple[Caps, DiscoInfo]] = {}

    async def refresh(self) -> None:
        for domain in self._domains:
            iq = domish.Element((None, "iq"))
            iq["type"], iq["from"], iq["to"] = "get", domain, domain
            iq.addElement((ns.DISCO_INFO, "query"))
            try:
                answer: Stanza = await self._ask(iq)
                info = parse_disco_info(answer.payload())
            except defer.CancelledError:
                raise
            except Exception as failure:
                log.warn("no caps for {domain}: its disco#info failed: {why}", domain=domain,
                         why=failure)
                self._by_domain.pop(domain, None)
                continue
            self._by_domain[domain] = (Caps.of(info, NODE), info)

    def stream_feature(self, stream) -> domish.Element | None:
        known = self._by_domain.get(getattr(stream, "domain", None))
        return None if known is None else known[0].to_element()

    def node_info(self, stanza: Stanza, node: str | None) -> DiscoInfo | None:
        """disco#info of ``NODE#ver`` for the host asked (XEP-0115 §6.2)."""
        if node is None or stanza.recipient is None:
            return None
        known = self._by_domain.get(stanza.recipient.host)
        if known is None or node != known[0].disco_node:
            return None
        return known[1]
