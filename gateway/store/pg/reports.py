"""The loop's effect on PostgreSQL: :mod:`gateway.store.reports`' queries translated.

The same counts, groups, roll-up into ``loop_daily`` and report (a sum of the rolled-up
days plus the same counts computed on the fly for what is not rolled up yet, in one
snapshot); the groups, counts, the overdue day and the shaping of the answer are
imported from the SQLite module. The SQL differs only in dialect:

* the JSON columns are text, parsed with a cast (``hit_ids::jsonb``):
  ``json_each``/``json_extract``/``json_array_length`` become
  ``jsonb_array_elements``, ``->>``, ``jsonb_array_length``;
* a check's day is ``substr(checked_at, 1, 10)::date`` (the day in the offset it was
  written with, as on SQLite; ``loop_daily.day`` is a ``date``);
* booleans are not integers: ``sum(applied > 0)`` is ``count(*) FILTER (WHERE …)``, an
  executed flag is counted with ``::int``;
* every column of a ``GROUP BY`` is named (SQLite takes the others from any row of the
  group: here they depend on the check or feedback grouped by, so nothing changes);
* the roll-up's watermark moves to ``gateway_committed_rowid(…)`` at most, never past a
  batch still being committed by another node, and over ``limit`` *rows* rather than
  ``limit`` rowids (identities may skip on PostgreSQL: see ``docs/postgresql.md``).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import asyncpg

from gateway.store.reports import CALLER_NAMES, GROUPS, GroupBy, overdue_until, report_rows

_APPLIED: Final = (
    "(SELECT count(*) FROM jsonb_array_elements({measures}::jsonb) AS m(value) "
    "WHERE m.value ->> 1 = 'apply')"
)
_HITS: Final = (
    "CROSS JOIN LATERAL jsonb_array_elements_text({of}.hit_ids) AS j(value) "
    "JOIN entries AS e ON e.entry_id = j.value"
)

_CHECK_BRANCHES: Final = {
    "caller": "SELECT day, 'caller' AS dimension, caller_id::text AS key, nhits AS hits, "
    "applied FROM c",
    "list_type": "SELECT day, 'list_type' AS dimension, list_type AS key, count(*) AS hits, "
    "applied FROM hit GROUP BY rid, day, applied, list_type",
    "authority": "SELECT day, 'authority' AS dimension, authority AS key, count(*) AS hits, "
    "applied FROM hit GROUP BY rid, day, applied, authority",
    "measure": "SELECT c.day, 'measure' AS dimension, m.value ->> 0 AS key, c.nhits AS hits, "
    "1 AS applied FROM c CROSS JOIN LATERAL jsonb_array_elements(c.measures) AS m(value) "
    "WHERE m.value ->> 1 = 'apply'",
}
_FEEDBACK_BRANCHES: Final = {
    "caller": "SELECT day, 'caller' AS dimension, caller_id::text AS key, needed, ex, nex FROM f",
    "list_type": "SELECT day, 'list_type' AS dimension, list_type AS key, needed, ex, nex "
    "FROM hit GROUP BY fid, day, needed, ex, nex, list_type",
    "authority": "SELECT day, 'authority' AS dimension, authority AS key, needed, ex, nex "
    "FROM hit GROUP BY fid, day, needed, ex, nex, authority",
    "measure": """SELECT f.day, 'measure' AS dimension, r.value ->> 'code' AS key,
           EXISTS (SELECT 1 FROM jsonb_array_elements(f.returned) AS m(value)
                   WHERE m.value ->> 0 = r.value ->> 'code' AND m.value ->> 1 = 'apply')
           AS needed,
           (r.value ->> 'executed' = 'true')::int AS ex,
           (r.value ->> 'executed' = 'false')::int AS nex
    FROM f CROSS JOIN LATERAL jsonb_array_elements(f.reported) AS r(value)""",
}


def check_facts(groups: tuple[str, ...] = GROUPS, rows: str = "rowid > $1 AND rowid <= $2") -> str:
    """SQL of (day, dimension, key, checks, hits, measures_applied, needs_feedback) of the
    checks whose ``rows`` condition holds (by default a rowid range), for ``groups``."""
    branches = "\n    UNION ALL\n    ".join(_CHECK_BRANCHES[g] for g in groups)
    return f"""
