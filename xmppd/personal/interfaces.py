"""What the vcard plugin offers other plugins (through ``ctx.provide``/``ctx.query``).

Kept beside its implementation rather than in xmppd/interfaces.py while issue #12 is under
way; it belongs there once the personal-data plugins settle.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IVCards(Interface):
    """The accounts' stored vCards (XEP-0054), by bare JID."""

    max_size = Attribute("The largest vCard accepted, in bytes of its XML.")

    def get(account):
        """Deferred firing the account's vCard (a fresh domish.Element) or None."""

    def set(account, vcard):
        """Store (or, for an empty <vCard/>, remove) the account's vCard; Deferred.
        StanzaError not-acceptable (raised in the Deferred) when it is over max_size, or
        bad-request when its PHOTO's BINVAL is not base64."""

    def photo_hash(account):
        """Deferred firing the XEP-0153 hash of the account's vCard photo (lower-case hex
        SHA-1 of the image bytes), or None when it has no BINVAL photo."""


class IPrivateXml(Interface):
    """The accounts' private XML (XEP-0049), for plugins that keep it in step with other
    storage (XEP-0048 bookmarks). Writes here are not told as events.PRIVATE_STORED."""

    def element(account, namespace, name):
        """Deferred firing the stored element (a fresh domish.Element) or None."""

    def store(account, element):
        """Store ``element`` as the account's, replacing what it had under its name, within
        the same size limit as a client's set; Deferred."""
