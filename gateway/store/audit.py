"""The audit log of administrative changes (SQL): who, when, what, before and after.

Append-only (triggers refuse UPDATE and DELETE). Written in the same transaction as
the change it describes, so there is no change without its line and no line without
its change. It holds API keys (created, revoked, rotated, limits changed), catalog
reloads, each change of an entry's status (objection, resolution, repair, revocation)
and, for list imports and grades, one line per transaction with what it did (each
entry's and grade's own history, ``entry_history`` and ``grade_history``, has the
row-by-row detail). The expiry sweep is the system's, not an administrator's: it is in
the entries' history only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import aiosqlite
import msgspec

from gateway.store.rows import now_iso, to_json

_decode = msgspec.json.Decoder()
INSERT: Final = (
    "INSERT INTO audit_log (at, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)"
)


def params(
    actor: str, action: str, target: str, before: object | None, after: object | None
) -> tuple[str, str, str, str, str | None, str | None]:
    """The values of :data:`INSERT` (for synchronous writers too)."""
    return (
        now_iso(),
        actor,
        action,
        target,
        None if before is None else to_json(before),
        None if after is None else to_json(after),
    )


async def record(
    db: aiosqlite.Connection,
    actor: str,
    action: str,
    target: str,
    before: object | None,
    after: object | None,
) -> None:
    await db.execute(INSERT, params(actor, action, target, before, after))


#: A statement's n-th parameter (from 1): SQLite's ``?``, PostgreSQL's ``$n``.
Placeholder = Callable[[int], str]


def qmark(_: int) -> str:
    return "?"


def query_sql(
    mark: Placeholder,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> tuple[str, list[object]]:
    """The statement of :func:`query` and its parameters, ``mark`` writing each parameter
    as the backend does (shared by both backends)."""
    params: list[object] = []
    where: list[str] = []
    conditions = (
        ("id >", after_id),
        ("action =", action),
        ("actor =", actor),
        ("target =", target),
        ("at >=", since),
        ("at <", until),
    )
    for condition, value in conditions:
        if value is not None:
            params.append(value)
            where.append(f"{condition} {mark(len(params))}")
    params.append(limit)
    sql = (
        "SELECT id, at, actor, action, target, before, after FROM audit_log "
        f"WHERE {' AND '.join(where)} ORDER BY id LIMIT {mark(len(params))}"
    )
    return sql, params


def line(r: Sequence[Any]) -> dict[str, Any]:
    """A row of :func:`query_sql`'s statement as the API shows it."""
    return {
        "id": r[0],
        "at": r[1],
        "actor": r[2],
        "action": r[3],
        "target": r[4],
        "before": None if r[5] is None else _decode.decode(r[5]),
        "after": None if r[6] is None else _decode.decode(r[6]),
    }


async def query(db: aiosqlite.Connection, **filters: Any) -> list[dict[str, Any]]:
    """Lines in order (oldest first) after ``after_id``, filtered by ``action``, ``actor``,
    ``target``; ``since``/``until`` compare with ``at`` (ISO 8601 with offset, as
    written); at most ``limit``."""
    sql, params = query_sql(qmark, **filters)
    return [line(r) for r in await db.execute_fetchall(sql, params)]
