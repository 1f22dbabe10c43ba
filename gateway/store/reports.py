"""The loop's effect (SQL): what checks found and what the departments reported back.

Counts are kept by day of check and by group in ``loop_daily`` (migration 5). The upkeep
rolls up checks and feedback recorded since each watermark (:func:`roll_up`, a few
thousand per transaction, inside SQLite); a report (:func:`loop_report`) adds up the
days of its range and computes the same counts on the fly for what is not rolled up yet,
in one read transaction, so it is exact whenever it is asked.

What a group counts, for the checks made on the days of the range:

* ``caller``: the checks the calling system made; ``list_type``, ``authority``: the
  checks that hit an entry of that list type or listing authority (a check hitting two
  list types counts in both), ``hits`` the entries; ``measure``: the checks in which
  that measure applied.
* ``measures_applied``: measures returned in state ``apply``; a check with one needs
  feedback (反馈). ``feedback_received``: checks with feedback; ``executed`` and
  ``not_executed``: measures reported so (for ``measure``, that measure's).
* ``feedback_pending``: checks needing feedback without any; ``feedback_overdue``: those
  of them made more than ``due_days`` days before today (China Standard Time days).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Final, Literal

import aiosqlite

GroupBy = Literal["authority", "caller", "list_type", "measure"]
GROUPS: Final[tuple[GroupBy, ...]] = ("authority", "caller", "list_type", "measure")
COUNTS: Final = (
    "checks",
    "hits",
    "measures_applied",
    "feedback_received",
    "executed",
    "not_executed",
    "feedback_pending",
    "feedback_overdue",
)

_APPLIED: Final = (
    "(SELECT count(*) FROM json_each({measures}) WHERE json_extract(value, '$[1]') = 'apply')"
)

_CHECK_BRANCHES: Final = {
    "caller": "SELECT day, 'caller' AS dimension, CAST(caller_id AS TEXT) AS key, "
    "nhits AS hits, applied FROM c",
    "list_type": "SELECT day, 'list_type' AS dimension, list_type AS key, count(*) AS hits, "
    "applied FROM hit GROUP BY rid, list_type",
    "authority": "SELECT day, 'authority' AS dimension, authority AS key, count(*) AS hits, "
    "applied FROM hit GROUP BY rid, authority",
    "measure": "SELECT c.day, 'measure' AS dimension, json_extract(m.value, '$[0]') AS key, "
    "c.nhits AS hits, 1 AS applied FROM c, json_each(c.measures) AS m "
    "WHERE json_extract(m.value, '$[1]') = 'apply'",
}
_FEEDBACK_BRANCHES: Final = {
    "caller": "SELECT day, 'caller' AS dimension, CAST(caller_id AS TEXT) AS key, needed, ex, "
    "nex FROM f",
    "list_type": "SELECT day, 'list_type' AS dimension, list_type AS key, needed, ex, nex "
    "FROM hit GROUP BY fid, list_type",
    "authority": "SELECT day, 'authority' AS dimension, authority AS key, needed, ex, nex "
    "FROM hit GROUP BY fid, authority",
    "measure": """SELECT f.day, 'measure' AS dimension, json_extract(r.value, '$.code') AS key,
           EXISTS (SELECT 1 FROM json_each(f.returned) AS m
                   WHERE json_extract(m.value, '$[0]') = json_extract(r.value, '$.code')
                     AND json_extract(m.value, '$[1]') = 'apply') AS needed,
           json_extract(r.value, '$.executed') = 1 AS ex,
           json_extract(r.value, '$.executed') = 0 AS nex
    FROM f, json_each(f.reported) AS r""",
}


def check_facts(
    groups: tuple[str, ...] = GROUPS, rows: str = "rowid > :lo AND rowid <= :hi"
) -> str:
    """SQL of (day, dimension, key, checks, hits, measures_applied, needs_feedback) of the
    checks whose ``rows`` condition holds (by default a rowid range), for ``groups``."""
    branches = "\n    UNION ALL\n    ".join(_CHECK_BRANCHES[g] for g in groups)
    return f"""
