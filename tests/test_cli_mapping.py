"""``python -m gateway import --mapping``: a source's own layout, encoding and format, as a
new province would send it, imported without code."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

from openpyxl import Workbook  # type: ignore[import-untyped]

from gateway.store import Store
from tests.fixtures import run_gateway as gateway

COURT_HEADER = [
    "被执行人姓名/名称",
    "统一社会信用代码",
    "执行法院",
    "执行依据文号",
    "案号",
    "失信被执行人行为具体情形",
    "发布时间",
]
COURT_ROWS = [
    [
        "北京某某建设有限公司",
        "91110000600037341L",
        "北京市第一中级人民法院",
        "(2025)京01民初12号",
        "(2026)京01执123号",
        "有履行能力而拒不履行",
        "2026年3月1日",
    ],
    [
        "天津某某商贸有限公司",
        "91120224064012553U",
        "天津市第二中级人民法院",
        "(2025)津02民初7号",
        "(2026)津02执45号",
        "违反财产报告制度",
        "2026/3/5",
    ],
    [
        "某某物流公司",
        "110105012345678",
        "北京市朝阳区人民法院",
        "(2025)京0105民初9号",
        "(2026)京0105执9号",
        "虚假诉讼",
        "20260310",
    ],
]


def entries(db: Path, uscc: str) -> list[tuple[str, str, str, str, str | None]]:
    async def go() -> list[tuple[str, str, str, str, str | None]]:
        async with await Store.open(db) as store:
            return [
                (
                    e.list_type,
                    e.authority,
                    e.document_no,
                    e.listed_on.isoformat(),
                    e.expires_on.isoformat() if e.expires_on else None,
                )
                for e in await store.subject_entries(uscc)
            ]

    return asyncio.run(go())


def test_court_export_in_gb18030_with_a_registration_number(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    path = tmp_path / "失信被执行人.csv"
    with path.open("w", encoding="gb18030", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COURT_HEADER)
        writer.writerows(COURT_ROWS)
    refused = gateway(db, "import", str(path), "--mapping", "court_defaulter")
    assert refused.returncode == 1
    assert (
        "row 3: uscc: 统一社会信用代码: '110105012345678' is a 15-digit registration number"
        in refused.stderr
    )
    report = path.with_name(path.name + ".rejected.csv")
    with report.open(encoding="utf-8-sig") as handle:
        header, rejected, *rest = list(csv.reader(handle))
    assert header == ["row", "field", "reason"]
    assert rejected[:2] == ["3", "uscc"]
    assert "'110105012345678' is a 15-digit registration number" in rejected[2]
    assert rest == []
    assert entries(db, "91110000600037341L") == []
    applied = gateway(db, "import", str(path), "--mapping", "court_defaulter", "--allow-partial")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip().endswith(
        "3 rows: 2 inserted, 0 updated, 0 unchanged, 1 rejected; applied"
    )
    assert entries(db, "91110000600037341L") == [
        ("court_defaulter", "北京市第一中级人民法院", "(2026)京01执123号", "2026-03-01", None)
    ]
    again = gateway(db, "import", str(path), "--mapping", "court_defaulter", "--allow-partial")
    assert "0 inserted, 0 updated, 2 unchanged" in again.stdout


def test_wage_arrears_spreadsheet(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(
        [
            "对象名称",
            "统一社会信用代码",
            "列入时间",
            "预计退出日期",
            "发布机关名称",
            "文书号",
            "列入黑名单事由",
            "列入依据",
        ]
    )
    sheet.append(
        [
            "杭州某某劳务有限公司",
            "91310000631696382C",
            "2026-06-01",
            None,
            "杭州市人力资源和社会保障局",
            "杭人社欠〔2026〕1号",
            "拖欠农民工工资",
            "《保障农民工工资支付条例》第四十八条",
        ]
    )
    path = tmp_path / "wage.xlsx"
    workbook.save(path)
    result = gateway(db, "import", str(path), "--mapping", "wage_arrears")
    assert result.returncode == 0, result.stderr
    assert entries(db, "91310000631696382C") == [
        (
            "wage_arrears",
            "杭州市人力资源和社会保障局",
            "杭人社欠〔2026〕1号",
            "2026-06-01",
            "2029-05-31",
        )
    ]


def test_unknown_mapping_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    result = gateway(tmp_path / "g.db", "import", str(path), "--mapping", "no_such_layout")
    assert result.returncode == 2
    assert result.stderr.startswith("error: mapping: ")
    assert "Traceback" not in result.stderr
