"""Personal data an account keeps on its server (issue #12): its vCard (XEP-0054), the avatar
hash derived from it (XEP-0153), its private XML (XEP-0049), and the conversions that keep
old and new protocols in step: bookmarks (XEP-0048 / XEP-0402 / XEP-0411) and avatars
(XEP-0084 / vCard photo, XEP-0398).

The plugins in xmppd/plugins (vcard, avatar_hash, private, bookmarks, vcard_conversion) only
register handlers; what they store, check, derive and convert lives here, so it can be tested
without a stream and shared through xmppd.interfaces (IVCards, IPrivateXml, IPep): plugins
never import each other.
"""
