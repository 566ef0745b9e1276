"""Personal data an account keeps on its server (issue #12): its vCard (XEP-0054), the avatar
hash derived from it (XEP-0153) and its private XML (XEP-0049).

The plugins in xmppd/plugins (vcard, avatar_hash, private) only register handlers; what they
store, check and derive lives here, so it can be tested without a stream and shared through
the interfaces in :mod:`xmppd.personal.interfaces` (plugins never import each other).
"""
