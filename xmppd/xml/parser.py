# -*- test-case-name: tests.unit.test_xml_parser -*-
"""A streaming parser for one XML stream, restricted as RFC 6120 §11 demands.

Built on pyexpat directly rather than on ``domish.ExpatElementStream``, which accepts
DOCTYPEs, comments and processing instructions and has no depth limit. It turns bytes into
one ``domish.Element`` per top-level child of the stream root (stanzas and nonzas).

Conventions of the elements it builds (the same as domish's own expat stream, except for
``xml:`` attributes, so ``element.toXml()`` round-trips):

* ``uri`` is the element's namespace, ``""`` for no namespace; ``defaultUri`` is the default
  namespace in scope inside it; ``localPrefixes`` holds the prefixes it declares.
* Attributes in the XML namespace are stored under string keys such as ``"xml:lang"``
  (domish uses a ``(ns.XML, "lang")`` tuple; the rest of xmppd reads ``"xml:lang"``). Other
  namespaced attributes use domish's ``(uri, name)`` tuple keys.
* A stanza's ``parent`` is None: it does not keep the stream root alive.

Decisions worth knowing:

* Non-whitespace text directly inside the stream root is ``bad-format``.
* Undefined entity references are ``restricted-xml`` (RFC 6120 §11.1 forbids every entity
  reference but the five predefined ones); character references are allowed.
* An XML declaration anywhere but the very start is ``restricted-xml``, as any other PI.
* Every run of input not yet turned into a completed event at the stream level (the header,
  a stanza, an unfinished tag between stanzas) may be at most ``max_stanza_size`` bytes;
  beyond that the stream is refused with ``policy-violation`` while the bytes arrive.

Memory (an idle client session is mostly its parser and its TLS state, issue 6): expat's
text buffer (8 KiB) is allocated only while ``feed()`` runs; ``release_if_idle()`` lets an
idle stream drop its expat parser altogether (about 12 KiB of buffers and tables), and the
next ``feed()`` continues the stream in a new one, primed with a copy of the stream root's
start tag (so the positions in a later expat error message count from that copy).

Pass-through (xmppd.xml.passthrough): with ``pass_through`` (the default) a direct child of
a message or presence that has element children of its own becomes a ``KeptElement`` (so do
its descendants) keeping the text it arrived as, sliced from the input by expat's byte
positions; the serializer writes that text while nothing changed it. The parser holds the
input bytes of an unfinished child (at most ``max_stanza_size``, in one buffer that grows in
place) between ``feed()`` calls, nothing once it is complete.
"""

from __future__ import annotations

import pyexpat
import re
from collections.abc import Callable
from dataclasses import dataclass
from pyexpat import errors as expat_errors
from typing import NoReturn

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.xml.passthrough import KeptElement
from xmppd.xml.serializer import CONTENT_NAMESPACES, escape_attribute

# Parse input in slices no bigger than this, so an oversized stanza is noticed after at most
# this many extra bytes even when it arrives in one huge chunk.
_SLICE = 65536
_XML_WHITESPACE = " \t\r\n"
_UNSET = object()
_Element = domish.Element
_ROOT_NAME = re.compile(rb"<([^\s/>]+)")
_KEPT_KINDS = frozenset(("message", "presence"))  # stanzas whose children keep their text
_new_object = object.__new__

