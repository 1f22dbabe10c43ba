"""``make run``: a demo database, a demo key, ready-to-paste calls, then the server.

The demo population is deterministic (seeded): ``subjects`` organisations with
valid USCCs and a grade each (in Zhejiang's 2018 proportions), about a quarter
with list entries of every list type, some under objection, some repaired,
revoked, expired by date or not yet in force.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from gateway.identifiers.uscc import calc_check_digit, calc_organisation_check_digit
from gateway.model import EntryInput, Grade
from gateway.store import Store
from measures_catalog import load

TODAY = date.today()
_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_REGIONS = [
    "110000",
    "110105",
    "310000",
    "310115",
    "440300",
    "330100",
    "520100",
    "610900",
    "320500",
    "510100",
    "420100",
    "370200",
]
_NAMES = [
    "华建",
    "远通",
    "恒信",
    "金石",
    "新元",
    "宏达",
    "天工",
    "明德",
    "瑞丰",
    "中和",
    "安泰",
    "博远",
    "长青",
    "东升",
    "永盛",
    "正和",
]
_TRADES = ["建设工程", "商贸", "科技", "物流", "食品", "医药", "建材", "劳务", "环保", "置业"]
_AUTHORITIES = {
    "court_defaulter": "北京市第一中级人民法院",
    "tax_major_violation": "国家税务总局上海市税务局",
    "market_serious_violation": "深圳市市场监督管理局",
    "wage_arrears": "杭州市人力资源和社会保障局",
    "work_safety_serious": "贵阳市应急管理局",
    "statistics_serious": "安康市统计局",
    "procurement_serious": "苏州市财政局",
    "customs_dishonest": "青岛海关",
    "social_org_serious": "成都市民政局",
    "focus": "武汉市市场监督管理局",
    "business_abnormal": "上海市浦东新区市场监督管理局",
    "tax_grade_a": "国家税务总局浙江省税务局",
    "customs_advanced": "杭州海关",
    "integrity_model": "贵州省发展和改革委员会",
}
GRADE_SHARES = [("excellent", 0.023), ("good", 0.764), ("fair", 0.20), ("poor", 0.013)]


def make_uscc(rnd: random.Random) -> str:
    body = "".join(rnd.choice(_BODY) for _ in range(8))
    first16 = "91" + rnd.choice(_REGIONS) + body
    first17 = first16 + calc_organisation_check_digit(body)
    return first17 + calc_check_digit(first17)


def population(n: int, seed: int = 2026) -> tuple[list[EntryInput], list[tuple[str, Grade]]]:
    """Entries and grades of ``n`` subjects (deterministic for a seed)."""
    rnd = random.Random(seed)
    list_types = list(_AUTHORITIES)
    codes = list(dict.fromkeys(make_uscc(rnd) for _ in range(n)))
    entries: list[EntryInput] = []
    grades: list[tuple[str, Grade]] = []
    as_of = TODAY.replace(day=1)
    for i, code in enumerate(codes):
        name = f"{rnd.choice(_NAMES)}{rnd.choice(_TRADES)}有限公司"
        pick = rnd.random()
        value = next((g for g, share in _cumulative() if pick < share), "good")
        grades.append((code, Grade(value, "公共信用综合评价", as_of)))  # type: ignore[arg-type]
        if i % 4:  # three in four subjects have no list entry
            continue
        list_type = list_types[(i // 4) % len(list_types)]
        listed = TODAY - timedelta(days=rnd.randint(30, 600))
        entries.append(
            EntryInput(
                uscc=code,
                subject_name=name,
                list_type=list_type,
                authority=_AUTHORITIES[list_type],
                reason="演示数据",
                basis="演示数据",
                document_no=f"(2026)演{i:06d}号",
                listed_on=listed,
                expires_on=listed + timedelta(days=rnd.choice([365, 730, 1095])),
                source="demo",
                source_id=f"demo-{i}",
            )
        )
    return entries, grades


def _cumulative() -> list[tuple[str, float]]:
    total, out = 0.0, []
    for grade, share in GRADE_SHARES:
        total += share
        out.append((grade, total))
    return out


async def create_demo_database(path: Path, subjects: int) -> dict[str, str]:
    """Fill the store; returns example codes: restricted, incentive, clear, suspended."""
    entries, grades = population(subjects)
    store = await Store.open(path)
    try:
        started = time.monotonic()
        result = await store.upsert_entries(entries, "demo")
        await store.put_grades(grades, "demo")
        by_type: dict[str, list[tuple[str, str]]] = {}
        for entry, entry_id in zip(entries, result.entry_ids, strict=True):
            by_type.setdefault(entry.list_type, []).append((entry.uscc, entry_id))
        # Lifecycle variety: objections, repairs, revocations, expiry, future listings.
        for uscc_id in by_type["court_defaulter"][1:40:4]:
            await store.open_objection(uscc_id[1], TODAY, "申请人提出异议", "demo")
        for uscc_id in by_type["market_serious_violation"][1:40:4]:
            await store.repair(uscc_id[1], TODAY, "(2026)信修字001号", "demo")
        for uscc_id in by_type["wage_arrears"][1:40:4]:
            await store.revoke(uscc_id[1], "认定错误，予以撤销", "demo")
        late = [
            EntryInput(
                uscc=u,
                list_type="focus",
                listed_on=TODAY + timedelta(days=30),
                subject_name="未生效演示",
                authority=_AUTHORITIES["focus"],
                source="demo",
                source_id=f"demo-future-{n}",
            )
            for n, (u, _) in enumerate(by_type["tax_grade_a"][:20])
        ]
        gone = [
            EntryInput(
                uscc=u,
                list_type="court_defaulter",
                subject_name="已过期演示",
                listed_on=TODAY - timedelta(days=900),
                expires_on=TODAY - timedelta(days=170),
                authority=_AUTHORITIES["court_defaulter"],
                source="demo",
                source_id=f"demo-expired-{n}",
            )
            for n, (u, _) in enumerate(by_type["integrity_model"][:20])
        ]
        await store.upsert_entries(late + gone, "demo")
        grade_of = dict(grades)
        incentive = next(
            u for u, _ in by_type["tax_grade_a"][20:] if grade_of[u].value in ("good", "excellent")
        )
        restricted = by_type["court_defaulter"][0][0]
        suspended = by_type["court_defaulter"][1][0]
        listed = {e.uscc for e in entries}
        clear = next(u for u, g in grades if u not in listed and g.value == "good")
        print(
            f"demo database {path}: {len(grades)} subjects, {len(entries) + 40} entries "
            f"({time.monotonic() - started:.1f} s)",
            file=sys.stderr,
        )
    finally:
        await store.close()
    return {
        "restricted": restricted,
        "incentive": incentive,
        "clear": clear,
        "suspended": suspended,
    }


async def _prepare(db: Path, subjects: int) -> tuple[str, dict[str, str]]:
    fresh = not db.exists()
    if not fresh:
        db.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    examples = await create_demo_database(db, subjects)
    store = await Store.open(db)
    try:
        _, key = await store.create_key(
            "演示审批系统", "演示政务服务中心", ["check", "feedback", "lists", "reports"]
        )
    finally:
        await store.close()
    return key, examples


def run_demo(db: str, subjects: int, port: int, *, serve: bool = True) -> int:
    import os

    from gateway.cli import describe
    from gateway.cli import serve as serve_api
    from gateway.settings import Settings

    print(describe(load()), file=sys.stderr)
    key, examples = asyncio.run(_prepare(Path(db), subjects))
    base = f"http://127.0.0.1:{port}"
    auth = f"-H 'Authorization: Bearer {key}'"
    print(f"""
