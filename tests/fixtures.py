"""Test data shared by the API and server tests: a seeded SQLite store with real keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gateway.clock import CST
from gateway.model import EntryInput, Grade
from gateway.store.backend import AnyStore, open_store
from gateway.store.checks import StoredCheck

T = TypeVar("T")

TODAY = datetime.now(CST).date()
RESTRICTED = "91110000600037341L"  # 失信被执行人, active
SUSPENDED = "91110000710926094P"  # 失信被执行人, objection pending
INCENTIVE = "91310000631696382C"  # A级纳税人 + good grade
ATTENTION = "91310115MA1K3BTP2B"  # grade poor
CLEAR = "9144030071526726XG"  # nothing
REPAIRED = "91620105L015101280"  # repaired market-regulation listing


def run_gateway(
    db: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway <args>`` as a user runs it, on the store at ``db`` (and ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**os.environ, "GATEWAY_DB": str(db), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Seeded:
    """The database of a test and a way to act on it while the app runs."""

    def __init__(self, path: Path | str) -> None:
        self.path = path  # a SQLite file, or a PostgreSQL URL
        self.keys: dict[str, str] = {}
        self.entry_ids: dict[str, str] = {}

    def run(self, action: Callable[[AnyStore], Awaitable[T]]) -> T:
        async def go() -> T:
            store = await open_store(str(self.path))
            try:
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def stored_check(self, check_id: str, within: float = 2.0) -> StoredCheck | None:
        """The check as the store holds it, once the gateway has inserted it: a check is
        durable when answered (its frame) and in the store ``GATEWAY_STORE_DELAY_MS``
        later (``gateway.storebehind``); None if it is not there ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = self.run(lambda store: store.get_check(check_id))
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def auth(self, who: str = "approval") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def entry(uscc: str, list_type: str, source_id: str, **fields: Any) -> EntryInput:
    return EntryInput(
        uscc=uscc,
        list_type=list_type,
        subject_name=fields.pop("subject_name", "某某建设有限公司"),
        authority=fields.pop("authority", "北京市第一中级人民法院"),
        listed_on=fields.pop("listed_on", TODAY - timedelta(days=100)),
        expires_on=fields.pop("expires_on", TODAY + timedelta(days=600)),
        document_no=fields.pop("document_no", "(2026)京01执123号"),
        source="test",
        source_id=source_id,
        **fields,
    )


def seed_database(path: Path | str) -> Seeded:
    """Keys of five callers, entries of every verdict, an objection, a repair, two grades."""
    seeded = Seeded(path)

    async def seed(store: AnyStore) -> None:
        for who, scopes in {
            "approval": ["check", "feedback"],
            "other": ["check", "feedback"],
            "reports": ["reports"],
            "lists": ["lists"],
            "checkonly": ["check"],
            "admin": ["admin"],
        }.items():
            _, seeded.keys[who] = await store.create_key(f"{who} system", "测试部门", scopes)
        result = await store.upsert_entries(
            [
                entry(RESTRICTED, "court_defaulter", "r1"),
                entry(SUSPENDED, "court_defaulter", "s1"),
                entry(INCENTIVE, "tax_grade_a", "i1", authority="国家税务总局上海市税务局"),
                entry(REPAIRED, "market_serious_violation", "m1"),
            ],
            "test",
        )
        ids = dict(
            zip(["restricted", "suspended", "incentive", "repaired"], result.entry_ids, strict=True)
        )
        seeded.entry_ids.update(ids)
        await store.open_objection(ids["suspended"], TODAY, "异议", "test")
        await store.repair(ids["repaired"], TODAY, "(2026)修001号", "test")
        await store.put_grade(
            INCENTIVE, Grade("good", "公共信用综合评价", date(2026, 10, 1)), "test"
        )
        await store.put_grade(
            ATTENTION, Grade("poor", "公共信用综合评价", date(2026, 10, 1)), "test"
        )

    seeded.run(seed)
    return seeded
