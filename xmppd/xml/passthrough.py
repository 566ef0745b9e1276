# -*- test-case-name: tests.unit.test_xml_passthrough -*-
"""The payload of a routed stanza keeps the text it arrived as, until someone changes it.

Most stanzas the server handles are only routed: it reads and stamps the stanza's own
attributes, maybe looks at the names of its children, and writes it to the recipient's
stream. So the stream parser (``StreamParser(pass_through=True)``, the default) lets the
payload of messages and presence keep its text: a direct child of the stanza that has
element children of its own (an OMEMO ``<encrypted/>``, XHTML-IM, a vCard update, a
forwarded message) becomes a ``KeptElement`` holding the text it arrived as, and
``serialize`` writes that text instead of walking its subtree, while the subtree is
unchanged and the default namespace it is written into is the one it was parsed in.

Leaves are not kept (a body, a chat state, a receipt request, an origin-id): measured with
callgrind on the whole message path (README, Performance, "the routed-only message path"),
slicing and keeping a leaf's text costs more than writing the leaf once.

Safe by construction: a ``KeptElement`` is an ordinary ``domish.Element`` for everyone, but
any access that could lead to a change drops the kept text of the child that holds it (the
``attributes`` and ``children`` containers, and setting any attribute but ``parent``). Pure
reads that hand out nothing mutable (``getAttribute``, ``str()``, ``elements()``, child
look-up by name, ...) keep it, and the elements they hand out are themselves
``KeptElement``. The stanza itself stays a plain ``domish.Element``: its start tag is always
written from its current attributes (the router stamps ``from``), and its list of children
may change freely (stanza-ids, delay stamps, copies that share children): only the children
carry text.

What the parser refuses to keep (the full serializer writes those): children that use a
prefix declared outside themselves (on the stream root or the stanza), and children with an
element or attribute in a content namespace other than the one in scope (the serializer
folds jabber:client and jabber:server into the stream's own).
"""

from __future__ import annotations

from twisted.words.xish import domish
from twisted.words.xish.domish import IElement

_Element = domish.Element


class KeptElement(_Element):
    """A parsed child of a stanza (or a descendant of one) that may still hold its text.

    Instance state, set by the parser through ``__dict__``: the usual domish attributes,
    ``_holder`` (the stanza's direct child whose text covers this element; itself for that
    child), and on the holder ``_kept`` (its text, or None once dropped) and ``_scope`` (the
    default namespace it was written in).
    """

    def _drop(self) -> None:
        self.__dict__["_holder"].__dict__["_kept"] = None

    # -- the mutable parts: reaching them drops the kept text

    @property
    def attributes(self) -> dict:
        self._drop()
        return self.__dict__["attributes"]

    @attributes.setter
    def attributes(self, value: dict) -> None:
        self._drop()
        self.__dict__["attributes"] = value

    @property
    def children(self) -> list:
        self._drop()
        return self.__dict__["children"]

    @children.setter
    def children(self, value: list) -> None:
        self._drop()
        self.__dict__["children"] = value

    def __setattr__(self, key: str, value: object) -> None:
        if key != "parent":  # moving it under another parent changes nothing in it
            self._drop()
        object.__setattr__(self, key, value)

    # -- reads that hand out nothing mutable keep it (domish's own, minus the drop)

    def __getattr__(self, key: str):
        state = self.__dict__
        if "children" not in state:  # not built yet (copy, pickle): no children to look up
            raise AttributeError(key)
        for child in state["children"]:
            if type(child) is not str and IElement.providedBy(child) and child.name == key:
                return child
        if key.startswith("_"):
            raise AttributeError(key)
        return None

    def __getitem__(self, key):
        return self.__dict__["attributes"][self._dqa(key)]

    def __str__(self) -> str:
        for child in self.__dict__["children"]:
            if isinstance(child, str):
                return child
        return ""

    __unicode__ = __str__

    def getAttribute(self, attribname, default=None):  # noqa: N802 (domish's name)
        return self.__dict__["attributes"].get(attribname, default)

    def hasAttribute(self, attrib) -> bool:  # noqa: N802
        return self._dqa(attrib) in self.__dict__["attributes"]

    def compareAttribute(self, attrib, value) -> bool:  # noqa: N802
        return self.__dict__["attributes"].get(self._dqa(attrib), None) == value

    def elements(self, uri=None, name=None):
        children = self.__dict__["children"]
        if name is None:
            return domish.generateOnlyInterface(children, IElement)
        return domish.generateElementsQNamed(children, name, uri)

    def firstChildElement(self):  # noqa: N802
        for child in self.__dict__["children"]:
            if IElement.providedBy(child):
                return child
        return None


def kept_text(element: object, scope: str) -> str | None:
    """The text ``element`` arrived as, if it may stand for it where the default namespace
    in force is ``scope``; None when it must be serialized."""
    if type(element) is not KeptElement:
        return None
    state = element.__dict__
    text = state.get("_kept")
    # a shallow copy shares _holder with its original: only the holder's own text counts
    if text is None or state["_holder"] is not element or state["_scope"] != scope:
        return None
    return text


def drop_kept(element: domish.Element) -> None:
    """Forget the kept text of ``element`` and of every descendant (tests, the full path)."""
    for child in element.__dict__.get("children", ()):
        if type(child) is KeptElement:
            child.__dict__["_kept"] = None
            drop_kept(child)
