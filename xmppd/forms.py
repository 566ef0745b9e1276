# -*- test-case-name: tests.unit.test_forms -*-
"""XEP-0004 data forms: read a client's ``<x xmlns='jabber:x:data'/>``, build our own.

Pubsub node configuration and publish-options (XEP-0060), MAM queries (XEP-0313) and extended
disco#info (XEP-0128, hashed by XEP-0115) all carry their parameters in data forms, so the
parsing rules live here once. Parsing checks what XEP-0004 makes a form *malformed* (a field
without ``var``, two fields with one ``var``, two values in a single-valued field, a boolean
that is not 1/0/true/false, a JID that RFC 7622 refuses, a bad ``<option/>``); everything else
is kept, including fields the caller does not know, so that the using protocol decides what an
unknown field means (XEP-0004 says ignore it; XEP-0060 publish-options says
``precondition-not-met``).

Every problem is a ``FormError``: a ``StanzaError`` (``bad-request`` unless said otherwise)
whose text names the field, so a handler can let it propagate and the dispatcher answers with
it. XEP-0004 §5 suggests ``not-acceptable`` for valid-looking but unacceptable data; a using
protocol that wants that catches ``FormError`` and re-raises with ``error.text``.

Values are kept as the XML character data the peer sent (XEP-0115 hashes exactly that); the
``get_*`` methods convert them on demand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID, InvalidJID, parse_jid

FORM_TYPES = frozenset(("form", "submit", "cancel", "result"))
# XEP-0004 §3.3. A type we do not know is text-single (XEP-0004 §3.3: "MUST be assumed").
SINGLE_VALUE_TYPES = frozenset(
    ("boolean", "fixed", "jid-single", "list-single", "text-private", "text-single")
)
MULTI_VALUE_TYPES = frozenset(("hidden", "jid-multi", "list-multi", "text-multi"))
FIELD_TYPES = SINGLE_VALUE_TYPES | MULTI_VALUE_TYPES
LIST_TYPES = frozenset(("list-single", "list-multi"))
JID_TYPES = frozenset(("jid-single", "jid-multi"))

FORM_TYPE = "FORM_TYPE"  # XEP-0068: the hidden field that names the form's namespace

_TRUE = frozenset(("1", "true"))
_FALSE = frozenset(("0", "false"))
# ASCII digits only: int() would also take "٣", "1_000" and " 7 ".
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")

_T = TypeVar("_T")


class FormError(StanzaError):
    """A malformed or unacceptable form; ``field`` is the ``var`` at fault, when there is one."""

    def __init__(self, text: str, field: str | None = None,
                 condition: str = "bad-request") -> None:
        super().__init__(condition, text)
        self.field = field


def _shown(text: str) -> str:
    """Peer text as an error message quotes it: short, so a huge value is not echoed back."""
    return text if len(text) <= 60 else text[:57] + "..."


def _field_error(var: str | None, problem: str) -> FormError:
    named = f"field '{_shown(var)}'" if var is not None else "field"
    return FormError(f"{named} {problem}", var)


@dataclass(frozen=True)
class Option:
    """One choice of a list-single or list-multi field."""

    value: str
    label: str | None = None


@dataclass(frozen=True)
class Field:
    """One ``<field/>``: ``type`` is None when the sender left it out (allowed in submit and
    result forms, XEP-0004 §3.2); ``values`` are the character data of its ``<value/>``s."""

    var: str | None
    type: str | None = None
    values: tuple[str, ...] = ()
    label: str | None = None
    desc: str | None = None
    required: bool = False
    options: tuple[Option, ...] = ()

    @property
    def value(self) -> str | None:
        """The first value, or None when there is none."""
        return self.values[0] if self.values else None

    def to_element(self) -> domish.Element:
        element = domish.Element((ns.DATA_FORMS, "field"))
        for key in ("var", "type", "label"):
            if getattr(self, key) is not None:
                element[key] = getattr(self, key)
        if self.desc is not None:
            element.addElement("desc", content=self.desc)
        if self.required:
            element.addElement("required")
        for value in self.values:
            element.addElement("value", content=value)
        for option in self.options:
            option_element = element.addElement("option")
            if option.label is not None:
                option_element["label"] = option.label
            option_element.addElement("value", content=option.value)
        return element


FieldValue = str | bool | int | JID | Sequence[str | JID] | None


def make_field(var: str | None, value: FieldValue = None, *, type: str | None = None,
               label: str | None = None, desc: str | None = None, required: bool = False,
               options: Iterable[str | tuple[str, str] | Option] = ()) -> Field:
    """A field from Python values: booleans become "1"/"0", ints and JIDs their text, a
    sequence several values; ``options`` are values or (value, label) pairs.

    >>> make_field("pubsub#deliver_payloads", True, type="boolean").values
    ('1',)
    """
    return Field(var, type, _to_values(value), label, desc, required,
                 tuple(_to_option(option) for option in options))


def _to_values(value: FieldValue) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, bool):
        return ("1" if value else "0",)
    if isinstance(value, str | int | JID):
        return (str(value),)
    return tuple(str(item) for item in value)


def _to_option(option: str | tuple[str, str] | Option) -> Option:
    if isinstance(option, Option):
        return option
    if isinstance(option, str):
        return Option(option)
    value, label = option
    return Option(value, label)


def form_type_field(form_type: str) -> Field:
    """The XEP-0068 hidden FORM_TYPE field."""
    return Field(FORM_TYPE, "hidden", (form_type,))


@dataclass(frozen=True)
class Form:
    """One data form. ``field_list`` is every field in document order (fixed fields without a
    var included: order is how people read a form); ``fields`` maps each var to its field,
    FORM_TYPE included. ``reported`` and ``items`` are the table of a multi-item result."""

    type: str
    field_list: tuple[Field, ...] = ()
    title: str | None = None
    instructions: tuple[str, ...] = ()
    form_type: str | None = None
    reported: tuple[Field, ...] = ()
    items: tuple[tuple[Field, ...], ...] = ()

    @classmethod
    def build(cls, type: str, fields: Iterable[Field] = (), *, form_type: str | None = None,
              title: str | None = None, instructions: Iterable[str] = ()) -> Form:
        """A form to send; ``form_type`` adds the hidden FORM_TYPE field first (XEP-0068)."""
        if type not in FORM_TYPES:
            raise ValueError(f"unknown data form type {type!r}")
        field_list = (form_type_field(form_type),) if form_type is not None else ()
        field_list += tuple(fields)
        names = [each.var for each in field_list if each.var is not None]
        if len(set(names)) != len(names):
            raise ValueError("two fields with the same var")
        return cls(type, field_list, title, tuple(instructions), form_type)

    @functools.cached_property
    def fields(self) -> dict[str, Field]:
        return {each.var: each for each in self.field_list if each.var is not None}

    # ------------------------------------------------------------------ reading values

    def __contains__(self, var: str) -> bool:
        return var in self.fields

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields.values())

    def unknown_fields(self, known: Collection[str]) -> list[str]:
        """The vars, other than FORM_TYPE, that the caller does not know, in document order."""
        return [var for var in self.fields if var != FORM_TYPE and var not in known]

    def expect_form_type(self, form_type: str) -> None:
        """Refuse a form whose XEP-0068 FORM_TYPE is missing or another one."""
        if self.form_type != form_type:
            found = ("no FORM_TYPE" if self.form_type is None
                     else f"FORM_TYPE '{_shown(self.form_type)}'")
            raise FormError(f"expected a form with FORM_TYPE '{form_type}', got {found}",
                            FORM_TYPE)

    def get_values(self, var: str) -> tuple[str, ...]:
        """All the values of a field, () when it is absent."""
        found = self.fields.get(var)
        return found.values if found is not None else ()

    def get_text(self, var: str, default: str | None = None) -> str | None:
        """A single-valued field's text: ``default`` when absent, "" when sent without value."""
        found = self.fields.get(var)
        if found is None:
            return default
        return _single(found) or ""

    def get_bool(self, var: str, default: bool | None = None) -> bool | None:
        """A boolean field (1/0/true/false); ``default`` when absent or empty."""
        return self._get(var, default, _to_bool)

    def get_int(self, var: str, default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        """An integer field within [minimum, maximum]; ``default`` when absent or empty."""
        def convert(var: str, text: str) -> int:
            return _to_int(var, text, minimum, maximum)
        return self._get(var, default, convert)

    def get_choice(self, var: str, choices: Collection[str],
                   default: str | None = None) -> str | None:
        """A list-single field whose value must be one of ``choices``."""
        def convert(var: str, text: str) -> str:
            return _to_choice(var, text, choices)
        return self._get(var, default, convert)

    def get_choices(self, var: str, choices: Collection[str]) -> tuple[str, ...]:
        """A list-multi field's values, each one of ``choices``; () when absent."""
        return tuple(_to_choice(var, text, choices) for text in self.get_values(var))

    def get_jid(self, var: str, default: JID | None = None) -> JID | None:
        """A jid-single field, prepared; ``default`` when absent or empty."""
        return self._get(var, default, _to_jid)

    def get_jids(self, var: str) -> tuple[JID, ...]:
        """A jid-multi field's JIDs, prepared, duplicates dropped (XEP-0004 §3.3)."""
        jids = (_to_jid(var, text) for text in self.get_values(var) if text)
        return tuple(dict.fromkeys(jids))

    def _get(self, var: str, default: _T | None,
             convert: Callable[[str, str], _T]) -> _T | None:
        found = self.fields.get(var)
        text = _single(found) if found is not None else None
        return default if not text else convert(var, text)

    # ------------------------------------------------------------------ writing

    def to_element(self) -> domish.Element:
        """The ``<x xmlns='jabber:x:data'/>`` to put in a stanza."""
        element = domish.Element((ns.DATA_FORMS, "x"))
        element["type"] = self.type
        if self.title is not None:
            element.addElement("title", content=self.title)
        for text in self.instructions:
            element.addElement("instructions", content=text)
        for each in self.field_list:
            element.addChild(each.to_element())
        if self.reported:
            reported = element.addElement("reported")
            for each in self.reported:
                reported.addChild(each.to_element())
        for row in self.items:
            item = element.addElement("item")
            for each in row:
                item.addChild(each.to_element())
        return element


def _single(found: Field) -> str | None:
    if len(found.values) > 1:
        raise _field_error(found.var, "takes one value")
    return found.value


def _to_bool(var: str | None, text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _field_error(var, f"is a boolean (1, 0, true or false), not '{_shown(text)}'")


def _to_int(var: str, text: str, minimum: int | None, maximum: int | None) -> int:
    if not _INTEGER.fullmatch(text):
        raise _field_error(var, f"is an integer, not '{_shown(text)}'")
    number = int(text)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" up to {maximum}"
        raise _field_error(var, f"is an integer{low}{high}, not {number}")
    return number


def _to_choice(var: str, text: str, choices: Collection[str]) -> str:
    if text not in choices:
        raise _field_error(var, f"is one of {', '.join(sorted(choices))}, not '{_shown(text)}'")
    return text


def _to_jid(var: str | None, text: str) -> JID:
    try:
        return parse_jid(text)
    except InvalidJID as error:
        raise _field_error(var, f"holds a bad JID '{_shown(text)}': {error}") from None


# ---------------------------------------------------------------------- parsing


def _text(element: domish.Element) -> str:
    """All the character data directly inside ``element``."""
    return "".join(child for child in element.children if isinstance(child, str))


def _children(element: domish.Element, name: str) -> list[domish.Element]:
    return [child for child in element.elements() if child.name == name
            and child.uri == ns.DATA_FORMS]


def _optional_text(element: domish.Element, name: str, var: str | None = None) -> str | None:
    found = _children(element, name)
    if len(found) > 1:
        raise _field_error(var, f"has more than one <{name}/>") if var else FormError(
            f"more than one <{name}/>")
    return _text(found[0]) if found else None


def is_form(element: domish.Element) -> bool:
    return element.uri == ns.DATA_FORMS and element.name == "x"


def parse_form(element: domish.Element) -> Form:
    """The form that ``<x xmlns='jabber:x:data'/>`` holds; FormError if it is malformed."""
    if not is_form(element):
        raise FormError(f"expected <x xmlns='{ns.DATA_FORMS}'/>, got <{element.name}/>")
    form_kind = element.getAttribute("type")
    if form_kind not in FORM_TYPES:
        raise FormError(f"data form type must be one of {', '.join(sorted(FORM_TYPES))}, "
                        f"not {_shown(repr(form_kind))}")
    field_list = _parse_fields(element, form_kind)
    reported = _children(element, "reported")
    if len(reported) > 1:
        raise FormError("more than one <reported/>")
    form_type_fields = [each for each in field_list if each.var == FORM_TYPE]
    return Form(
        type=form_kind,
        field_list=field_list,
        title=_optional_text(element, "title"),
        instructions=tuple(_text(each) for each in _children(element, "instructions")),
        form_type=_form_type(form_type_fields[0], form_kind) if form_type_fields else None,
        reported=_parse_fields(reported[0], form_kind) if reported else (),
        items=tuple(_parse_fields(item, form_kind) for item in _children(element, "item")),
    )


def _parse_fields(parent: domish.Element, form_kind: str) -> tuple[Field, ...]:
    field_list = tuple(_parse_field(each, form_kind) for each in _children(parent, "field"))
    seen: set[str] = set()
    for each in field_list:
        if each.var in seen:
            raise _field_error(each.var, "appears twice")
        if each.var is not None:
            seen.add(each.var)
    return field_list


def _parse_field(element: domish.Element, form_kind: str) -> Field:
    var = element.getAttribute("var")
    declared = element.getAttribute("type")
    if var is None and declared != "fixed":
        raise FormError(f"a field of type '{declared or 'text-single'}' needs a var")
    values = tuple(_text(value) for value in _children(element, "value"))
    # XEP-0004 §3.2: without a type, a form's field is text-single; a submit or result
    # leaves the type to context, so only the typed getters can check it.
    kind = declared if declared in FIELD_TYPES else ("text-single" if declared else None)
    if kind is None and form_kind == "form":
        kind = "text-single"
    if kind in SINGLE_VALUE_TYPES and len(values) > 1:
        raise _field_error(var, f"of type {kind} takes one value")
    if kind == "boolean":
        for text in values:
            _to_bool(var, text)
    elif kind in JID_TYPES:
        for text in values:
            _to_jid(var, text)
    return Field(
        var=var,
        type=declared,
        values=values,
        label=element.getAttribute("label"),
        desc=_optional_text(element, "desc", var),
        required=bool(_children(element, "required")),
        options=_parse_options(element, var, kind),
    )


def _parse_options(element: domish.Element, var: str | None,
                   kind: str | None) -> tuple[Option, ...]:
    found = _children(element, "option")
    if found and kind not in LIST_TYPES and kind is not None:
        raise _field_error(var, f"of type {kind} cannot have options")
    options = []
    for option in found:
        values = _children(option, "value")
        if len(values) != 1:
            raise _field_error(var, "has an option without exactly one value")
        options.append(Option(_text(values[0]), option.getAttribute("label")))
    if len({option.value for option in options}) != len(options):
        raise _field_error(var, "offers the same option twice")
    return tuple(options)


def _form_type(found: Field, form_kind: str) -> str | None:
    """XEP-0068 §3 and §7: FORM_TYPE names the form only when hidden (or, in a submitted
    form, untyped); any other FORM_TYPE field is an ordinary field."""
    if found.type != "hidden" and not (form_kind == "submit" and found.type is None):
        return None
    distinct = set(found.values)
    if len(distinct) != 1:
        raise _field_error(FORM_TYPE, "needs exactly one value")
    return distinct.pop()


def find_form(parent: domish.Element, form_type: str | None = None) -> Form | None:
    """The first data form directly inside ``parent`` (whose FORM_TYPE is ``form_type`` when
    given), parsed; None when there is none."""
    for child in parent.elements():
        if is_form(child):
            form = parse_form(child)
            if form_type is None or form.form_type == form_type:
                return form
    return None


# ---------------------------------------------------------------------- XEP-0128


def extended_info(query: domish.Element) -> list[Form]:
    """The XEP-0128 forms of a disco#info ``<query/>``, in document order; each must be a
    result form. Forms without FORM_TYPE are returned too: XEP-0115 ignores them, others may
    not."""
    forms = [parse_form(child) for child in query.elements() if is_form(child)]
    for form in forms:
        if form.type != "result":
            raise FormError(f"extended disco#info forms are of type result, not '{form.type}'")
    return forms


def add_extended_info(query: domish.Element, form_type: str,
                      fields: Iterable[Field]) -> domish.Element:
    """Append an XEP-0128 result form with this FORM_TYPE to a disco#info ``<query/>``."""
    return query.addChild(Form.build("result", fields, form_type=form_type).to_element())