WITH c AS (
    SELECT rowid AS rid, substr(checked_at, 1, 10) AS day, caller_id, hit_ids, measures,
           json_array_length(hit_ids) AS nhits, {_APPLIED.format(measures="checks.measures")}
           AS applied
    FROM checks WHERE {rows}
),
hit AS (
    SELECT c.rid, c.day, c.applied, e.list_type, e.authority
    FROM c, json_each(c.hit_ids) AS j JOIN entries AS e ON e.entry_id = j.value
),
per_check AS (
    {branches}
)
SELECT day, dimension, key, count(*) AS checks, sum(hits) AS hits,
       sum(applied) AS measures_applied, sum(applied > 0) AS needs_feedback
FROM per_check GROUP BY day, dimension, key
"""


def feedback_facts(
    groups: tuple[str, ...] = GROUPS, rows: str = "fb.rowid > :lo AND fb.rowid <= :hi"
) -> str:
    """SQL of (day, dimension, key, feedback_received, answered, executed, not_executed) of
    the feedback (``fb``) whose ``rows`` condition holds, counted on the day of its check."""
    branches = "\n    UNION ALL\n    ".join(_FEEDBACK_BRANCHES[g] for g in groups)
    return f"""
WITH f AS (
    SELECT fb.rowid AS fid, substr(c.checked_at, 1, 10) AS day, c.caller_id, c.hit_ids,
           c.measures AS returned, fb.measures AS reported,
           {_APPLIED.format(measures="c.measures")} > 0 AS needed,
           (SELECT count(*) FROM json_each(fb.measures)
            WHERE json_extract(value, '$.executed') = 1) AS ex,
           (SELECT count(*) FROM json_each(fb.measures)
            WHERE json_extract(value, '$.executed') = 0) AS nex
    FROM feedback AS fb JOIN checks AS c ON c.check_id = fb.check_id
    WHERE {rows}
),
hit AS (
    SELECT f.fid, f.day, f.needed, f.ex, f.nex, e.list_type, e.authority
    FROM f, json_each(f.hit_ids) AS j JOIN entries AS e ON e.entry_id = j.value
),
per_feedback AS (
    {branches}
)
SELECT day, dimension, key, count(*) AS feedback_received, sum(needed) AS answered,
       sum(ex) AS executed, sum(nex) AS not_executed
FROM per_feedback GROUP BY day, dimension, key
"""


_ROLL_CHECKS: Final = f"""
INSERT INTO loop_daily (day, dimension, key, checks, hits, measures_applied, needs_feedback)
SELECT * FROM ({check_facts()}) WHERE true
ON CONFLICT (day, dimension, key) DO UPDATE SET
    checks = checks + excluded.checks, hits = hits + excluded.hits,
    measures_applied = measures_applied + excluded.measures_applied,
    needs_feedback = needs_feedback + excluded.needs_feedback
"""
_ROLL_FEEDBACK: Final = f"""
INSERT INTO loop_daily (day, dimension, key, feedback_received, answered, executed, not_executed)
SELECT * FROM ({feedback_facts()}) WHERE true
ON CONFLICT (day, dimension, key) DO UPDATE SET
    feedback_received = feedback_received + excluded.feedback_received,
    answered = answered + excluded.answered,
    executed = executed + excluded.executed, not_executed = not_executed + excluded.not_executed
