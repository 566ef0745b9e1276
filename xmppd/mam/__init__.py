"""XEP-0313 message archive management: the logic behind ``xmppd.plugins.mam``.

- ``stanza_ids``: what is archived, forged XEP-0359 ids removed, our id added;
- ``writer``: archive writes collected off the message path and committed in batches;
- ``prefs``: each account's archiving preferences, kept in memory for the message path;
- ``query``: a client's query form and RSM set read into an ArchiveQuery, pages answered;
- ``dates``: XEP-0082 timestamps both ways.
"""
