# -*- test-case-name: tests.unit.test_sasl_scram -*-
"""The catalogue: which SASL mechanisms a stream offers, in what order, and making one.

-PLUS mechanisms need TLS and a channel-binding type the stream can provide; PLAIN sends the
password itself, so it needs TLS unless the operator explicitly allows otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend, ISASLMechanism
from xmppd.sasl.plain import PlainServer
from xmppd.sasl.scram import CHANNEL_BINDING_TYPES, ScramServer

MECHANISMS_PREFERENCE = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
)

# SCRAM mechanism name -> (hash name, uses channel binding)
_SCRAM = {
    "SCRAM-SHA-256-PLUS": ("sha-256", True),
    "SCRAM-SHA-1-PLUS": ("sha-1", True),
    "SCRAM-SHA-256": ("sha-256", False),
    "SCRAM-SHA-1": ("sha-1", False),
}


def offered_mechanisms(
    enabled: Sequence[str],
    tls: bool,
    channel_binding_types: Sequence[str],
    allow_plain_without_tls: bool = False,
) -> list[str]:
    """The enabled mechanisms this stream may offer, most preferred first; unknown names are
    ignored."""
    can_bind = tls and any(name in CHANNEL_BINDING_TYPES for name in channel_binding_types)
    offered = []
    for name in MECHANISMS_PREFERENCE:
        if name not in enabled:
            continue
        if name.endswith("-PLUS") and not can_bind:
            continue
        if name == "PLAIN" and not (tls or allow_plain_without_tls):
            continue
        offered.append(name)
    return offered


def create_mechanism(
    name: str,
    *,
    auth: IAuthBackend,
    domain: str,
    channel_binding: Callable[[str], bytes | None],
    channel_binding_types: Sequence[str],
    tls: bool,
    enabled: Sequence[str] = MECHANISMS_PREFERENCE,
    allow_plain_without_tls: bool = False,
    binding_refused_for: str | None = None,
    advertised_bindings: Sequence[str] | None = None,
) -> ISASLMechanism:
    """A fresh mechanism for the client's <auth mechanism=name/>.

    ``enabled`` and ``allow_plain_without_tls`` must be what ``offered_mechanisms`` got, so a
    client cannot pick a mechanism the stream did not offer: that is invalid-mechanism.
    ``binding_refused_for`` is the stream's memory of a proven -PLUS attempt with a binding it
    could not give (``ChannelBindingUnavailable.localpart``); SCRAM lets that account say 'y'.

    SCRAM's XEP-0474 hash covers the offered mechanisms and the channel-binding types the
    stream listed in XEP-0440's ``<sasl-channel-binding/>``: ``advertised_bindings``, by
    default ``channel_binding_types`` (which the stream lists whenever there are any).
    """
    offered = offered_mechanisms(enabled, tls, channel_binding_types, allow_plain_without_tls)
    if name not in offered:
        raise SASLFailure("invalid-mechanism")
    if name == "PLAIN":
        return PlainServer(auth, domain)
    hash_name, plus = _SCRAM[name]

    def available_binding(cb_name: str) -> bytes | None:
        return channel_binding(cb_name) if cb_name in channel_binding_types else None

    return ScramServer(
        hash_name,
        plus,
        auth,
        domain,
        available_binding,
        server_supports_plus=name + "-PLUS" in offered,
        binding_refused_for=binding_refused_for,
        advertised=(
            offered,
            channel_binding_types if advertised_bindings is None else advertised_bindings,
        ),
    )
