"""Recorded checks and feedback on PostgreSQL: the recorder's batch write, and the reads.

:func:`write_batch` is :meth:`gateway.store.CheckWriter.write` for PostgreSQL: a batch of
checks and feedback in **one statement** (a data-modifying ``WITH`` inserting the checks,
then the feedback), so one round trip, committed by the server before it answers (an
implicit transaction: the connection must not be inside one); from :data:`COPY_FROM`
checks, the checks go by ``COPY`` in an explicit transaction (less work for the server,
three more round trips: see the measurements there). There is no file lock to
wait for, and the server fsyncs (its own group commit merges the commits of every node),
so nothing of ``try_write`` or ``sync_wal`` carries over. The columns travel as one array
each (``unnest``), the statement is prepared once per connection (asyncpg's cache).

Checks' rowids are drawn in batch order (``WITH ORDINALITY … ORDER BY``), as SQLite's
multi-row ``INSERT`` draws them. Feedback whose check already has some is filtered before
the insert (``NOT EXISTS``, so a retry draws no rowid), and ``ON CONFLICT DO NOTHING``
covers a concurrent insert for the same check, which waits for the other's commit: the
feedback is therefore inserted **by check id**, so that two batches naming the same
checks in opposite orders wait for each other in the same order and cannot deadlock
(SQLite's writers take turns; its rowids follow the batch's order, ours the check ids',
which nothing reads). A check named twice within the batch is sent once, the later
ones answered False in Python, as SQLite's second insert of the same key does nothing.

The reads are :mod:`gateway.store.checks`' queries with ``$n`` parameters, the rows decoded
by the same functions (``stored_check``, ``stored_feedback``), and ``recent_checks`` walks
the subject index with the same :func:`~gateway.store.checks.walk_subject_index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import asyncpg

from gateway.model import CheckRecord, FeedbackRecord
from gateway.store.checks import (
    CHECK_COLUMNS,
    FEEDBACK_COLUMNS,
    StoredCheck,
    check_params,
    feedback_params,
    stored_check,
    stored_feedback,
    walk_subject_index,
)
from gateway.store.pg.rows import columns

#: PostgreSQL types of :data:`CHECK_COLUMNS` and :data:`FEEDBACK_COLUMNS`, in their order.
_CHECK_TYPES: Final = (
    *("text", "bigint", "text", "text", "text", "text", "text", "bigint", "text", "text"),
    *("bigint", "bytea", "text", "text", "text"),
)
_FEEDBACK_TYPES: Final = ("text", "bigint", "text", "text", "text", "text", "text", "bytea")


def _unnest(types: Sequence[str], first: int) -> str:
    return ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, first))


def _names(prefix: str, count: int) -> str:
    return ", ".join(f"{prefix}{n}" for n in range(count))


_C: Final = len(_CHECK_TYPES)
_F: Final = len(_FEEDBACK_TYPES)


def _insert_feedback(first: int) -> str:
    """Feedback (one array per column from ``$first``) whose check has none yet, by check
    id; returns the check ids of the feedback inserted."""
    return f"""
