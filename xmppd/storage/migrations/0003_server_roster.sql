-- Server trust: the server roster of XEP-0267 and the incident reports of XEP-0268.
-- Neither belongs to an account: nothing here references users.
-- Portable SQL: the tokens in braces are column types filled in per engine (storage.Dialect).

-- One row per relationship between one of our domains and a peer domain, as RFC 6121 states
-- it from our side; a relationship with nothing left of it has no row. since is when the row
-- last changed (POSIX seconds).
CREATE TABLE server_roster (
    local_domain TEXT NOT NULL,
    peer TEXT NOT NULL,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    pending_out INTEGER NOT NULL CHECK (pending_out IN (0, 1)),
    pending_in INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
    since DOUBLE PRECISION NOT NULL,
    -- RFC 6121 A.1: nobody asks for a subscription they already have.
    CHECK (pending_out = 0 OR subscription IN ('none', 'from')),
    CHECK (pending_in = 0 OR subscription IN ('none', 'to')),
    PRIMARY KEY (local_domain, peer)
);

-- Reports received from trusted buddies (kept for the admins) and sent to them, in the order
-- they came and went: id grows and is never reused. report is the serialized <report/>.
CREATE TABLE incident_reports (
    id {monotonic_serial},
    direction TEXT NOT NULL CHECK (direction IN ('received', 'sent')),
    local_domain TEXT NOT NULL,
    peer TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    description TEXT NOT NULL,
    report TEXT NOT NULL,
    stamp DOUBLE PRECISION NOT NULL
);
