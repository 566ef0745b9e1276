# -*- test-case-name: tests.unit.test_private -*-
"""Private XML storage (XEP-0049): one element per (namespace, element name) and account.

Decisions worth knowing:

* A get names exactly one element (§2.3: "MUST NOT query for more than one namespace"):
  none is ``not-acceptable`` (§2.3; the ``bad-format`` of its example is no XMPP condition),
  several are ``bad-request``. Nothing stored answers with the element asked for, empty,
  as servers have always done and clients expect.
* A set stores each child whole, replacing what was kept under its namespace and name;
  the same namespace and name twice in one set is ``bad-request`` (which one would win?).
  An empty element is stored as it is: that is how clients clear their data.
* The namespaces of the stream and of this protocol itself (jabber:client, jabber:server,
  jabber:iq:private) are ``not-acceptable`` (§2.3, optional there): data in them would read
  back as part of the IQ, not as stored XML. A child without a namespace of its own is in
  jabber:iq:private and refused with them.
* ``max_size`` bounds an account's private XML as a whole (bytes of the stored elements),
  so one account cannot fill the database by spreading data over many namespaces; a set
  that would go over it is ``not-acceptable`` and stores nothing. Sets of one account run
  one at a time, so two resources cannot pass the check together.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.im.keyed_queue import KeyedQueue
from xmppd.interfaces import IPrivateXml
from xmppd.jid import JID
from xmppd.personal.elements import from_text, text_size, to_text

RESERVED = frozenset((ns.CLIENT, ns.SERVER, ns.PRIVATE))


def storage_key(element: domish.Element) -> str:
    """The store key of an element: its expanded name in Clark notation, {namespace}name."""
    return f"{{{element.uri or ''}}}{element.name}"


def checked_children(query: domish.Element) -> list[domish.Element]:
    """The elements of a query, each in a namespace that may be stored."""
    children = list(query.elements())
    if not children:
        raise StanzaError("not-acceptable", "name the element to store or read")
    for child in children:
        if child.uri in RESERVED or not child.uri:
            raise StanzaError("not-acceptable",
                              f"the namespace {child.uri!r} is reserved")
    return children


@implementer(IPrivateXml)
class PrivateXML:
    """The private XML of one server's accounts; ``store`` is an IMapStore of XML text."""

    def __init__(self, store, max_size: int) -> None:
        self._store = store
        self.max_size = max_size
        self._queue = KeyedQueue()

    def get(self, account: JID, query: domish.Element) -> defer.Deferred:
        """Deferred firing the result's <query/>: the stored element asked for, or it empty."""
        children = checked_children(query)
        if len(children) > 1:
            raise StanzaError("bad-request", "a get reads one element")
        (asked,) = children
        d = self._store.get(account.userhost(), storage_key(asked))
        return d.addCallback(self._answer, asked, account)

    def _answer(self, text: str | None, asked: domish.Element, account: JID) -> domish.Element:
        found = None
        if text is not None:
            found = from_text(text, f"private XML {storage_key(asked)} of {account.userhost()}")
        result = domish.Element((ns.PRIVATE, "query"))
        result.addChild(found if found is not None else domish.Element((asked.uri, asked.name)))
        return result

    def element(self, account: JID, namespace: str, name: str) -> defer.Deferred:
        key = storage_key(domish.Element((namespace, name)))
        d = self._store.get(account.userhost(), key)
        return d.addCallback(lambda text: None if text is None else
                             from_text(text, f"private XML {key} of {account.userhost()}"))

    def store(self, account: JID, element: domish.Element) -> defer.Deferred:
        query = domish.Element((ns.PRIVATE, "query"))
        query.addChild(element)
        return self.set(account, query)

    def set(self, account: JID, query: domish.Element) -> defer.Deferred:
        """Store every child of ``query``; nothing is stored when one is refused."""
        values: dict[str, str] = {}
        for child in checked_children(query):
            key = storage_key(child)
            if key in values:
                raise StanzaError("bad-request", f"{key} is named twice")
            values[key] = to_text(child)
        owner = account.userhost()
        return self._queue.run(owner, lambda: defer.ensureDeferred(self._set(owner, values)))

    async def _set(self, owner: str, values: dict[str, str]) -> None:
        kept = await self._store.items(owner)
        sizes = {key: text_size(text) for key, text in kept.items() if isinstance(text, str)}
        sizes.update((key, text_size(text)) for key, text in values.items())
        if sum(sizes.values()) > self.max_size:
            raise StanzaError("not-acceptable",
                              f"private XML may take at most {self.max_size} bytes")
        await self._store.set_many(owner, values)
