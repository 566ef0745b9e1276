-- Accounts and their SCRAM keys (RFC 5802 §3): salt, iteration count, StoredKey, ServerKey.
-- No password is ever stored, in plain text or otherwise.
-- Portable SQL: the tokens in braces are column types filled in per engine (storage.Dialect).

CREATE TABLE users (
    id {serial},
    localpart TEXT NOT NULL,
    domain TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    UNIQUE (localpart, domain)
);

CREATE TABLE scram_credentials (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash_name TEXT NOT NULL,
    salt {bytes} NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key {bytes} NOT NULL,
    server_key {bytes} NOT NULL,
    PRIMARY KEY (user_id, hash_name)
);
