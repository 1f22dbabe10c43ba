"""The schema on PostgreSQL: :mod:`gateway.store.migrations` translated, version for version.

Same versions, tables, columns, keys, checks, indexes and triggers as on SQLite, so that
one schema version means the same thing on both and a database can be copied from one to
the other; ``tests/store/test_pg_migrations.py`` compares the two schemas. What differs,
and why (``docs/postgresql.md`` has the whole reasoning):

* types: SQLite ``INTEGER`` is 8 bytes, so ``bigint`` everywhere; ``REAL`` is ``double
  precision``; ``BLOB`` is ``bytea``; the calendar dates (``entries.listed_on`` and
  ``expires_on``, the grades' ``as_of``, the ``day`` of ``subject_checks`` and
  ``loop_daily``) are ``date``. Timestamps stay ``text``: the code writes ISO 8601 with
  the writer's offset and hands the same string back (API answers, the audit log), takes
  a check's day as ``substr(checked_at, 1, 10)`` in the offset it was written with, and
  compares them as strings; ``timestamptz`` would keep the instant but not the offset, nor
  the text. JSON stays ``text`` too (written and decoded by msgspec; ``json`` has no
  equality, so ``DISTINCT`` and ``UNION`` would break; the reports cast it);
* every text column is ``COLLATE "C"``: byte order, as SQLite's BINARY and Python's ``<``
  on ``str`` (the live scan merges entries and grades by ``uscc`` in Python), whatever the
  database's default collation, in which ``-`` and ``:`` may not even count;
* the rowid-like sequences: ``callers.caller_id`` and the histories' ``id`` are identity
  columns; ``changes.seq`` and ``audit_log.id`` too, and a statement that appends to either
  first takes the *log lock*, a transaction-scoped advisory lock held until commit, so
  their order is their commit order, as on SQLite where writers take turns: a reader that
  has seen ``seq`` n never sees a smaller one appear later. ``checks`` and ``feedback``
  get a column SQLite has implicitly, ``rowid`` (identity), which the upkeep's watermarks
  follow; inserting takes the *recording lock* shared (recorders never wait for one
  another) and :func:`gateway_committed_rowid` takes it exclusively for an instant, so
  the highest rowid it returns has no uncommitted row below it;
* the append-only tables refuse ``TRUNCATE`` too (SQLite has none), and the triggers raise
  SQLSTATE 23001 (``restrict_violation``: asyncpg's ``RestrictViolationError``, an
  integrity error as SQLite's ``RAISE(ABORT, ...)`` is).

Until the PostgreSQL store ships these may still change; afterwards, as on SQLite, never
edit a shipped migration: append one (and its SQLite twin, with the same version).

:func:`upgrade` applies the missing versions in order, each in one transaction under
``pg_advisory_xact_lock``, so several nodes starting at once apply each exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from gateway.store import schema

#: The first key of every advisory lock the gateway takes ("gate"); the second says which.
LOCK_NAMESPACE: Final = 0x67617465
#: Held (transaction-scoped) while migrating.
MIGRATION_LOCK: Final = 1
#: The log lock: exclusive, from a statement appending to ``changes`` or ``audit_log`` to
#: the end of its transaction.
LOG_LOCK: Final = 2
#: The recording lock: shared by inserts into ``checks`` and ``feedback``, exclusive for
#: an instant in :func:`gateway_committed_rowid`.
RECORDING_LOCK: Final = 3

_V1: Final = """
-- Refuses the row (or the TRUNCATE): the trigger's argument is the message.
CREATE FUNCTION gateway_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation';
END
$$;

-- The log lock (see the module's docstring): taken by a BEFORE ... FOR EACH STATEMENT
-- trigger, so before any identity value of the statement is drawn.
CREATE FUNCTION gateway_lock_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1734440037, 2);
    RETURN NULL;
END
$$;

-- Tells the nodes' followers that the change log grew (LISTEN gateway_changes); sent
-- at the commit of the transaction that wrote the changes, never before.
CREATE FUNCTION gateway_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_changes', '');
    RETURN NULL;
END
$$;

-- The recording lock, shared: recorders never wait for each other, only for an instant of
-- gateway_committed_rowid.
CREATE FUNCTION gateway_share_recording() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1734440037, 3);
    RETURN NULL;
END
$$;

