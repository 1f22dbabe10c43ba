"""The audit log on PostgreSQL: :mod:`gateway.store.audit` with ``$n`` parameters.

A line is written in the transaction of the change it describes; ``audit_log_lock``
(a statement trigger) takes the log lock, which :class:`~gateway.store.pg.PgStore` has
already taken at the start of every write transaction.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from gateway.store import audit

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


async def query(conn: asyncpg.Connection, **filters: Any) -> list[dict[str, Any]]:
    """As :func:`gateway.store.audit.query`: lines after ``after_id``, oldest first."""
    sql, params = audit.query_sql(lambda n: f"${n}", **filters)
    return [audit.line(r) for r in await conn.fetch(sql, *params)]
