-- Instant messaging (RFC 6121): rosters with their version, the subscription requests an
-- account has not answered yet, and the messages kept while it was offline (XEP-0160).
-- Everything here belongs to one account and goes with it (ON DELETE CASCADE); each table's
-- key starts with user_id, so that cascade is an index lookup, not a scan.
-- Portable SQL: the tokens in braces are column types filled in per engine (storage.Dialect).

-- group_names is a JSON array of strings. Groups are only ever read and written together with
-- their item, never searched, so one column keeps a put one upsert and a read one SELECT.
CREATE TABLE roster_items (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    name TEXT,
    group_names TEXT NOT NULL,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    pending_out INTEGER NOT NULL CHECK (pending_out IN (0, 1)),
    approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
    PRIMARY KEY (user_id, contact)
);

-- No row: version 0, the empty roster. Every change to roster_items adds one.
CREATE TABLE roster_versions (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version INTEGER NOT NULL
);

-- One inbound subscribe per contact (a new one replaces the old), kept until answered.
CREATE TABLE subscription_requests (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    stanza TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, contact)
);

-- id grows with every message stored and is never reused: it is the delivery order, and
-- "delete up to id N" must never reach a message stored after N was read.
CREATE TABLE offline_messages (
    id {monotonic_serial},
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stanza TEXT NOT NULL,
    stamp DOUBLE PRECISION NOT NULL
);

CREATE INDEX offline_messages_by_user ON offline_messages (user_id, id);
