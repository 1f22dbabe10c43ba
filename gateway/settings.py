"""Configuration, read once from the environment (``GATEWAY_*``).

Nothing reads the environment at import time: call :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    #: SQLite file of the embedded store.
    db: str = "./var/gateway.db"
    #: Catalog directory; ``None`` means the packaged catalog.
    catalog: Path | None = None
    redis_url: str | None = None
    #: Days after a check before missing feedback counts as overdue.
    feedback_due_days: int = 5
    #: Time zone the gateway's dates are reckoned in (expiry, check times).
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        catalog = env.get("GATEWAY_CATALOG") or None
        due = env.get("GATEWAY_FEEDBACK_DUE_DAYS", "5")
        try:
            due_days = int(due)
        except ValueError:
            raise SettingsError(
                f"GATEWAY_FEEDBACK_DUE_DAYS must be an integer, got {due!r}"
            ) from None
        if due_days < 1:
            raise SettingsError("GATEWAY_FEEDBACK_DUE_DAYS must be at least 1")
        return cls(
            db=env.get("GATEWAY_DB", cls.db),
            catalog=Path(catalog) if catalog else None,
            redis_url=env.get("GATEWAY_REDIS_URL") or None,
            feedback_due_days=due_days,
            timezone=env.get("GATEWAY_TIMEZONE", cls.timezone),
        )
