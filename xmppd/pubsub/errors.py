# -*- test-case-name: tests.unit.test_pubsub_errors -*-
"""XEP-0060 errors: a stanza error plus the pubsub-specific condition clients act on.

``xmppd.errors.StanzaError`` carries a defined condition and a text only, while XEP-0060 §7
and §8 pair most conditions with a child in ``pubsub#errors`` (RFC 6120 §8.3.2's
application-specific condition). Clients branch on that child: Dino and Converse.js
reconfigure a node and publish again on ``<conflict/>`` + ``<precondition-not-met/>``, and
they tell ``<presence-subscription-required/>`` from other ``<not-authorized/>``s. So the
pubsub layer raises ``PubSubError``, which a dispatcher answers like any ``StanzaError``.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError

# The application-specific conditions of the pubsub#errors schema (XEP-0060 §17.4).
APP_CONDITIONS = frozenset(
    """closed-node configuration-required invalid-jid invalid-options invalid-payload
    invalid-subid item-forbidden item-required jid-required max-items-exceeded
    max-nodes-exceeded nodeid-required not-in-roster-group not-subscribed payload-too-big
    payload-required pending-subscription precondition-not-met presence-subscription-required
    subid-required too-many-subscriptions unsupported unsupported-access-model""".split()
)


class PubSubError(StanzaError):
    """A stanza error with an optional ``pubsub#errors`` child; ``feature`` goes on an
    ``<unsupported/>`` child, naming what the service does not do (XEP-0060 §7.1.3.2)."""

    def __init__(self, condition: str, app_condition: str | None = None,
                 text: str | None = None, *, feature: str | None = None,
                 type: str | None = None) -> None:
        if app_condition is not None and app_condition not in APP_CONDITIONS:
            raise ValueError(f"unknown pubsub#errors condition {app_condition!r}")
        if (feature is not None) != (app_condition == "unsupported"):
            raise ValueError("a feature goes with <unsupported/>, and only with it")
        super().__init__(condition, text, type)
        self.app_condition = app_condition
        self.feature = feature

    def to_element(self, by: str | None = None) -> domish.Element:
        # RFC 6120 §8.3.2: the defined condition, the text, then the application condition.
        error = super().to_element(by)
        if self.app_condition is not None:
            child = error.addElement((ns.PUBSUB_ERRORS, self.app_condition))
            if self.feature is not None:
                child["feature"] = self.feature
        return error


def unsupported(feature: str, text: str | None = None) -> PubSubError:
    """``<feature-not-implemented/>`` + ``<unsupported feature=.../>`` (XEP-0060 §7.1.3.2)."""
    return PubSubError("feature-not-implemented", "unsupported", text, feature=feature)


def node_not_found(node: str) -> PubSubError:
    return PubSubError("item-not-found", text=f"no node '{shown(node)}'")


def shown(text: str) -> str:
    """Peer text as an error message quotes it: short, so a huge value is not echoed back."""
    return text if len(text) <= 60 else text[:57] + "..."