WITH c AS (
    SELECT rowid AS rid, substr(checked_at, 1, 10)::date AS day, caller_id,
           hit_ids::jsonb AS hit_ids, measures::jsonb AS measures,
           jsonb_array_length(hit_ids::jsonb) AS nhits,
           {_APPLIED.format(measures="checks.measures")} AS applied
    FROM checks WHERE {rows}
),
hit AS (
    SELECT c.rid, c.day, c.applied, e.list_type, e.authority FROM c {_HITS.format(of="c")}
),
per_check AS (
    {branches}
)
SELECT day, dimension, key COLLATE "C" AS key, count(*) AS checks, sum(hits)::bigint AS hits,
       sum(applied)::bigint AS measures_applied,
       count(*) FILTER (WHERE applied > 0) AS needs_feedback
FROM per_check GROUP BY day, dimension, key COLLATE "C"
"""


def feedback_facts(
    groups: tuple[str, ...] = GROUPS, rows: str = "fb.rowid > $1 AND fb.rowid <= $2"
) -> str:
    """SQL of (day, dimension, key, feedback_received, answered, executed, not_executed) of
    the feedback (``fb``) whose ``rows`` condition holds, counted on the day of its check."""
    branches = "\n    UNION ALL\n    ".join(_FEEDBACK_BRANCHES[g] for g in groups)
    return f"""
WITH f AS (
    SELECT fb.rowid AS fid, substr(c.checked_at, 1, 10)::date AS day, c.caller_id,
           c.hit_ids::jsonb AS hit_ids, c.measures::jsonb AS returned,
           fb.measures::jsonb AS reported,
           {_APPLIED.format(measures="c.measures")} > 0 AS needed,
           (SELECT count(*) FROM jsonb_array_elements(fb.measures::jsonb) AS m(value)
            WHERE m.value ->> 'executed' = 'true') AS ex,
           (SELECT count(*) FROM jsonb_array_elements(fb.measures::jsonb) AS m(value)
            WHERE m.value ->> 'executed' = 'false') AS nex
    FROM feedback AS fb JOIN checks AS c ON c.check_id = fb.check_id
    WHERE {rows}
),
hit AS (
    SELECT f.fid, f.day, f.needed, f.ex, f.nex, e.list_type, e.authority
    FROM f {_HITS.format(of="f")}
),
per_feedback AS (
    {branches}
)
SELECT day, dimension, key COLLATE "C" AS key, count(*) AS feedback_received,
       count(*) FILTER (WHERE needed) AS answered, sum(ex)::bigint AS executed,
       sum(nex)::bigint AS not_executed
FROM per_feedback GROUP BY day, dimension, key COLLATE "C"
"""


_ROLL_CHECKS: Final = f"""
INSERT INTO loop_daily (day, dimension, key, checks, hits, measures_applied, needs_feedback)
SELECT * FROM ({check_facts()}) AS facts
ON CONFLICT (day, dimension, key) DO UPDATE SET
    checks = loop_daily.checks + excluded.checks, hits = loop_daily.hits + excluded.hits,
    measures_applied = loop_daily.measures_applied + excluded.measures_applied,
    needs_feedback = loop_daily.needs_feedback + excluded.needs_feedback
"""
_ROLL_FEEDBACK: Final = f"""
INSERT INTO loop_daily (day, dimension, key, feedback_received, answered, executed, not_executed)
SELECT * FROM ({feedback_facts()}) AS facts
ON CONFLICT (day, dimension, key) DO UPDATE SET
    feedback_received = loop_daily.feedback_received + excluded.feedback_received,
    answered = loop_daily.answered + excluded.answered,
    executed = loop_daily.executed + excluded.executed,
    not_executed = loop_daily.not_executed + excluded.not_executed
