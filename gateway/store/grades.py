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
    now = now_iso()
    writes: list[tuple[Any, ...]] = []
    changes: list[tuple[Any, ...]] = []
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
        writes.append((uscc, *value))
        changes.append((uscc, grade.value, now, actor))
    if writes:
        await db.executemany(_UPSERT, [(*w, now, actor) for w in writes])
        await db.executemany(_HISTORY, [(*w, now, actor) for w in writes])
        await db.executemany(_CHANGE, changes)
        target = writes[0][0] if len(items) == 1 else f"{len(items)} subjects"
        after: dict[str, Any] = {"inserted": inserted, "updated": updated, "unchanged": unchanged}
        if len(items) == 1:
            after["grade"] = dict(zip(("value", "source", "as_of"), writes[0][1:], strict=True))
        await audit.record(db, actor, "grades.put", target, None, after)
    return GradeResult(inserted, updated, unchanged)


async def get(db: aiosqlite.Connection, uscc: str) -> Grade | None:
    rows = list(
        await db.execute_fetchall(f"SELECT {GRADE_COLUMNS} FROM grades WHERE uscc = ?", (uscc,))
    )
    return grade_from_row(rows[0]) if rows else None
