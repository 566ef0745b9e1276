-- Message archives (MAM): xmppd.storage.stores.archive_log. Their ids sort in the order they
-- are made (xmppd.mam.ids), so the id is the position: one key, (scope_id, position), on
-- which each batch of appends lands at the end of each owner's range, and one index for the
-- 'with' filter, where store_archive (0004, kept for pubsub items, whose ids are anyone's)
-- keeps five b-trees and scatters random ids over one of them. Time filters use positions
-- (an id starts with its time). entry_id is NULL when the id is the position; it holds the
-- id of an entry adopted from store_archive (written before this migration), whose position
-- is made from its stamp and old seq. The adoption itself runs at the plugin's start
-- (SQLArchiveLog.adopt): positions are computed in Python.
CREATE TABLE store_archive_log (
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    position TEXT NOT NULL,
    entry_id TEXT,
    stamp DOUBLE PRECISION NOT NULL,
    with_jid TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (scope_id, position)
);

CREATE INDEX store_archive_log_by_with ON store_archive_log (scope_id, with_jid, position);

-- Only adopted entries have an entry_id: the index costs the new ones nothing.
CREATE UNIQUE INDEX store_archive_log_by_old_id ON store_archive_log (scope_id, entry_id)
    WHERE entry_id IS NOT NULL;
