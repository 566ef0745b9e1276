# -*- test-case-name: tests.unit.test_pubsub_config -*-
"""Node configuration (XEP-0060 §8.2): the options we honour, their defaults, and the data
forms that carry them both ways, for the owner's configure form and for publish-options.

One table (``OPTIONS``) says, per ``pubsub#`` option, its form field type, label and
choices; reading a submitted form, writing the owner's form and comparing publish-options
preconditions all walk it, so adding an option is one line plus a dataclass field.

``max_items`` is None for ``max`` (XEP-0060 §16.4.1 "integer-or-max"): whatever the
service's limit is at the time, so a node created by OMEMO with ``max`` follows a limit an
admin raises later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xmppd import ns
from xmppd.forms import FORM_TYPE, Field, Form, FormError, make_field
from xmppd.pubsub.errors import PubSubError, shown

ACCESS_MODELS = ("open", "presence", "roster", "whitelist")  # no 'authorize': no approvals
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST_PUBLISHED = ("never", "on_sub", "on_sub_and_presence")
MAX = "max"


@dataclass(frozen=True)
class Limits:
    """What one service owner (an account's PEP, or a pubsub domain) may hold.

    ``max_items_per_node`` is also what ``max_items=max`` means; ``max_item_size`` counts the
    UTF-8 bytes of a payload as stored; ``max_page`` caps the items of one reply (XEP-0059).
    """

    max_nodes: int = 100
    max_items_per_node: int = 256
    max_item_size: int = 128 * 1024
    max_page: int = 100

    def __post_init__(self) -> None:
        for name in ("max_nodes", "max_items_per_node", "max_item_size", "max_page"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, not {value!r}")


@dataclass(frozen=True)
class NodeConfig:
    """One node's configuration, as stored; the defaults are a generic service's."""

    title: str = ""
    access_model: str = "open"
    roster_groups_allowed: tuple[str, ...] = ()
    publish_model: str = "publishers"
    max_items: int | None = 10
    persist_items: bool = True
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notify_config: bool = False
    notify_delete: bool = True
    notify_retract: bool = True
    send_last_published_item: str = "on_sub"

    def __post_init__(self) -> None:
        for option in OPTIONS:
            option.check(getattr(self, option.name))

    def kept_items(self, limits: Limits) -> int:
        """How many items the node keeps: none when it does not persist them."""
        if not self.persist_items:
            return 0
        return limits.max_items_per_node if self.max_items is None else self.max_items

    def to_json(self) -> dict[str, Any]:
        return {option.name: option.to_json(getattr(self, option.name)) for option in OPTIONS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], defaults: NodeConfig) -> NodeConfig:
        """A stored config; options it lacks (added since it was stored) take ``defaults``,
        options no longer known are dropped."""
        known = {option.name: option.from_json(data[option.name])
                 for option in OPTIONS if option.name in data}
        return dataclasses.replace(defaults, **known)


@dataclass(frozen=True)
class Option:
    """One ``pubsub#`` option: its field type, label and the values it takes."""

    name: str
    type: str
    label: str
    choices: tuple[str, ...] = ()
    refused: str | None = None  # the pubsub#errors condition for a value not in choices

    @property
    def var(self) -> str:
        return "pubsub#" + self.name

    def check(self, value: Any) -> None:
        """ValueError for a value this option cannot hold (a bug or a corrupt record)."""
        ok = {
            "boolean": lambda: type(value) is bool,
            "text-single": lambda: isinstance(value, str),
            "list-single": lambda: value in self.choices,
            "list-multi": lambda: isinstance(value, tuple)
            and all(isinstance(each, str) for each in value),
            "integer-or-max": lambda: value is None or (type(value) is int and value >= 1),
        }[self.type]()
        if not ok:
            raise ValueError(f"NodeConfig.{self.name} cannot be {value!r}")

    def read(self, form: Form) -> Any:
        """The value a submitted form gives this option; FormError when it is malformed."""
        var = self.var
        if self.type == "text-single":
            return form.get_text(var, "")
        if self.type == "list-multi":
            return tuple(dict.fromkeys(value for value in form.get_values(var) if value))
        if self.type == "list-single" and self.refused is not None:
            text = form.get_text(var, "")
            if text and text not in self.choices:
                raise PubSubError("not-acceptable", self.refused,
                                  f"{var} '{shown(text)}' is not offered here")
        if self.type == "boolean":
            value = form.get_bool(var)
        elif self.type == "list-single":
            value = form.get_choice(var, self.choices)
        elif form.get_text(var, "") == MAX:
            return None
        else:
            value = form.get_int(var, minimum=1)
        if value is None:
            raise FormError(f"field '{var}' needs a value", var)
        return value

    def field(self, value: Any, with_meta: bool) -> Field:
        """The field showing ``value``; with type, label and options for a form to fill."""
        values = self.to_json(value)
        if not with_meta:
            return make_field(self.var, values)
        field_type = "text-single" if self.type == "integer-or-max" else self.type
        options = self.choices if self.type == "list-single" else (
            value if self.type == "list-multi" else ())
        return make_field(self.var, values, type=field_type, label=self.label, options=options)

    def to_json(self, value: Any) -> Any:
        if self.type == "list-multi":
            return list(value)
        if self.type == "integer-or-max":
            return MAX if value is None else value
        return value

    def from_json(self, value: Any) -> Any:
        if self.type == "list-multi":
            return tuple(value)
        if self.type == "integer-or-max":
            return None if value == MAX else value
        return value


OPTIONS = (
    Option("title", "text-single", "A friendly name for the node"),
    Option("access_model", "list-single", "Who may subscribe and retrieve items",
           ACCESS_MODELS, refused="unsupported-access-model"),
    Option("roster_groups_allowed", "list-multi",
           "The roster group(s) allowed to subscribe and retrieve items"),
    Option("publish_model", "list-single", "Who may publish", PUBLISH_MODELS),
    Option("max_items", "integer-or-max",
           "Max # of items to persist. `max` for the server's limit"),
    Option("persist_items", "boolean", "Persist items to storage"),
    Option("deliver_notifications", "boolean", "Whether to deliver event notifications"),
    Option("deliver_payloads", "boolean",
           "Whether to deliver payloads with event notifications"),
    Option("notify_config", "boolean",
           "Notify subscribers when the node configuration changes"),
    Option("notify_delete", "boolean", "Notify subscribers when the node is deleted"),
    Option("notify_retract", "boolean",
           "Notify subscribers when items are removed from the node"),
    Option("send_last_published_item", "list-single", "When to send the last published item",
           SEND_LAST_PUBLISHED),
)
_BY_VAR = {option.var: option for option in OPTIONS}

# XEP-0163 §1.1 and §4: a PEP node is readable by the owner's presence subscribers, keeps its
# last item and sends it on presence. XEP-0222/0223 nodes say otherwise through options.
PEP_DEFAULTS = NodeConfig(access_model="presence", max_items=1,
                          send_last_published_item="on_sub_and_presence")
SERVICE_DEFAULTS = NodeConfig()


# -------------------------------------------------------------------------- forms


def config_form(config: NodeConfig, form_type: str = "form") -> Form:
    """The owner's configure form (XEP-0060 §8.2.2) with the current values, or, as
    ``result``, the configuration a notify_config notification carries (§8.2.5.3)."""
    with_meta = form_type == "form"
    return Form.build(form_type, (option.field(getattr(config, option.name), with_meta)
                                  for option in OPTIONS), form_type=ns.PUBSUB_NODE_CONFIG)


def apply_form(config: NodeConfig, form: Form, limits: Limits) -> NodeConfig:
    """``config`` changed by a submitted configure form (XEP-0060 §8.2.4).

    A form of another FORM_TYPE is malformed (``bad-request``); an option we do not have, or
    a value the option cannot take, is a configuration we cannot apply: ``not-acceptable``
    (§8.2.5.2) naming the field, rather than silently ignoring what the owner asked for.
    """
    _expect_form_type(form, ns.PUBSUB_NODE_CONFIG)
    unknown = form.unknown_fields(_BY_VAR)
    if unknown:
        raise PubSubError("not-acceptable", text=f"no node option '{shown(unknown[0])}'")
    changes = _read_all(form, "not-acceptable")
    return check_limits(dataclasses.replace(config, **changes), limits)


def read_preconditions(form: Form) -> dict[str, Any]:
    """The options a ``<publish-options/>`` form requires (XEP-0060 §7.1.5), by option name.

    An option we do not have is a precondition we cannot meet: XEP-0060 says reject the
    publication, and ``<conflict/>`` + ``<precondition-not-met/>`` is what clients handle.
    """
    _expect_form_type(form, ns.PUBSUB_PUBLISH_OPTIONS)
    unknown = form.unknown_fields(_BY_VAR)
    if unknown:
        raise precondition_not_met(unknown[0])
    return _read_all(form, "not-acceptable")


def unmet_preconditions(config: NodeConfig, preconditions: Mapping[str, Any],
                        limits: Limits) -> list[str]:
    """The vars of the preconditions ``config`` does not meet. ``max`` meets the service's
    limit written as a number, and roster groups compare as sets."""
    unmet = []
    for name, wanted in preconditions.items():
        have = getattr(config, name)
        if name == "max_items":
            have, wanted = (limits.max_items_per_node if value is None else value
                            for value in (have, wanted))
        elif name == "roster_groups_allowed":
            have, wanted = set(have), set(wanted)
        if have != wanted:
            unmet.append("pubsub#" + name)
    return unmet


def precondition_not_met(var: str) -> PubSubError:
    return PubSubError("conflict", "precondition-not-met",
                       f"the node's '{shown(var)}' is not as required")


def check_limits(config: NodeConfig, limits: Limits) -> NodeConfig:
    """``config`` if the service can keep as many items as it asks for; else ``not-allowed``
    + ``<max-items-exceeded/>`` (the pubsub#errors condition for more items than allowed)."""
    if config.max_items is not None and config.max_items > limits.max_items_per_node:
        raise PubSubError("not-allowed", "max-items-exceeded",
                          f"pubsub#max_items is at most {limits.max_items_per_node} here")
    return config


def _read_all(form: Form, condition: str) -> dict[str, Any]:
    try:
        return {_BY_VAR[var].name: _BY_VAR[var].read(form)
                for var in form.fields if var in _BY_VAR}
    except FormError as error:
        if error.condition == condition:
            raise
        raise FormError(error.text or "bad value", error.field, condition) from None


def _expect_form_type(form: Form, form_type: str) -> None:
    # XEP-0004 submissions SHOULD carry FORM_TYPE; clients that leave it out mean ours.
    if FORM_TYPE in form.fields:
        form.expect_form_type(form_type)
