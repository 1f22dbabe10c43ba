"""Subjects' credit grades on PostgreSQL: :mod:`gateway.store.grades` ported (``as_of``
is a ``date`` column; the audit line gives it as ISO text, as on SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from gateway.model import Grade
from gateway.store.grades import GradeResult, audit_line, changed, validate
from gateway.store.pg import audit
from gateway.store.pg.rows import INSERT_CHANGES, grade_from_record, iso
from gateway.store.rows import GRADE_COLUMNS, now_iso

# One row per subject (the last write of each): ON CONFLICT DO UPDATE may not touch a row
# twice in one statement.
_UPSERT: Final = (
    "INSERT INTO grades (uscc, value, source, as_of, updated_at, actor) "
    "SELECT u, v, s, a, $5, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::date[]) "
    "AS t(u, v, s, a) ON CONFLICT (uscc) DO UPDATE SET value = excluded.value, "
    "source = excluded.source, as_of = excluded.as_of, updated_at = excluded.updated_at, "
    "actor = excluded.actor"
)
_HISTORY: Final = (
    "INSERT INTO grade_history (uscc, value, source, as_of, changed_at, actor) "
    "SELECT u, v, s, a, $5, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::date[]) "
    "WITH ORDINALITY AS t(u, v, s, a, n) ORDER BY n"
)


async def put(
    conn: asyncpg.Connection, items: Sequence[tuple[str, Grade]], actor: str
) -> GradeResult:
    """Set each subject's grade; an identical grade is left alone (no history, no change)."""
    for index, (uscc, grade) in enumerate(items):
        validate(index, uscc, grade)
    wanted = sorted({uscc for uscc, _ in items})
    rows = await conn.fetch(
        "SELECT uscc, value, source, as_of FROM grades WHERE uscc = ANY($1::text[]) FOR UPDATE",
        wanted,
    )
    current: dict[str, tuple[Any, ...]] = {r[0]: (r[1], r[2], iso(r[3])) for r in rows}
    writes, result = changed(items, current)
    if writes:
        now = now_iso()
        last = dict(writes)
        await conn.execute(_UPSERT, *_columns(list(last.items())), now, actor)
        await conn.execute(_HISTORY, *_columns(writes), now, actor)
        usccs = [u for u, _ in writes]
        await conn.execute(INSERT_CHANGES, usccs, [g.value for _, g in writes], "grade", now, actor)
        target, after = audit_line(items, writes, result)
        await audit.record(conn, actor, "grades.put", target, None, after)
    return result


def _columns(writes: list[tuple[str, Grade]]) -> tuple[list[Any], ...]:
    return (
        [u for u, _ in writes],
        [g.value for _, g in writes],
        [g.source for _, g in writes],
        [g.as_of for _, g in writes],
    )


async def get(conn: asyncpg.Connection, uscc: str) -> Grade | None:
    row = await conn.fetchrow(f"SELECT {GRADE_COLUMNS} FROM grades WHERE uscc = $1", uscc)
    return None if row is None else grade_from_record(row)