# The byte order marks and NUL bytes that give away UTF-16 or UTF-32 at the start of a stream.
_WIDE_ENCODING_MARKS = (b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")
_UTF8_ONLY = "XMPP streams are UTF-8 (RFC 6120 §11.6)"

_ERROR_CONDITIONS = {
    expat_errors.codes[expat_errors.XML_ERROR_UNBOUND_PREFIX]: "bad-namespace-prefix",
    expat_errors.codes[expat_errors.XML_ERROR_UNDEFINED_ENTITY]: "restricted-xml",
    expat_errors.codes[expat_errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING]: "restricted-xml",
    expat_errors.codes[expat_errors.XML_ERROR_MISPLACED_XML_PI]: "restricted-xml",
    expat_errors.codes[expat_errors.XML_ERROR_UNKNOWN_ENCODING]: "unsupported-encoding",
    expat_errors.codes[expat_errors.XML_ERROR_INCORRECT_ENCODING]: "unsupported-encoding",
}


@dataclass(frozen=True)
class StreamHeader:
    """The stream root's start tag, for the stream layer to check (RFC 6120 §4.7)."""

    uri: str | None  # the root's namespace; ns.STREAMS for a real stream (the caller checks)
    name: str  # the root's local name, "stream"
    attributes: dict[str, str]  # to/from/id/version, "xml:lang"; others as "{uri}name"
    default_namespace: str | None  # xmlns='...' on the root (jabber:client...), None if absent
    prefixes: dict[str, str]  # prefix -> namespace declared on the root


class _Stopped(Exception):
    """Raised inside expat to end parsing quietly: the stream is over or was stopped."""


def _forbid(construct: str) -> Callable[..., NoReturn]:
    def handler(*_args: object) -> NoReturn:
        raise StreamError("restricted-xml", f"{construct} not allowed in XMPP (RFC 6120 §11.1)")

    return handler


_reject_doctype = _forbid("DTDs are")
_reject_entity = _forbid("entities are")
_reject_comment = _forbid("comments are")
_reject_processing_instruction = _forbid("processing instructions are")


def _reject_encoding(_version: str | None, encoding: str | None, _standalone: int) -> None:
    if encoding is not None and encoding.upper() not in ("UTF-8", "UTF8"):
        raise StreamError("unsupported-encoding", _UTF8_ONLY)


def _start_tag(name: bytes, default: object, prefixes: dict[str, str]) -> bytes:
    """A start tag with ``name`` as written that declares the same namespaces."""
    declarations = [b"<", name]
    if default is not _UNSET:
        declarations.append(f" xmlns='{escape_attribute(default)}'".encode())
    for prefix, uri in prefixes.items():
        declarations.append(f" xmlns:{prefix}='{escape_attribute(uri)}'".encode())
    declarations.append(b">")
    return b"".join(declarations)


def _qualify(attributes: dict[str, str]) -> dict:
    """Rename expat's ``"uri name"`` attribute keys to xmppd's keys (see the module docstring)."""
    qualified: dict = {}
    for key, value in attributes.items():
        uri, separator, name = key.rpartition(" ")
        if not separator:
            qualified[key] = value
        elif uri == ns.XML:
            qualified["xml:" + name] = value
        else:
            qualified[(uri, name)] = value
    return qualified


# Element names as expat gives them ("uri local") split once: a stream uses few names. Shared
# by every parser and emptied when full, so no peer can make it grow without bound.
_split_names: dict[str, tuple[str, str]] = {}
_SPLIT_NAMES_MAX = 2048


def _split_name(name: str) -> tuple[str, str]:
    uri, _, local = name.rpartition(" ")
    if len(_split_names) >= _SPLIT_NAMES_MAX:
        _split_names.clear()
    split = _split_names[name] = (uri, local)
    return split


class StreamParser:
    """Parse one XML stream; make a new one for every stream restart.

    Exceptions raised by the callbacks propagate out of ``feed()`` and end the parser,
    so the stream layer may reject a header or element by raising ``StreamError``.
    """

    # One parser per stream, alive as long as the stream: with 31 attributes an instance dict
    # no longer shares its class's keys and costs 1.6 KiB; slots cost 0.3 KiB.
    __slots__ = (
        "_active", "_anchor", "_buffer", "_buffer_base", "_carry", "_carry_base",
        "_child_start", "_current", "_depth", "_failure", "_fed", "_finished", "_holder",
        "_holder_ok", "_keeping", "_max_depth", "_max_stanza_size", "_on_element",
        "_on_stream_end", "_on_stream_start", "_parser", "_pass_through", "_pending_default",
        "_pending_prefixes", "_prologue", "_refused", "_resume_tag", "_root_default",
        "_root_refused", "_slice", "_stopped",
    )

    def __init__(
        self,
        on_stream_start: Callable[[StreamHeader], None],
        on_element: Callable[[domish.Element], None],
        on_stream_end: Callable[[], None],
        max_stanza_size: int = 262144,
        max_depth: int = 64,
        pass_through: bool = True,
    ) -> None:
        self._on_stream_start = on_stream_start
        self._on_element = on_element
        self._on_stream_end = on_stream_end
        self._max_stanza_size = max_stanza_size
        self._max_depth = max_depth
        self._slice = max(1, min(_SLICE, max_stanza_size))

        self._fed = 0  # bytes handed to expat so far
        self._anchor = 0  # where the stream-level run being measured began
        self._depth = 0  # open elements, the stream root included
        self._current: domish.Element | None = None  # innermost open element below the root
        self._root_default = ""
        self._pending_default: object = _UNSET
        self._pending_prefixes: dict[str, str] = {}
        self._stopped = False
        self._finished = False
        self._failure: StreamError | None = None

        # pass-through (module docstring): does the open stanza keep its children's text,
        # the namespaces its children may not use for that, the child being kept (and where
        # it began, and whether it still qualifies), and the input bytes it spans
        self._pass_through = pass_through
        self._keeping = False
        self._root_refused: frozenset[str] = frozenset()
        self._refused: frozenset[str] = frozenset()
        self._holder: KeptElement | None = None
        self._child_start = 0  # where the open direct child of the stanza began
        self._holder_ok = False
        self._buffer = b""  # the input from absolute position _buffer_base on
        self._buffer_base = 0
        # what must be kept of the input when a feed() ends (a bytearray that grows in place:
        # a big child sent a byte at a time is not copied again at every byte) and where
        # it begins
        self._carry: bytes | bytearray = b""
        self._carry_base = 0

        self._active = False  # fed since the last release_if_idle()
        self._prologue = bytearray()  # the bytes up to the root's start tag, for its name
        self._resume_tag = b""  # a copy of the root's start tag, to continue in a new parser
        self._parser: pyexpat.XMLParserType | None = self._new_expat()
        self._parser.StartElementHandler = self._on_root_start

    def _new_expat(self) -> pyexpat.XMLParserType:
        parser = pyexpat.ParserCreate("UTF-8", " ")
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        if hasattr(parser, "SetReparseDeferralEnabled"):
            # Expat >= 2.6 may hold back a completed tag until more data arrives; a stream
            # would stall. Re-parse cost stays bounded by max_stanza_size.
            parser.SetReparseDeferralEnabled(False)
        parser.XmlDeclHandler = _reject_encoding
        parser.StartDoctypeDeclHandler = _reject_doctype
        parser.EntityDeclHandler = _reject_entity
        parser.UnparsedEntityDeclHandler = _reject_entity
        parser.ExternalEntityRefHandler = _reject_entity
        parser.SkippedEntityHandler = _reject_entity
        parser.CommentHandler = _reject_comment
        parser.ProcessingInstructionHandler = _reject_processing_instruction
        parser.StartNamespaceDeclHandler = self._on_namespace
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_text
        return parser

    def feed(self, data: bytes) -> None:
        """Parse the next bytes of the stream; raise StreamError on bad input.

        Once an error has been raised every later call raises it again; after the stream
        has ended (or ``stop()``) further data is ignored.
        """
        if self._failure is not None:
            raise StreamError(self._failure.condition, self._failure.text)
        if self._finished:
            return
        if self._depth == 0:
            self._check_prologue(data)
        self._active = True
        parser = self._parser or self._resume()
        # expat hands over buffered text at the end of every Parse() anyway: between feeds
        # the buffer holds nothing, so it exists only while we parse.
        parser.buffer_text = True
        try:
            if len(data) <= self._slice:  # _parse(data), inlined for the common case
                if self._pass_through:
                    self._hold_input(data)
                self._fed += len(data)
                parser.Parse(data, False)
                if self._fed - self._anchor > self._max_stanza_size:
                    self._too_big()
                if self._pass_through:
                    self._release_input()
            else:
                for start in range(0, len(data), self._slice):
                    self._parse(data[start : start + self._slice])
        except _Stopped:
            self._finish()
        except pyexpat.ExpatError as error:
            condition = _ERROR_CONDITIONS.get(error.code, "not-well-formed")
            self._fail(StreamError(condition, str(error)))
            raise self._failure from None
        except StreamError as error:
            self._fail(error)
            raise
        except BaseException:
            self._fail(StreamError("internal-server-error"))
            raise
        else:
            parser.buffer_text = False

    def stop(self) -> None:
        """Deliver nothing more: the rest of the current chunk and later data are ignored.

        Safe to call from a callback, e.g. when an element ends this stream (a restart).
        """
        self._stopped = True
        self._finish()

    def release_if_idle(self) -> bool:
        """Free expat's memory if nothing was fed since the last call and the stream sits
        between stanzas; the next ``feed()`` continues in a new expat parser.

        Meant to be called for every stream from one periodic timer: a busy stream only
        has its flag reset, an idle one gives back about 12 KiB. True if released.
        """
        if self._active:
            self._active = False
            return False
        parser = self._parser
        if (parser is None or self._depth != 1 or self._current is not None
                or parser.CurrentByteIndex != self._fed):  # expat holds part of a tag
            return False
        self._parser = None
        return True

    def between_stanzas(self) -> bool:
        """True when the stream is open and expat holds no part of a stanza or tag: what
        framed transports check after each message (RFC 7395: one whole element each)."""
        parser = self._parser
        return (self._depth == 1 and self._current is None
                and (parser is None or parser.CurrentByteIndex == self._fed))

    def _resume(self) -> pyexpat.XMLParserType:
        """A new expat parser inside a copy of the stream root, where the old one stopped."""
        parser = self._new_expat()
        parser.StartNamespaceDeclHandler = None
        parser.StartElementHandler = None
        parser.Parse(self._resume_tag, False)
        parser.StartNamespaceDeclHandler = self._on_namespace
        parser.StartElementHandler = self._on_start
        self._fed = self._anchor = len(self._resume_tag)
        self._carry = b""
        self._parser = parser
        return parser

    def _finish(self) -> None:
        self._finished = True
        self._parser = None  # expat's buffers go now, not when a cycle collection finds them
        self._buffer = self._carry = b""

    def _fail(self, error: StreamError) -> None:
        self._failure = error
        self._parser = None
        self._buffer = self._carry = b""

    @staticmethod
    def _refused_in(default: str, prefixes: dict[str, str],
                    outer: frozenset[str] = frozenset()) -> frozenset[str]:
        """The namespaces a kept child may not use (module docstring of xmppd.xml.passthrough):
        those bound to prefixes outside it (``prefixes``, and ``outer``'s), and the content
        namespaces other than the ``default`` it is written in."""
        return CONTENT_NAMESPACES.difference((default,)).union(prefixes.values(), outer)

    # -- input accounting

    def _parse(self, chunk: bytes) -> None:
        if self._pass_through:
            self._hold_input(chunk)
        self._fed += len(chunk)
        self._parser.Parse(chunk, False)
        if self._fed - self._anchor > self._max_stanza_size:
            self._too_big()
        if self._pass_through:
            self._release_input()

    def _hold_input(self, chunk: bytes) -> None:
        """Make the bytes expat is about to parse (and what was carried) readable by their
        absolute positions while it does."""
        carry = self._carry
        if carry:
            carry += chunk
            self._buffer = carry
            self._buffer_base = self._carry_base
        else:
            self._buffer = chunk
            self._buffer_base = self._fed

    def _release_input(self) -> None:
        """After a chunk: let go of it, but carry the bytes a later kept text may need: from
        the child being kept, or else from the first byte expat has not turned into an
        event yet (a tag cut in two)."""
        parser = self._parser
        buffer = self._buffer
        self._buffer = carry = b""
        if parser is not None:
            # a direct child of a keeping stanza is open: it may turn out to keep its text
            start = (self._child_start if self._keeping and self._depth > 2
                     else parser.CurrentByteIndex)
            if start < self._fed:
                if type(buffer) is bytearray:  # the carry itself, grown by this chunk
                    del buffer[:start - self._buffer_base]  # bytearray drops a head cheaply
                    carry = buffer
                else:
                    carry = bytearray(memoryview(buffer)[start - self._buffer_base:])
                self._carry_base = start
        self._carry = carry

    def _too_big(self) -> NoReturn:
        raise StreamError(
            "policy-violation", f"stanza larger than {self._max_stanza_size} bytes"
        )

    def _check_prologue(self, data: bytes) -> None:
        # Expat would quietly switch to UTF-16 on a byte order mark or a leading NUL.
        self._prologue += data  # a bytearray: no copying it all again for every byte fed
        head = self._prologue[:4]
        if head.startswith(_WIDE_ENCODING_MARKS) or b"\x00" in head:
            self._failure = StreamError("unsupported-encoding", _UTF8_ONLY)
            raise self._failure

    # -- expat handlers

    def _on_namespace(self, prefix: str | None, uri: str | None) -> None:
        if prefix is None:
            self._pending_default = uri or ""
        else:
            self._pending_prefixes[prefix] = uri or ""

    def _on_root_start(self, name: str, attributes: dict[str, str]) -> None:
        uri, _, local = name.rpartition(" ")
        default = self._pending_default
        self._pending_default = _UNSET
        prefixes = self._pending_prefixes
        self._pending_prefixes = {}
        self._root_default = "" if default is _UNSET else default
        self._root_refused = self._refused_in(self._root_default, prefixes)
        self._depth = 1
        start = self._anchor = self._parser.CurrentByteIndex
        self._resume_tag = _start_tag(_ROOT_NAME.match(self._prologue, start)[1], default,
                                      prefixes)
        self._prologue = bytearray()
        self._parser.StartElementHandler = self._on_start
        header = StreamHeader(
            uri=uri or None,
            name=local,
            attributes={
                (key if isinstance(key, str) else "{%s}%s" % key): value
                for key, value in _qualify(attributes).items()
            },
            default_namespace=None if default is _UNSET else default,
            prefixes=prefixes,
        )
        self._on_stream_start(header)
        if self._stopped:
            raise _Stopped

    def _on_start(self, name: str, attributes: dict[str, str]) -> None:
        depth = self._depth = self._depth + 1
        if depth > self._max_depth:
            raise StreamError("policy-violation", f"elements nested deeper than {self._max_depth}")
        split = _split_names.get(name)
        if split is None:
            split = _split_name(name)
        uri, local = split
        parent = self._current
        default = declared = self._pending_default
        if default is _UNSET:
            default = self._root_default if parent is None else parent.defaultUri
        else:
            self._pending_default = _UNSET
        prefixes = self._pending_prefixes
        if prefixes:
            self._pending_prefixes = {}
        namespaced = False
        for key in attributes:
            if " " in key:  # expat's "uri name": a namespaced attribute
                attributes = _qualify(attributes)
                namespaced = True
                break
        keeping = self._keeping and parent is not None
        if keeping and depth > 3:
            # Below a direct child of the stanza: a KeptElement, its state set past its
            # setattr (which would drop the text not kept yet); the first makes that child
            # the holder of the text
            holder = self._holder
            if holder is None:
                holder = self._holder = parent
                refused = self._refused
                self._holder_ok = not (parent.uri in refused or any(
                    type(key) is tuple and key[0] in refused for key in parent.attributes))
            element = _new_object(KeptElement)
            state = element.__dict__
            state["localPrefixes"] = prefixes or {}
            state["uri"] = uri
            state["name"] = local
            state["defaultUri"] = default
            state["attributes"] = attributes
            state["children"] = []
            state["parent"] = parent
            state["_holder"] = holder
            if self._holder_ok and (uri in self._refused or namespaced and any(
                    type(key) is tuple and key[0] in self._refused for key in attributes)):
                self._holder_ok = False
            parent.__dict__["children"].append(element)
            self._current = element
            return
        # What domish.Element(...) would do, without its call and checks: the same instance
        # attributes in the same order (so instances still share their dict keys).
        element = _new_object(_Element)
        element.localPrefixes = prefixes or {}
        element.uri = uri
        element.name = local
        element.defaultUri = default
        element.attributes = attributes
        element.children = []
        element.parent = parent
        if parent is None:
            self._anchor = self._parser.CurrentByteIndex
            if self._pass_through and local in _KEPT_KINDS:
                self._keeping = True
                self._refused = (self._refused_in(default, prefixes, self._root_refused)
                                 if prefixes or declared is not _UNSET else self._root_refused)
        else:
            parent.children.append(element)
            if keeping:  # a direct child of the stanza: where its text would begin
                self._child_start = self._parser.CurrentByteIndex
        self._current = element

    def _keep(self, holder: domish.Element) -> None:
        """``holder`` (a direct child of the stanza with element children) ended: make it a
        KeptElement with its text sliced from the input. Leaves (a body, a chat state, a
        receipt request) never get here: measured (README, Performance), keeping a leaf's
        text costs more than writing it once."""
        self._holder = None
        if not self._holder_ok:
            return
        state = holder.__dict__
        buffer = self._buffer
        base = self._buffer_base
        start = self._child_start - base
        if start < 0:  # not in what was held: never expected, but never keep a wrong text
            return
        end = buffer.index(b">", self._parser.CurrentByteIndex - base) + 1  # its end tag's
        state["_kept"] = buffer[start:end].decode("utf-8")
        state["_scope"] = state["parent"].defaultUri
        state["_holder"] = holder
        holder.__class__ = KeptElement  # the same layout: domish.Element's, plus properties

    def _on_end(self, _name: str) -> None:
        self._depth -= 1
        element = self._current
        if element is None:
            self._finished = True
            self._on_stream_end()
            raise _Stopped
        parent = element.parent
        self._current = parent
        if element is self._holder:
            self._keep(element)
        elif parent is None:
            self._keeping = False
            # expat points at the start of the end tag; count the tag as "</name>".
            end = self._parser.CurrentByteIndex
            if end + len(element.name) + 3 - self._anchor > self._max_stanza_size:
                self._too_big()
            self._anchor = end
            self._on_element(element)
            if self._stopped:
                raise _Stopped

    def _on_text(self, text: str) -> None:
        element = self._current
        if element is None:
            if text.strip(_XML_WHITESPACE):
                raise StreamError("bad-format", "text outside stanzas")
            self._anchor = self._parser.CurrentByteIndex
            return
        children = element.__dict__["children"]  # not a KeptElement's: that would drop it
        if children and type(children[-1]) is str:
            children[-1] += text
        else:
            children.append(text)
