-- Generic stores (storage.open_store): key-value, map and archive data of any plugin, as in
-- Prosody's keyval/map/archive. Every row belongs to a scope, one (owner, store name) pair:
-- the owner is a bare JID (an account 'user@domain', or a domain, service or MUC room), the
-- store a plugin's name for its data ('vcard', 'mam', 'pep:urn:xmpp:avatar:data').
-- Owners are not accounts, so nothing references users: the user store deletes an account's
-- scopes in the transaction that deletes the account (and when one is created, so a new
-- account of an old name starts clean), and the rows follow by ON DELETE CASCADE.
-- Portable SQL: the tokens in braces are column types filled in per engine (storage.Dialect).

-- An integer per scope keeps the rows and their indexes small (an archive holds millions).
CREATE TABLE store_scopes (
    id {serial},
    owner TEXT NOT NULL,
    store TEXT NOT NULL,
    UNIQUE (owner, store)
);

-- Retention runs over every owner of one store.
CREATE INDEX store_scopes_by_store ON store_scopes (store);

-- value is JSON.
CREATE TABLE store_keyval (
    scope_id INTEGER PRIMARY KEY REFERENCES store_scopes (id) ON DELETE CASCADE,
    value TEXT NOT NULL
);

-- value is JSON.
CREATE TABLE store_map (
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    item_key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope_id, item_key)
);

-- seq is the archive order (appends, never reused: MAM ids must not come back, and paging
-- compares positions); entry_id is the id callers see (XEP-0359 stanza-id, pubsub item id),
-- unique per scope. stamp is POSIX seconds, with_jid the bare JID the entry is with (MAM's
-- 'with', pubsub's publisher), payload serialized XML.
CREATE TABLE store_archive (
    seq {monotonic_serial},
    scope_id INTEGER NOT NULL REFERENCES store_scopes (id) ON DELETE CASCADE,
    entry_id TEXT NOT NULL,
    stamp DOUBLE PRECISION NOT NULL,
    with_jid TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (scope_id, entry_id)
);

-- Paging in archive order, time filters and retention, the 'with' filter.
CREATE INDEX store_archive_by_seq ON store_archive (scope_id, seq);
CREATE INDEX store_archive_by_stamp ON store_archive (scope_id, stamp);
CREATE INDEX store_archive_by_with ON store_archive (scope_id, with_jid, seq);
