"""The schema's migrations: ``(version, SQL script)`` with strictly increasing versions.

Never edit a migration that has shipped; append a new one. Scripts run
statement by statement inside one transaction (``schema.migrate``).

Conventions: timestamps are ISO 8601 strings with offset, dates ``YYYY-MM-DD``.
History tables (``entry_history``, ``grade_history``) and the change log are
append-only, enforced by triggers; recorded checks and feedback are never
updated.
"""

from __future__ import annotations

from typing import Final

_V1: Final = """
CREATE TABLE callers (
    caller_id   INTEGER PRIMARY KEY,
    name        TEXT NOT NULL CHECK (name <> ''),
    department  TEXT NOT NULL CHECK (department <> ''),
    created_at  TEXT NOT NULL,
    UNIQUE (name, department)
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    caller_id   INTEGER NOT NULL REFERENCES callers (caller_id),
    key_hash    TEXT UNIQUE NOT NULL,
    scopes      TEXT NOT NULL,              -- comma-separated, sorted
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_caller ON api_keys (caller_id);

CREATE TABLE entries (
    entry_id     TEXT PRIMARY KEY,
    uscc         TEXT NOT NULL CHECK (uscc <> ''),
    subject_name TEXT NOT NULL DEFAULT '',
    list_type    TEXT NOT NULL CHECK (list_type <> ''),
    authority    TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    basis        TEXT NOT NULL DEFAULT '',
    document_no  TEXT NOT NULL DEFAULT '',
    listed_on    TEXT NOT NULL,
    expires_on   TEXT CHECK (expires_on IS NULL OR expires_on >= listed_on),
    -- ORs, not IN: a constant IN list in a CHECK costs an ephemeral table per inserted row.
    status       TEXT NOT NULL DEFAULT 'active' CHECK (
                     status = 'active' OR status = 'objection_pending' OR status = 'repaired'
                     OR status = 'revoked' OR status = 'expired'),
    source       TEXT NOT NULL DEFAULT '',
    source_id    TEXT,                      -- NULL when the source gives no id: never matched
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (source, source_id)
);
-- One index serves a subject's entries (all statuses) and the live scan (status filter
-- read from the index): cheaper on import than separate uscc and partial live indexes.
CREATE INDEX entries_subject ON entries (uscc, status);
CREATE INDEX entries_expiring ON entries (expires_on)
    WHERE status = 'active' AND expires_on IS NOT NULL;

CREATE TABLE entry_history (
    id          INTEGER PRIMARY KEY,
    entry_id    TEXT NOT NULL REFERENCES entries (entry_id),
    status      TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'  -- JSON object of strings
);
CREATE INDEX entry_history_entry ON entry_history (entry_id, id);
CREATE TRIGGER entry_history_no_update BEFORE UPDATE ON entry_history
BEGIN SELECT RAISE(ABORT, 'entry_history is append-only'); END;
CREATE TRIGGER entry_history_no_delete BEFORE DELETE ON entry_history
BEGIN SELECT RAISE(ABORT, 'entry_history is append-only'); END;

CREATE TABLE grades (
    uscc        TEXT PRIMARY KEY CHECK (uscc <> ''),
    value       TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    as_of       TEXT,
    updated_at  TEXT NOT NULL,
    actor       TEXT NOT NULL
);

CREATE TABLE grade_history (
    id          INTEGER PRIMARY KEY,
    uscc        TEXT NOT NULL,
    value       TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    as_of       TEXT,
    changed_at  TEXT NOT NULL,
    actor       TEXT NOT NULL
);
CREATE INDEX grade_history_uscc ON grade_history (uscc, id);
CREATE TRIGGER grade_history_no_update BEFORE UPDATE ON grade_history
BEGIN SELECT RAISE(ABORT, 'grade_history is append-only'); END;
CREATE TRIGGER grade_history_no_delete BEFORE DELETE ON grade_history
BEGIN SELECT RAISE(ABORT, 'grade_history is append-only'); END;

-- The change log the feed polls: one row per mutation of an entry or a grade,
-- written in the mutation's transaction. AUTOINCREMENT: a seq is never reused.
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    uscc        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind = 'entry' OR kind = 'grade'),
    ref         TEXT NOT NULL,              -- entry_id, or the grade value
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL
);
CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
BEGIN SELECT RAISE(ABORT, 'changes is append-only'); END;

CREATE TABLE checks (
    check_id          TEXT PRIMARY KEY,
    caller_id         INTEGER NOT NULL REFERENCES callers (caller_id),
    matter            TEXT NOT NULL,
    matter_code       TEXT,
    case_ref          TEXT,
    uscc              TEXT NOT NULL,
    verdict           TEXT NOT NULL,
    hit_ids           TEXT NOT NULL,        -- JSON array of entry ids
    measures          TEXT NOT NULL,        -- JSON array of [code, state]
    snapshot_version  INTEGER NOT NULL,
    catalog_version   TEXT NOT NULL,
    checked_at        TEXT NOT NULL,
    latency_us        INTEGER NOT NULL,
    batch_id          TEXT,
    response          BLOB NOT NULL
);
CREATE INDEX checks_caller ON checks (caller_id, checked_at);
CREATE INDEX checks_uscc ON checks (uscc, checked_at);
CREATE INDEX checks_time ON checks (checked_at);
CREATE TRIGGER checks_no_update BEFORE UPDATE ON checks
BEGIN SELECT RAISE(ABORT, 'checks are never updated'); END;

CREATE TABLE feedback (
    check_id     TEXT PRIMARY KEY REFERENCES checks (check_id),
    caller_id    INTEGER NOT NULL,
    measures     TEXT NOT NULL,             -- JSON array of {code, executed, reason}
    outcome      TEXT NOT NULL DEFAULT '',
    handled_by   TEXT,
    handled_at   TEXT,
    received_at  TEXT NOT NULL,
    body         BLOB NOT NULL
);
CREATE TRIGGER feedback_no_update BEFORE UPDATE ON feedback
BEGIN SELECT RAISE(ABORT, 'feedback is never updated'); END;
"""

