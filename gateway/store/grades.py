"""Subjects' credit grades (SQL): upsert with history and change rows, reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, get_args

import aiosqlite
import msgspec

from gateway.model import Grade, GradeValue
from gateway.store import audit
from gateway.store.rows import GRADE_COLUMNS, grade_from_row, iso_or_none, now_iso, to_json

GRADE_VALUES: Final = frozenset(get_args(GradeValue))

_UPSERT: Final = (
    "INSERT INTO grades (uscc, value, source, as_of, updated_at, actor) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uscc) DO UPDATE SET value = excluded.value, "
    "source = excluded.source, as_of = excluded.as_of, updated_at = excluded.updated_at, "
    "actor = excluded.actor"
)
_HISTORY: Final = (
    "INSERT INTO grade_history (uscc, value, source, as_of, changed_at, actor) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_CHANGE: Final = "INSERT INTO changes (uscc, kind, ref, at, actor) VALUES (?, 'grade', ?, ?, ?)"


class GradeResult(msgspec.Struct, frozen=True):
    """What :meth:`Store.put_grades` did."""

    inserted: int
    updated: int
    unchanged: int


def validate(index: int, uscc: str, grade: Grade) -> None:
    if not uscc:
        raise ValueError(f"row {index}: uscc is empty")
    if grade.value not in GRADE_VALUES:
        raise ValueError(
            f"row {index}: unknown grade {grade.value!r}; valid: {', '.join(sorted(GRADE_VALUES))}"
        )


def changed(
    items: Sequence[tuple[str, Grade]], current: dict[str, tuple[Any, ...]]
) -> tuple[list[tuple[str, Grade]], GradeResult]:
    """The grades of ``items`` that change something, in order, and the counts; ``current``
    holds each subject's stored ``(value, source, as_of as ISO text)`` and is updated, so
    a subject given twice is compared with its first grade."""
    writes: list[tuple[str, Grade]] = []
    inserted = updated = unchanged = 0
    for uscc, grade in items:
        value = (grade.value, grade.source, iso_or_none(grade.as_of))
        before = current.get(uscc)
        if before == value:
            unchanged += 1
            continue
        if before is None:
            inserted += 1
        else:
            updated += 1
        current[uscc] = value
        writes.append((uscc, grade))
    return writes, GradeResult(inserted, updated, unchanged)


def audit_line(
    items: Sequence[tuple[str, Grade]], writes: list[tuple[str, Grade]], result: GradeResult
) -> tuple[str, dict[str, Any]]:
    """The audit line's target and ``after`` of a write of grades."""
    target = writes[0][0] if len(items) == 1 else f"{len(items)} subjects"
    after: dict[str, Any] = msgspec.to_builtins(result)
    if len(items) == 1:
        one = writes[0][1]
        after["grade"] = {"value": one.value, "source": one.source, "as_of": iso_or_none(one.as_of)}
    return target, after


async def put(
    db: aiosqlite.Connection, items: Sequence[tuple[str, Grade]], actor: str
) -> GradeResult:
    """Set each subject's grade; an identical grade is left alone (no history, no change)."""
    for index, (uscc, grade) in enumerate(items):
        validate(index, uscc, grade)
    wanted = sorted({uscc for uscc, _ in items})
    rows = await db.execute_fetchall(
        "SELECT g.uscc, g.value, g.source, g.as_of FROM json_each(?) AS k "
        "CROSS JOIN grades AS g ON g.uscc = k.value",
        (to_json(wanted),),
    )
    current: dict[str, tuple[Any, ...]] = {r[0]: tuple(r[1:4]) for r in rows}
    writes, result = changed(items, current)
    if writes:
        now = now_iso()
        rows_out = [(u, g.value, g.source, iso_or_none(g.as_of), now, actor) for u, g in writes]
        await db.executemany(_UPSERT, rows_out)
        await db.executemany(_HISTORY, rows_out)
        await db.executemany(_CHANGE, [(u, g.value, now, actor) for u, g in writes])
        target, after = audit_line(items, writes, result)
        await audit.record(db, actor, "grades.put", target, None, after)
    return result


async def get(db: aiosqlite.Connection, uscc: str) -> Grade | None:
    rows = list(
        await db.execute_fetchall(f"SELECT {GRADE_COLUMNS} FROM grades WHERE uscc = ?", (uscc,))
    )
    return grade_from_row(rows[0]) if rows else None
