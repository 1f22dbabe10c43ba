"""The audit log on PostgreSQL: :mod:`gateway.store.audit` with ``$n`` parameters.

A line is written in the transaction of the change it describes; ``audit_log_lock``
(a statement trigger) takes the log lock, which :class:`~gateway.store.pg.PgStore` has
already taken at the start of every write transaction.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import msgspec

from gateway.store import audit

_decode = msgspec.json.Decoder()
INSERT: Final = (
    "INSERT INTO audit_log (at, actor, action, target, before, after) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


async def record(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    target: str,
    before: object | None,
    after: object | None,
) -> None:
    await conn.execute(INSERT, *audit.params(actor, action, target, before, after))


async def query(
    conn: asyncpg.Connection,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """As :func:`gateway.store.audit.query`: lines after ``after_id``, oldest first."""
    where: list[str] = ["id > $1"]
    params: list[object] = [after_id]
    for column, value in (("action", action), ("actor", actor), ("target", target)):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    if since is not None:
        params.append(since)
        where.append(f"at >= ${len(params)}")
    if until is not None:
        params.append(until)
        where.append(f"at < ${len(params)}")
    params.append(limit)
    rows = await conn.fetch(
        "SELECT id, at, actor, action, target, before, after FROM audit_log "
        f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ${len(params)}",
        *params,
    )
    return [
        {
            "id": r[0],
            "at": r[1],
            "actor": r[2],
            "action": r[3],
            "target": r[4],
            "before": None if r[5] is None else _decode.decode(r[5]),
            "after": None if r[6] is None else _decode.decode(r[6]),
        }
        for r in rows
    ]
