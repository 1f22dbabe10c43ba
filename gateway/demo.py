"""A few demo subjects decided against the packaged catalog (``make run``)."""

from __future__ import annotations

from datetime import date

from gateway.cli import describe
from gateway.engine import decide
from gateway.model import Grade, ListEntry
from measures_catalog import load

TODAY = date(2026, 11, 22)


def _entry(entry_id: str, uscc: str, list_type: str, **fields: object) -> ListEntry:
    return ListEntry(
        entry_id=entry_id,
        uscc=uscc,
        list_type=list_type,
        listed_on=fields.pop("listed_on", date(2026, 3, 1)),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


#: (label, uscc, entries, grade, matter, commitment)
DEMO_SUBJECTS: list[tuple[str, str, list[ListEntry], Grade | None, str, bool]] = [
    (
        "失信被执行人参与投标",
        "91110000600037341L",
        [
            _entry(
                "demo-1",
                "91110000600037341L",
                "court_defaulter",
                expires_on=date(2028, 3, 1),
                authority="北京市第一中级人民法院",
                document_no="(2026)京01执123号",
            )
        ],
        None,
        "bidding",
        False,
    ),
    (
        "A级纳税人、信用良好，申请行政许可",
        "91310000631696382C",
        [_entry("demo-2", "91310000631696382C", "tax_grade_a", expires_on=date(2027, 3, 31))],
        Grade("good", "浙江省公共信用评价", date(2026, 10, 1)),
        "licensing",
        False,
    ),
    (
        "异议核实中的失信被执行人参加政府采购",
        "91120224064012553U",
        [_entry("demo-3", "91120224064012553U", "court_defaulter", status="objection_pending")],
        None,
        "procurement",
        False,
    ),
    (
        "已信用修复的严重违法失信企业参与投标",
        "9144030071526726XG",
        [_entry("demo-4", "9144030071526726XG", "market_serious_violation", status="repaired")],
        None,
        "bidding",
        False,
    ),
    (
        "信用较差企业，双随机检查",
        "91310115MA1K3BTP2B",
        [],
        Grade("poor", "浙江省公共信用评价", date(2026, 10, 1)),
        "inspection",
        False,
    ),
    ("无记录、签署信用承诺，申请行政许可", "92340602MA2PBMEM24", [], None, "licensing", True),
]


def run_demo() -> int:
    catalog = load()
    print(describe(catalog))
    print(f"\nDemo decisions on {TODAY} (the check service arrives with the next issue):\n")
    for label, uscc, entries, grade, matter, commitment in DEMO_SUBJECTS:
        decision = decide(entries, grade, matter, catalog, TODAY, commitment=commitment)
        print(f"{label}\n  {uscc}  matter={matter}  verdict={decision.verdict}")
        for m in decision.measures:
            print(f"    [{m.state:9}] {m.code} {m.name}  ← {', '.join(m.triggered_by)}")
            print(f"                依据: {'; '.join(m.basis)}")
        print()
    return 0