"""
_SOURCES: Final = {"checks": _ROLL_CHECKS, "feedback": _ROLL_FEEDBACK}


async def next_rows(
    conn: asyncpg.Connection, source: str, mark: int, limit: int
) -> tuple[int, int]:
    """``(rows, upto)``: the next ``limit`` rows of ``checks`` or ``feedback`` past rowid
    ``mark`` that may be taken, as the range ``mark < rowid <= upto``. Only rows below
    ``gateway_committed_rowid`` are taken (none can still appear there); the range covers
    ``limit`` rows, however many rowids were skipped, and when fewer are left it reaches
    the committed horizon. Call it inside the READ COMMITTED transaction that moves the
    watermark, after locking the watermark's row."""
    horizon = int(await conn.fetchval("SELECT gateway_committed_rowid($1)", source))
    if horizon <= mark:
        return 0, mark
    found = await conn.fetchrow(
        f"SELECT count(*), max(rowid) FROM (SELECT rowid FROM {source} "
        "WHERE rowid > $1 AND rowid <= $2 ORDER BY rowid LIMIT $3) AS batch",
        mark,
        horizon,
        limit,
    )
    assert found is not None
    rows = int(found[0])
    return rows, horizon if rows < limit else int(found[1])


async def roll_up(conn: asyncpg.Connection, source: str, limit: int) -> int:
    """Roll up to ``limit`` rows of ``checks`` or ``feedback`` past their watermark into
    ``loop_daily``, in the caller's READ COMMITTED transaction; how many rows were rolled
    up. The watermark's row is locked first, so several nodes rolling up at once take
    turns and never count a row twice."""
    mark = int(
        await conn.fetchval(
            "SELECT last_rowid FROM loop_marks WHERE source = $1 FOR UPDATE", source
        )
    )
    rows, upto = await next_rows(conn, source, mark, limit)
    if upto <= mark:
        return 0
    if rows:
        await conn.execute(_SOURCES[source], mark, upto)
    await conn.execute("UPDATE loop_marks SET last_rowid = $1 WHERE source = $2", upto, source)
    return rows


async def loop_report(
    db: asyncpg.Connection,
    first: date,
    last: date,
    group_by: GroupBy,
    today: date,
    due_days: int,
) -> list[dict[str, Any]]:
    """One row per group with the counts of the checks made from ``first`` to ``last``
    (inclusive), most checks first (see :func:`gateway.store.reports.loop_report`). Run
    inside one REPEATABLE READ transaction: the marks, the days rolled up and the tail
    past the marks are then read from the same state."""
    marks = {r[0]: int(r[1]) for r in await db.fetch("SELECT source, last_rowid FROM loop_marks")}
    # Only the report's own grouping is computed for the tail not yet rolled up.
    tail_checks = check_facts((group_by,), "rowid > $5")
    tail_feedback = feedback_facts((group_by,), "fb.rowid > $6")
    rows = await db.fetch(
        f"""
        WITH facts AS (
            SELECT day, key, checks, hits, measures_applied, needs_feedback,
                   feedback_received, answered, executed, not_executed
            FROM loop_daily WHERE dimension = $1 AND day BETWEEN $2 AND $3
            UNION ALL
            SELECT day, key, checks, hits, measures_applied, needs_feedback, 0, 0, 0, 0
            FROM ({tail_checks}) AS tail
            WHERE day BETWEEN $2 AND $3
            UNION ALL
            SELECT day, key, 0, 0, 0, 0, feedback_received, answered, executed, not_executed
            FROM ({tail_feedback}) AS tail
            WHERE day BETWEEN $2 AND $3
        )
        SELECT key, sum(checks), sum(hits), sum(measures_applied), sum(feedback_received),
               sum(executed), sum(not_executed), sum(needs_feedback - answered),
               sum(CASE WHEN day <= $4 THEN needs_feedback - answered ELSE 0 END)
        FROM facts GROUP BY key ORDER BY sum(checks) DESC, key COLLATE "C"
        """,
        group_by,
        first,
        last,
        overdue_until(today, due_days),
        marks["checks"],
        marks["feedback"],
    )
    callers = await db.fetch(CALLER_NAMES) if group_by == "caller" else []
    return report_rows(rows, callers)


async def feedback_backlog(db: asyncpg.Connection, today: date, due_days: int) -> tuple[int, int]:
    """Checks needing feedback without any, and those of them overdue (rolled up only)."""
    row = await db.fetchrow(
        "SELECT coalesce(sum(needs_feedback - answered), 0), "
        "coalesce(sum(CASE WHEN day <= $1 THEN needs_feedback - answered ELSE 0 END), 0) "
        "FROM loop_daily WHERE dimension = 'caller'",
        overdue_until(today, due_days),
    )
    assert row is not None
    return int(row[0]), int(row[1])