-- The highest rowid of checks or feedback with no row below it still uncommitted: what
-- a watermark may move to. Waits for the inserts in flight (never for long: one batch),
-- which hold the recording lock shared until their commit, then reads with a snapshot
-- taken after them (so READ COMMITTED only).
CREATE FUNCTION gateway_committed_rowid(source regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    horizon bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'gateway_committed_rowid needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    PERFORM pg_advisory_lock(1734440037, 3);
    BEGIN
        EXECUTE format('SELECT coalesce(max(rowid), 0) FROM %s', source) INTO horizon;
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_advisory_unlock(1734440037, 3);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(1734440037, 3);
    RETURN horizon;
END
$$;

CREATE TABLE callers (
    caller_id   bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name        text COLLATE "C" NOT NULL CHECK (name <> ''),
    department  text COLLATE "C" NOT NULL CHECK (department <> ''),
    created_at  text COLLATE "C" NOT NULL,
    UNIQUE (name, department)
);

CREATE TABLE api_keys (
    key_id      text COLLATE "C" PRIMARY KEY,
    caller_id   bigint NOT NULL REFERENCES callers (caller_id),
    key_hash    text COLLATE "C" UNIQUE NOT NULL,
    scopes      text COLLATE "C" NOT NULL,  -- comma-separated, sorted
    created_at  text COLLATE "C" NOT NULL,
    revoked_at  text COLLATE "C"
);
CREATE INDEX api_keys_caller ON api_keys (caller_id);

CREATE TABLE entries (
    entry_id     text COLLATE "C" PRIMARY KEY,
    uscc         text COLLATE "C" NOT NULL CHECK (uscc <> ''),
    subject_name text COLLATE "C" NOT NULL DEFAULT '',
    list_type    text COLLATE "C" NOT NULL CHECK (list_type <> ''),
    authority    text COLLATE "C" NOT NULL DEFAULT '',
    reason       text COLLATE "C" NOT NULL DEFAULT '',
    basis        text COLLATE "C" NOT NULL DEFAULT '',
    document_no  text COLLATE "C" NOT NULL DEFAULT '',
    listed_on    date NOT NULL,
    expires_on   date CHECK (expires_on IS NULL OR expires_on >= listed_on),
    status       text COLLATE "C" NOT NULL DEFAULT 'active' CHECK (
                     status IN ('active', 'objection_pending', 'repaired', 'revoked', 'expired')),
    source       text COLLATE "C" NOT NULL DEFAULT '',
    source_id    text COLLATE "C",          -- NULL when the source gives no id: never matched
    created_at   text COLLATE "C" NOT NULL,
    updated_at   text COLLATE "C" NOT NULL,
    UNIQUE (source, source_id)
);
CREATE INDEX entries_subject ON entries (uscc, status);
CREATE INDEX entries_expiring ON entries (expires_on)
    WHERE status = 'active' AND expires_on IS NOT NULL;

CREATE TABLE entry_history (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    entry_id    text COLLATE "C" NOT NULL REFERENCES entries (entry_id),
    status      text COLLATE "C" NOT NULL,
    changed_at  text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL,
    note        text COLLATE "C" NOT NULL DEFAULT '',
    details     text COLLATE "C" NOT NULL DEFAULT '{}'  -- JSON object of strings
);
CREATE INDEX entry_history_entry ON entry_history (entry_id, id);
CREATE TRIGGER entry_history_no_update BEFORE UPDATE ON entry_history
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('entry_history is append-only');
CREATE TRIGGER entry_history_no_delete BEFORE DELETE ON entry_history
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('entry_history is append-only');
CREATE TRIGGER entry_history_no_truncate BEFORE TRUNCATE ON entry_history
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_refuse('entry_history is append-only');

CREATE TABLE grades (
    uscc        text COLLATE "C" PRIMARY KEY CHECK (uscc <> ''),
    value       text COLLATE "C" NOT NULL,
    source      text COLLATE "C" NOT NULL DEFAULT '',
    as_of       date,
    updated_at  text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL
);

CREATE TABLE grade_history (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    uscc        text COLLATE "C" NOT NULL,
    value       text COLLATE "C" NOT NULL,
    source      text COLLATE "C" NOT NULL DEFAULT '',
    as_of       date,
    changed_at  text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL
);
CREATE INDEX grade_history_uscc ON grade_history (uscc, id);
CREATE TRIGGER grade_history_no_update BEFORE UPDATE ON grade_history
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('grade_history is append-only');
CREATE TRIGGER grade_history_no_delete BEFORE DELETE ON grade_history
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('grade_history is append-only');
CREATE TRIGGER grade_history_no_truncate BEFORE TRUNCATE ON grade_history
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_refuse('grade_history is append-only');

-- The change log the feed polls: seq is never reused, and is in commit order (changes_lock).
CREATE TABLE changes (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uscc        text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL CHECK (kind IN ('entry', 'grade')),
    ref         text COLLATE "C" NOT NULL,  -- entry_id, or the grade value
    at          text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL
);
CREATE TRIGGER changes_lock BEFORE INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_lock_logs();
CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_notify_changes();
CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('changes is append-only');

CREATE TABLE checks (
    check_id          text COLLATE "C" PRIMARY KEY,
    caller_id         bigint NOT NULL REFERENCES callers (caller_id),
    matter            text COLLATE "C" NOT NULL,
    matter_code       text COLLATE "C",
    case_ref          text COLLATE "C",
    uscc              text COLLATE "C" NOT NULL,
    verdict           text COLLATE "C" NOT NULL,
    hit_ids           text COLLATE "C" NOT NULL,  -- JSON array of entry ids
    measures          text COLLATE "C" NOT NULL,  -- JSON array of [code, state]
    snapshot_version  bigint NOT NULL,
    catalog_version   text COLLATE "C" NOT NULL,
    checked_at        text COLLATE "C" NOT NULL,
    latency_us        bigint NOT NULL,
    batch_id          text COLLATE "C",
    response          bytea NOT NULL,
    -- SQLite's implicit rowid, which the upkeep's watermarks follow.
    rowid             bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX checks_caller ON checks (caller_id, checked_at);
CREATE INDEX checks_uscc ON checks (uscc, checked_at);
CREATE INDEX checks_time ON checks (checked_at);
CREATE TRIGGER checks_share_recording BEFORE INSERT ON checks
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_share_recording();
CREATE TRIGGER checks_no_update BEFORE UPDATE ON checks
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('checks are never updated');

CREATE TABLE feedback (
    check_id     text COLLATE "C" PRIMARY KEY REFERENCES checks (check_id),
    caller_id    bigint NOT NULL,
    measures     text COLLATE "C" NOT NULL,   -- JSON array of {code, executed, reason}
    outcome      text COLLATE "C" NOT NULL DEFAULT '',
    handled_by   text COLLATE "C",
    handled_at   text COLLATE "C",
    received_at  text COLLATE "C" NOT NULL,
    body         bytea NOT NULL,
    rowid        bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE TRIGGER feedback_share_recording BEFORE INSERT ON feedback
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_share_recording();
CREATE TRIGGER feedback_no_update BEFORE UPDATE ON feedback
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('feedback is never updated');
"""

# Version 2 (see SQLite's): checks indexed by subject in bulk by the upkeep; time ranges
# are ranges of check_id.
_V2: Final = """
DROP INDEX checks_uscc;
DROP INDEX checks_time;
DROP INDEX checks_caller;

CREATE TABLE subject_checks (
    day       date NOT NULL,               -- of checked_at (China Standard Time)
    uscc      text COLLATE "C" NOT NULL,
    check_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (day, uscc, check_id)
);

CREATE TABLE subject_checks_mark (
    id          bigint PRIMARY KEY CHECK (id = 1),
    last_rowid  bigint NOT NULL
);
INSERT INTO subject_checks (day, uscc, check_id)
    SELECT substr(checked_at, 1, 10)::date, uscc, check_id FROM checks;
INSERT INTO subject_checks_mark (id, last_rowid)
    SELECT 1, coalesce(max(rowid), 0) FROM checks;
"""

# Version 3: a generation counter per key, for what every worker must follow.
_V3: Final = """
CREATE TABLE control (
    key         text COLLATE "C" PRIMARY KEY,
    generation  bigint NOT NULL,
    value       text COLLATE "C" NOT NULL,
    changed_at  text COLLATE "C" NOT NULL,
    actor       text COLLATE "C" NOT NULL
);
"""

# Version 4: salted keys with expiry and rate limits; the audit log (append-only, its ids
# in commit order like the change log's).
_V4: Final = """
ALTER TABLE api_keys ADD COLUMN salt text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at text COLLATE "C";
ALTER TABLE api_keys ADD COLUMN rate_per_second double precision CHECK (rate_per_second > 0);
ALTER TABLE api_keys ADD COLUMN burst bigint CHECK (burst >= 1);
ALTER TABLE api_keys ADD COLUMN replaces text COLLATE "C";

CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       text COLLATE "C" NOT NULL,
    actor    text COLLATE "C" NOT NULL,
    action   text COLLATE "C" NOT NULL,
    target   text COLLATE "C" NOT NULL,
    before   text COLLATE "C",              -- JSON, NULL for a creation
    after    text COLLATE "C"               -- JSON
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE TRIGGER audit_log_lock BEFORE INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_lock_logs();
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('audit_log is append-only');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION gateway_refuse('audit_log is append-only');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_refuse('audit_log is append-only');
"""

# Version 5: the loop's counts by day and group, rolled up from checks and feedback past
# their watermarks (rowids).
_V5: Final = """
CREATE TABLE loop_daily (
    day                date NOT NULL,       -- of the check (China Standard Time)
    dimension          text COLLATE "C" NOT NULL,  -- caller | list_type | authority | measure
    key                text COLLATE "C" NOT NULL,
    checks             bigint NOT NULL DEFAULT 0,
    hits               bigint NOT NULL DEFAULT 0,
    measures_applied   bigint NOT NULL DEFAULT 0,
    needs_feedback     bigint NOT NULL DEFAULT 0,
    feedback_received  bigint NOT NULL DEFAULT 0,
    answered           bigint NOT NULL DEFAULT 0,  -- needs_feedback with feedback
    executed           bigint NOT NULL DEFAULT 0,
    not_executed       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, dimension, key)
);

CREATE TABLE loop_marks (
    source      text COLLATE "C" PRIMARY KEY,  -- checks | feedback
    last_rowid  bigint NOT NULL
);
INSERT INTO loop_marks (source, last_rowid) VALUES ('checks', 0), ('feedback', 0);
"""

# Version 6: on SQLite the subject index moved to a file of its own; here it stays (its
# steps hold no lock a commit waits for). A version with nothing to do, so that both
# stores keep the same versions (``gateway.store.pg.copy`` copies between equal ones).
_V6: Final = """
SELECT 1;
"""

# Version 7: the store's identity, random, made once (SQLite's record log is bound to it;
# here it only keeps the two schemas alike).
_V7: Final = """
CREATE TABLE store_identity (
    id  text COLLATE "C" PRIMARY KEY
);
INSERT INTO store_identity (id) VALUES (md5(random()::text || clock_timestamp()::text));
"""

#: Every migration, in order, with the same versions as SQLite's. Append only.
MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
)

#: The schema version this code expects.
LATEST: Final = MIGRATIONS[-1][0]

_CREATE_VERSIONS: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    '(version bigint PRIMARY KEY, applied_at text COLLATE "C" NOT NULL)'
)


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration, 0 for an empty database (``schema_migrations`` is
    looked for on the connection's ``search_path``, where the migrations create it)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def upgrade(
    conn: asyncpg.Connection, migrations: tuple[tuple[int, str], ...] = MIGRATIONS
) -> tuple[int, tuple[int, ...]]:
    """Apply the missing migrations on ``conn`` (an ``asyncpg.Connection`` outside any
    transaction), each in its own transaction; the schema version and the versions this
    call applied.

    Each transaction takes ``pg_advisory_xact_lock`` first, then reads the version: a
    node that waited for another's migration sees it applied and moves on, so several
    nodes starting at once apply each version exactly once. A database already at the
    latest version takes no lock. Raises :class:`SchemaError` if the database is newer
    than ``migrations``; a failing migration leaves the schema as it was (DDL is
    transactional).
    """
    latest = schema.latest_of(migrations)
    if conn.is_in_transaction():
        raise ValueError("upgrade() needs a connection outside any transaction")
    version = await current_version(conn)
    applied: list[int] = []
    while True:
        schema.refuse_newer(version, latest)
        if version == latest:
            return version, tuple(applied)
        # READ COMMITTED whatever the server's default: the version is read with a snapshot
        # taken after the lock, not at the transaction's first statement.
        async with conn.transaction(isolation="read_committed"):
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, MIGRATION_LOCK
            )
            await conn.execute(_CREATE_VERSIONS)
            # Another node may have migrated meanwhile.
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            )
            pending = [(v, script) for v, script in migrations if v > version]
            if pending and version <= latest:
                next_version, script = pending[0]
                await conn.execute(script)  # no arguments: every statement of the script
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    next_version,
                    datetime.now().astimezone().isoformat(timespec="seconds"),
                )
                version = next_version
                applied.append(next_version)


async def migrate(dsn: str, migrations: tuple[tuple[int, str], ...] = MIGRATIONS) -> int:
    """Connect to ``dsn`` (``postgresql://...``), apply the missing migrations (see
    :func:`upgrade`), disconnect; the schema version."""
    conn = await asyncpg.connect(dsn)
    try:
        version, _ = await upgrade(conn, migrations)
    finally:
        await conn.close()
    return version