Demo key (shown once): {key}

Restricted — a 失信被执行人 bidding for a contract:
  curl -s {auth} '{base}/v1/check?uscc={examples["restricted"]}&matter=bidding'

Incentive — an A级纳税人 with a good grade applying for a licence:
  curl -s {auth} '{base}/v1/check?uscc={examples["incentive"]}&matter=licensing'

Clear — no entry, good grade, bidding:
  curl -s {auth} '{base}/v1/check?uscc={examples["clear"]}&matter=bidding'

Suspended — a 失信被执行人 under objection (异议), procurement:
  curl -s {auth} -H 'Content-Type: application/json' -d '{{"uscc": "{examples["suspended"]}", "matter": "procurement"}}' {base}/v1/check

Feedback (反馈) on a check, with its check_id:
  curl -s {auth} -H 'Content-Type: application/json' -d '{{"measures": [{{"code": "P-BID-01", "executed": true}}], "outcome": "不予受理"}}' {base}/v1/checks/<check_id>/feedback

Credit-office console (信用办控制台): {base}/console  (paste the demo key, look up {examples["restricted"]})
Metrics: {base}/metrics   OpenAPI: {base}/schema/openapi.json   Ready: {base}/readyz
""")  # noqa: E501
    if not serve:
        return 0
    os.environ["GATEWAY_DB"] = db
    print(f"serving on {base} (Ctrl-C stops)", file=sys.stderr)
    return serve_api(Settings.from_env(), "127.0.0.1", port, 1)