# Version 2: the recorder's insert path carries one index only, the primary key,
# which grows at its end (check ids are UUIDv7, time-ordered). So:
# - checks by subject are indexed in bulk, not per insert. A per-row index on
#   (uscc, ...) lands every recorded check on a random page, so each group commit
#   wrote one page per check; the maintenance thread now copies (day, uscc, check_id)
#   of new checks into subject_checks, sorted, a thousand at a time. Keyed by day
#   first, the part being written stays small and cached whatever the history
#   (about 4 µs a check instead of 12-24); readers look day by day, newest first,
#   and add the few checks recorded since the mark;
# - time ranges are ranges of check_id (its first 48 bits are the time in ms), so the
#   indexes on checked_at and (caller_id, checked_at) go.
_V2 = """
DROP INDEX checks_uscc;
DROP INDEX checks_time;
DROP INDEX checks_caller;

CREATE TABLE subject_checks (
    day       TEXT NOT NULL,               -- YYYY-MM-DD of checked_at (China Standard Time)
    uscc      TEXT NOT NULL,
    check_id  TEXT NOT NULL,
    PRIMARY KEY (day, uscc, check_id)
) WITHOUT ROWID;

CREATE TABLE subject_checks_mark (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_rowid  INTEGER NOT NULL
);
INSERT INTO subject_checks (day, uscc, check_id)
    SELECT substr(checked_at, 1, 10), uscc, check_id FROM checks;
INSERT INTO subject_checks_mark (id, last_rowid)
    SELECT 1, coalesce(max(rowid), 0) FROM checks;
"""

# Version 3: what every worker must follow besides the lists, e.g. a catalog reload
# asked for on one worker: a generation counter per key, bumped in one transaction.
_V3 = """
CREATE TABLE control (
    key         TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL,
    value       TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    actor       TEXT NOT NULL
);
"""

# Version 4: keys stored as salted HMACs (``salt`` empty: a key of version 1, its
# ``key_hash`` a plain SHA-256, still verified), with an expiry (rotation sets it on the
# old key) and a rate limit of their own; and the audit log of administrative changes
# (keys, catalog), append-only like the histories.
_V4 = """
ALTER TABLE api_keys ADD COLUMN salt TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
ALTER TABLE api_keys ADD COLUMN rate_per_second REAL CHECK (rate_per_second > 0);
ALTER TABLE api_keys ADD COLUMN burst INTEGER CHECK (burst >= 1);
ALTER TABLE api_keys ADD COLUMN replaces TEXT;

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    before   TEXT,                          -- JSON, NULL for a creation
    after    TEXT                           -- JSON
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""

# Version 5: the loop's effect by day (reports): per day of check and per group (caller,
# list type, authority, measure), the counts the reports add up, rolled up from checks and
# feedback by the upkeep (gateway.store.reports), each from its own watermark. A report
# over ten million checks reads a few thousand of these rows and the checks and feedback
# not yet rolled up.
_V5 = """
CREATE TABLE loop_daily (
    day                TEXT NOT NULL,       -- YYYY-MM-DD of the check (China Standard Time)
    dimension          TEXT NOT NULL,       -- caller | list_type | authority | measure
    key                TEXT NOT NULL,
    checks             INTEGER NOT NULL DEFAULT 0,
    hits               INTEGER NOT NULL DEFAULT 0,
    measures_applied   INTEGER NOT NULL DEFAULT 0,
    needs_feedback     INTEGER NOT NULL DEFAULT 0,
    feedback_received  INTEGER NOT NULL DEFAULT 0,
    answered           INTEGER NOT NULL DEFAULT 0,  -- needs_feedback with feedback
    executed           INTEGER NOT NULL DEFAULT 0,
    not_executed       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, dimension, key)
) WITHOUT ROWID;

CREATE TABLE loop_marks (
    source      TEXT PRIMARY KEY,           -- checks | feedback
    last_rowid  INTEGER NOT NULL
);
INSERT INTO loop_marks (source, last_rowid) VALUES ('checks', 0), ('feedback', 0);
"""

# Version 6: the subject index moves to a file of its own beside the database
# (gateway.store.subject_index): its steps no longer hold the database's write lock, and
# may be large enough for each page of the index to take many checks. The upkeep indexes
# every check again there (about 6 µs a check, in its lulls).
_V6 = """
DROP TABLE subject_checks;
DROP TABLE subject_checks_mark;
"""

# Version 7: the store's identity, random, made once. The record log beside a SQLite file
# (gateway.recordlog) is bound to it: a database made anew at the same path is not given
# the records of the one it replaced.
_V7 = """
CREATE TABLE store_identity (
    id  TEXT PRIMARY KEY
);
INSERT INTO store_identity (id) VALUES (lower(hex(randomblob(16))));
"""

#: Every migration, in order. Append only.
MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
)