"""
_SOURCES: Final = {"checks": _ROLL_CHECKS, "feedback": _ROLL_FEEDBACK}


def overdue_until(today: date, due_days: int) -> date:
    """The last day whose checks are overdue without feedback: more than ``due_days``
    whole days before ``today``."""
    return today - timedelta(days=due_days + 1)


def roll_up(conn: sqlite3.Connection, source: str, limit: int) -> int:
    """Roll up to ``limit`` rows of ``checks`` or ``feedback`` past their watermark into
    ``loop_daily``, in the caller's transaction; how many rows were rolled up."""
    (mark,) = conn.execute(
        "SELECT last_rowid FROM loop_marks WHERE source = ?", (source,)
    ).fetchone()
    (last,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {source}").fetchone()
    upto = min(int(last), int(mark) + limit)
    if upto <= mark:
        return 0
    conn.execute(_SOURCES[source], {"lo": mark, "hi": upto})
    conn.execute("UPDATE loop_marks SET last_rowid = ? WHERE source = ?", (upto, source))
    return upto - int(mark)


def pending_sql(source: str) -> str:
    """Rows of ``source`` not yet rolled up."""
    return (
        f"SELECT coalesce((SELECT max(rowid) FROM {source}), 0) - "
        f"(SELECT last_rowid FROM loop_marks WHERE source = '{source}')"
    )


async def loop_report(
    db: aiosqlite.Connection,
    first: date,
    last: date,
    group_by: GroupBy,
    today: date,
    due_days: int,
) -> list[dict[str, Any]]:
    """One row per group with the :data:`COUNTS` of the checks made from ``first`` to
    ``last`` (inclusive), most checks first. Run inside one read transaction."""
    marks = {
        str(source): int(rowid)
        for source, rowid in await db.execute_fetchall("SELECT source, last_rowid FROM loop_marks")
    }
    # Only the report's own grouping is computed for the tail not yet rolled up.
    tail_checks = check_facts((group_by,), "rowid > :checks_mark")
    tail_feedback = feedback_facts((group_by,), "fb.rowid > :feedback_mark")
    rows = await db.execute_fetchall(
        f"""
        WITH facts AS (
            SELECT day, key, checks, hits, measures_applied, needs_feedback,
                   feedback_received, answered, executed, not_executed
            FROM loop_daily WHERE dimension = :dimension AND day BETWEEN :first AND :last
            UNION ALL
            SELECT day, key, checks, hits, measures_applied, needs_feedback, 0, 0, 0, 0
            FROM ({tail_checks})
            WHERE day BETWEEN :first AND :last
            UNION ALL
            SELECT day, key, 0, 0, 0, 0, feedback_received, answered, executed, not_executed
            FROM ({tail_feedback})
            WHERE day BETWEEN :first AND :last
        )
        SELECT key, sum(checks), sum(hits), sum(measures_applied), sum(feedback_received),
               sum(executed), sum(not_executed), sum(needs_feedback - answered),
               sum(CASE WHEN day <= :overdue_until THEN needs_feedback - answered ELSE 0 END)
        FROM facts GROUP BY key ORDER BY sum(checks) DESC, key
        """,
        {
            "dimension": group_by,
            "first": first.isoformat(),
            "last": last.isoformat(),
            "overdue_until": overdue_until(today, due_days).isoformat(),
            "checks_mark": marks["checks"],
            "feedback_mark": marks["feedback"],
        },
    )
    callers: Iterable[Sequence[Any]] = ()
    if group_by == "caller":
        callers = await db.execute_fetchall(CALLER_NAMES)
    return report_rows(rows, callers)


#: ``(caller_id, name, department)`` of every caller, for :func:`report_rows`.
CALLER_NAMES: Final = "SELECT caller_id, name, department FROM callers"


def report_rows(
    rows: Iterable[Sequence[Any]], callers: Iterable[Sequence[Any]] = ()
) -> list[dict[str, Any]]:
    """The report's answer from its rows (key, then the :data:`COUNTS`): each key a caller's
    name and department where ``callers`` (rows of :data:`CALLER_NAMES`) names it."""
    names = {str(r[0]): f"{r[1]}（{r[2]}）" for r in callers}
    return [
        {"key": names.get(str(r[0]), str(r[0])), **dict(zip(COUNTS, map(int, r[1:]), strict=True))}
        for r in rows
    ]


async def feedback_backlog(db: aiosqlite.Connection, today: date, due_days: int) -> tuple[int, int]:
    """Checks needing feedback without any, and those of them overdue (rolled up only)."""
    rows = list(
        await db.execute_fetchall(
            "SELECT coalesce(sum(needs_feedback - answered), 0), "
            "coalesce(sum(CASE WHEN day <= ? THEN needs_feedback - answered ELSE 0 END), 0) "
            "FROM loop_daily WHERE dimension = 'caller'",
            (overdue_until(today, due_days).isoformat(),),
        )
    )
    return int(rows[0][0]), int(rows[0][1])