INSERT INTO feedback ({FEEDBACK_COLUMNS})
SELECT {_names("f", _F)}
FROM unnest({_unnest(_FEEDBACK_TYPES, first)}) AS t({_names("f", _F)})
WHERE NOT EXISTS (SELECT 1 FROM feedback AS old WHERE old.check_id = t.f0)
ORDER BY f0
ON CONFLICT (check_id) DO NOTHING
RETURNING check_id
"""


#: The whole batch in one statement: checks (``$1``…``$15``), then the feedback
#: (``$16``…``$23``). The CTE runs to completion whether or not it is referenced, and the
#: feedback's foreign key is checked at the end of the statement, so feedback may name a
#: check of the same batch.
_RECORD: Final = f"""
WITH inserted_checks AS (
    INSERT INTO checks ({CHECK_COLUMNS})
    SELECT {_names("c", _C)}
    FROM unnest({_unnest(_CHECK_TYPES, 1)}) WITH ORDINALITY AS t({_names("c", _C)}, n)
    ORDER BY n
){_insert_feedback(_C + 1)}"""
_FEEDBACK: Final = _insert_feedback(1)
_COPIED_COLUMNS: Final = tuple(name.strip() for name in CHECK_COLUMNS.split(","))

#: Checks from which a batch goes by ``COPY`` (in a transaction: ``BEGIN``, ``COPY``, the
#: feedback's ``INSERT`` if any, ``COMMIT``) rather than in the one statement above. On the
#: test server (127.0.0.1, round trip 0.07 ms), the one statement took 0.29 / 1.30 / 3.00 /
#: 5.77 / 11.5 ms for 10 / 100 / 250 / 500 / 1,000 checks, COPY 0.40 / 1.00 / 2.22 / 4.28 /
#: 9.44 ms: COPY saves the server about 2.5 µs a check, and costs three more round trips.
#: Across a network (0.1 to 0.3 ms a round trip) it pays from a few hundred checks; a
#: batch that large means the recorder is saturated, when the server's time is what the
#: nodes share.
COPY_FROM: Final = 250


async def write_batch(
    conn: asyncpg.Connection,
    checks: Sequence[CheckRecord],
    feedback: Sequence[FeedbackRecord] = (),
) -> list[bool]:
    """Insert ``checks`` then ``feedback`` in one transaction, committed before returning.

    Returns, for each feedback in order, True if it was inserted, False if feedback for
    that check already existed (or came earlier in the batch). A duplicate check id, or
    feedback for an unknown check, fails the whole call (nothing is written) with an
    :class:`asyncpg.IntegrityConstraintViolationError` (``UniqueViolationError``,
    ``ForeignKeyViolationError``). ``conn`` is the caller's own and must not be inside a
    transaction (the batch would not be committed on return).
    """
    if not checks and not feedback:
        return []
    if conn.is_in_transaction():
        raise RuntimeError("write_batch needs a connection outside any transaction")
    firsts: dict[str, int] = {}
    for position, f in enumerate(feedback):
        firsts.setdefault(f.check_id, position)
    sent = columns([feedback_params(feedback[p]) for p in firsts.values()], _F)
    records = [check_params(c) for c in checks]
    if len(records) < COPY_FROM:
        inserted = await conn.fetch(_RECORD, *columns(records, _C), *sent)
    else:
        async with conn.transaction():
            await conn.copy_records_to_table("checks", records=records, columns=_COPIED_COLUMNS)
            inserted = await conn.fetch(_FEEDBACK, *sent) if firsts else []
    done = {r[0] for r in inserted}
    return [firsts[f.check_id] == p and f.check_id in done for p, f in enumerate(feedback)]


async def prepare(conn: asyncpg.Connection) -> None:
    """Prepare the batch's statements on ``conn`` now (asyncpg caches them per connection),
    so that the first batch pays no parse and plan: runs each with no rows (writing nothing)."""
    await conn.fetch(_RECORD, *([] for _ in range(_C + _F)))
    await conn.fetch(_FEEDBACK, *([] for _ in range(_F)))
    async with conn.transaction():
        await conn.copy_records_to_table("checks", records=[], columns=_COPIED_COLUMNS)


# --- reads --------------------------------------------------------------------------------


async def get_check(db: asyncpg.Connection, check_id: str) -> StoredCheck | None:
    row = await db.fetchrow(f"SELECT {CHECK_COLUMNS} FROM checks WHERE check_id = $1", check_id)
    return None if row is None else stored_check(row)


async def get_feedback(db: asyncpg.Connection, check_id: str) -> FeedbackRecord | None:
    row = await db.fetchrow(
        f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE check_id = $1", check_id
    )
    return None if row is None else stored_feedback(row)


async def recent_checks(
    db: asyncpg.Connection, uscc: str, limit: int, days: int = 366
) -> list[StoredCheck]:
    """The subject's latest checks, newest first, as :func:`gateway.store.checks.recent_checks`
    finds them (run it in one snapshot: the tail and the index then agree on the mark)."""
    tail = await db.fetch(
        "SELECT check_id FROM checks WHERE uscc = $1 AND rowid > "
        "(SELECT last_rowid FROM subject_checks_mark WHERE id = 1) "
        "ORDER BY rowid DESC LIMIT $2",
        uscc,
        limit,
    )
    bounds = await db.fetchrow("SELECT min(day), max(day) FROM subject_checks")
    assert bounds is not None

    async def indexed(day: date, count: int) -> list[str]:
        rows = await db.fetch(
            "SELECT check_id FROM subject_checks WHERE day = $1 AND uscc = $2 "
            "ORDER BY check_id DESC LIMIT $3",
            day,
            uscc,
            count,
        )
        return [r[0] for r in rows]

    ids = await walk_subject_index([r[0] for r in tail], bounds[0], bounds[1], limit, days, indexed)
    if not ids:
        return []
    rows = await db.fetch(
        f"SELECT {CHECK_COLUMNS} FROM checks WHERE check_id = ANY($1::text[]) "
        "ORDER BY check_id DESC",
        ids,
    )
    return [stored_check(r) for r in rows]
