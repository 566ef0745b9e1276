-- Message archives (MAM) packed: xmppd.storage.stores.archive_log. A batch of the message
-- path writes one row per account (its entries of that batch in one text, decoded by
-- xmppd.storage.stores.archive_packs) instead of one row per entry: a hundredth of the
-- b-tree insertions and pages touched at make bench's rate. Packs of one account never
-- overlap: first_position..last_position ranges are disjoint, so packs in the order of
-- first_position hold the entries in archive order.
CREATE TABLE store_archive_pack (
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    first_position TEXT NOT NULL,
    last_position TEXT NOT NULL,
    entries INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (scope_id, first_position)
);

-- Per pack, each contact ('with') its entries are with, and how many: 'with' queries find
-- their packs here, and counts are sums of these rows, no pack decoded.
CREATE TABLE store_archive_pack_with (
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    with_jid TEXT NOT NULL,
    first_position TEXT NOT NULL,
    last_position TEXT NOT NULL,
    entries INTEGER NOT NULL,
    PRIMARY KEY (scope_id, with_jid, first_position)
);

-- Adopted entries whose id is not their position (an archive from before 0005, or imported
-- with the old server's ids): the id a client holds, to its position.
CREATE TABLE store_archive_pack_alias (
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    entry_id TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (scope_id, entry_id)
);
