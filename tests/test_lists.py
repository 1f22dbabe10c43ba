"""File import of list entries and grades: exact summaries, exact rejections, all or nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.importer import import_file
from gateway.lists import ImportSummary
from gateway.model import ENTRY_FIELDS, Grade
from gateway.store import Store
from measures_catalog import Catalog

BEIJING, SHANGHAI, TIANJIN = "91110000600037341L", "91310000631696382C", "91120224064012553U"
OTHERS = ("91110000710926094P", "91310115MA1K3BTP2B", "9144030071526726XG", "91620105L015101280")
ROWS: list[dict[str, str]] = [
    dict(zip(ENTRY_FIELDS, line.split("|"), strict=True))
    for line in (
        f"{BEIJING}|北京某某建设有限公司|court_defaulter|北京市第一中级人民法院"
        "|有履行能力而拒不履行, 经催告仍不履行|《失信被执行人名单规定》第一条"
        "|(2026)京01执123号|2026-03-01|2028-03-01|court|C-001",
        f"{SHANGHAI}|上海某某贸易有限公司|tax_grade_a|国家税务总局上海市税务局|纳税信用A级"
        "|《纳税信用管理办法》|沪税信〔2026〕1号|2026-04-01|2027-03-31|tax|T-001",
        f"{TIANJIN}|天津某某物流有限公司|business_abnormal|天津市市场监督管理局"
        "|通过登记的住所无法联系|《企业经营异常名录管理暂行办法》第四条|津市监异〔2026〕7号"
        "|2026-05-10||market|M-001",
    )
]


def write_csv(
    path: Path, rows: list[Any], *, encoding: str = "utf-8", header: tuple[str, ...] = ENTRY_FIELDS
) -> Path:
    """Rows as dicts (canonical columns) or as lists of cells, under ``header``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(f, "") for f in ENTRY_FIELDS] if isinstance(row, dict) else row)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def do_import(db: Path, catalog: Catalog, path: Path, **options: Any) -> ImportSummary:
    async def go() -> ImportSummary:
        async with await Store.open(db) as store:
            return await import_file(store, catalog, path, **options)

    return asyncio.run(go())


def stored(db: Path, *usccs: str, grades: bool = False) -> dict[str, Any]:
    """Each subject's entries (or, with ``grades``, its grade) as the store has them."""

    async def go() -> dict[str, Any]:
        async with await Store.open(db) as store:
            get = store.get_grade if grades else store.subject_entries
            return {u: await get(u) for u in usccs}

    return asyncio.run(go())


def pairs(summary: ImportSummary) -> list[tuple[int, str]]:
    return [(r.row, r.field) for r in summary.rejected]


@pytest.fixture
def canonical_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "csv": write_csv(tmp_path / "entries.csv", ROWS),
        "csv with BOM": write_csv(tmp_path / "bom.csv", ROWS, encoding="utf-8-sig"),
        "jsonl": write_jsonl(tmp_path / "entries.jsonl", ROWS),
    }


@pytest.mark.parametrize("kind", ["csv", "csv with BOM", "jsonl"])
def test_a_canonical_file_imports_every_row_with_its_fields(
    tmp_path: Path, catalog: Catalog, canonical_files: dict[str, Path], kind: str
) -> None:
    db = tmp_path / "gateway.db"
    summary = do_import(db, catalog, canonical_files[kind])
    assert summary == ImportSummary(rows=3, inserted=3, applied=True)
    entries = stored(db, BEIJING, SHANGHAI, TIANJIN)
    for row in ROWS:
        (entry,) = entries[row["uscc"]]
        fields = {k: v for k, v in msgspec.to_builtins(entry).items() if k != "entry_id"}
        assert fields == {**row, "expires_on": row["expires_on"] or None, "status": "active"}


def test_reimporting_the_same_file_changes_nothing(
    tmp_path: Path, catalog: Catalog, canonical_files: dict[str, Path]
) -> None:
    db = tmp_path / "gateway.db"
    do_import(db, catalog, canonical_files["csv"])
    before = stored(db, BEIJING, SHANGHAI, TIANJIN)
    assert do_import(db, catalog, canonical_files["csv"]) == ImportSummary(
        rows=3, unchanged=3, applied=True
    )
    assert do_import(db, catalog, canonical_files["jsonl"]).unchanged == 3  # same entries
    assert stored(db, BEIJING, SHANGHAI, TIANJIN) == before


def test_changing_one_rows_authority_updates_that_entry_only(
    tmp_path: Path, catalog: Catalog, canonical_files: dict[str, Path]
) -> None:
    db = tmp_path / "gateway.db"
    do_import(db, catalog, canonical_files["csv"])
    (before,) = stored(db, SHANGHAI)[SHANGHAI]
    changed = [dict(ROWS[0]), {**ROWS[1], "authority": "国家税务总局上海市浦东新区税务局"}, ROWS[2]]
    summary = do_import(db, catalog, write_csv(tmp_path / "changed.csv", changed))
    assert summary == ImportSummary(rows=3, updated=1, unchanged=2, applied=True)
    (after,) = stored(db, SHANGHAI)[SHANGHAI]
    assert after.entry_id == before.entry_id
    assert after.authority == "国家税务总局上海市浦东新区税务局"


BAD_CSV_ROWS: list[Any] = [
    ROWS[0],
    {**ROWS[1], "uscc": "91310000631696382X", "source_id": "T-002"},
    {**ROWS[1], "uscc": OTHERS[0], "list_type": "blacklist", "source_id": "T-003"},
    {**ROWS[1], "uscc": OTHERS[1], "listed_on": "2026/13/01", "source_id": "T-004"},
    {**ROWS[1], "uscc": OTHERS[2], "expires_on": "2026-03-31", "source_id": "T-005"},
    {**ROWS[1], "uscc": OTHERS[3], "listed_on": "", "source_id": "T-006"},
    [*(ROWS[1][f] for f in ENTRY_FIELDS[:-1]), "T-007", "多余"],
    {**ROWS[2], "uscc": "92340602MA2PBMEM24", "source": "court", "source_id": "C-001"},
    ROWS[1],
]
BAD_CSV_PAIRS = [(2, "uscc"), (3, "list_type"), (4, "listed_on"), (5, "expires_on")]
BAD_CSV_PAIRS += [(6, "listed_on"), (7, "*"), (8, "source_id")]
EVERYONE = (BEIJING, SHANGHAI, TIANJIN, *OTHERS, "92340602MA2PBMEM24")


def test_bad_csv_rows_are_each_rejected_and_nothing_is_applied(
    tmp_path: Path, catalog: Catalog
) -> None:
    db = tmp_path / "gateway.db"
    do_import(db, catalog, write_jsonl(tmp_path / "first.jsonl", [ROWS[2]]))
    before = stored(db, *EVERYONE)
    summary = do_import(db, catalog, write_csv(tmp_path / "bad.csv", BAD_CSV_ROWS))
    assert summary == ImportSummary(
        rows=9, rejected=summary.rejected, rejected_total=7, applied=False
    )
    assert pairs(summary) == BAD_CSV_PAIRS
    messages = {r.row: r.message for r in summary.rejected}
    assert messages[2].endswith("[rule: check_digit]")
    assert messages[3].startswith("unknown list type 'blacklist'; known: court_defaulter, ")
    assert messages[4] == "'2026/13/01' is not a date YYYY-MM-DD"
    assert messages[5] == "earlier than listed_on"
    assert messages[6] == "required (a date YYYY-MM-DD)"
    assert messages[7] == "1 more cells than header columns"
    assert messages[8] == "same (source, source_id) as row 1"
    assert stored(db, *EVERYONE) == before


def test_allow_partial_applies_the_valid_rows_and_still_reports_the_rest(
    tmp_path: Path, catalog: Catalog
) -> None:
    db = tmp_path / "gateway.db"
    bad = write_csv(tmp_path / "bad.csv", BAD_CSV_ROWS)
    summary = do_import(db, catalog, bad, allow_partial=True)
    assert summary == ImportSummary(
        rows=9, inserted=2, rejected=summary.rejected, rejected_total=7, applied=True
    )
    assert pairs(summary) == BAD_CSV_PAIRS
    entries = stored(db, *EVERYONE)
    assert [e.source_id for e in entries[BEIJING]] == ["C-001"]
    assert [e.source_id for e in entries[SHANGHAI]] == ["T-001"]
    assert all(entries[u] == [] for u in EVERYONE if u not in (BEIJING, SHANGHAI))


def test_bad_jsonl_lines_are_rejected_by_line_number(tmp_path: Path, catalog: Catalog) -> None:
    db = tmp_path / "gateway.db"
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            ROWS[0],
            {**ROWS[1], "sourceid": "T-001"},
            '{"uscc": "91120224064012553U", "list_type": ',
            "[1, 2]",
            "",
            ROWS[2],
            {**ROWS[2], "uscc": OTHERS[0]},
        ],
    )
    summary = do_import(db, catalog, path)
    assert summary.rows == 6
    assert pairs(summary) == [(2, "sourceid"), (3, "*"), (4, "*"), (7, "source_id")]
    assert summary.rejected[0].message.startswith("unknown field; expected: uscc, subject_name")
    assert summary.rejected[1].message.startswith("not valid JSON")
    assert summary.rejected[2].message == "each line must be a JSON object"
    assert summary.rejected[3].message == "same (source, source_id) as row 6"
    assert summary.applied is False
    assert stored(db, *EVERYONE) == {u: [] for u in EVERYONE}


def test_an_unknown_csv_column_rejects_every_row_on_that_column(
    tmp_path: Path, catalog: Catalog
) -> None:
    rows = [[*r.values(), "备注"] for r in ROWS]
    path = write_csv(tmp_path / "extra.csv", rows, header=(*ENTRY_FIELDS, "remark"))
    summary = do_import(tmp_path / "gateway.db", catalog, path)
    assert pairs(summary) == [(1, "remark"), (2, "remark"), (3, "remark")]
    assert summary.applied is False


def test_dates_other_than_yyyy_mm_dd_are_rejected(tmp_path: Path, catalog: Catalog) -> None:
    rows = [{**ROWS[0], "listed_on": "20260301"}, {**ROWS[1], "expires_on": "2027-W13-3"}]
    summary = do_import(tmp_path / "gateway.db", catalog, write_csv(tmp_path / "d.csv", rows))
    assert pairs(summary) == [(1, "listed_on"), (2, "expires_on")]
    assert summary.applied is False


def write_grades(path: Path, lines: list[str], header: str = "uscc,grade,source,as_of") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_a_grades_file_is_applied(tmp_path: Path, catalog: Catalog) -> None:
    db = tmp_path / "gateway.db"
    path = write_grades(
        tmp_path / "grades.csv",
        [f"{SHANGHAI},good,公共信用综合评价,2026-10-01", f"{TIANJIN},poor,公共信用综合评价,"],
    )
    summary = do_import(db, catalog, path, kind="grades")
    assert (summary.rows, summary.rejected, summary.applied) == (2, [], True)
    assert stored(db, SHANGHAI, TIANJIN, BEIJING, grades=True) == {
        SHANGHAI: Grade("good", "公共信用综合评价", date(2026, 10, 1)),
        TIANJIN: Grade("poor", "公共信用综合评价", None),
        BEIJING: None,
    }


def test_an_unknown_grade_is_rejected_with_its_row(tmp_path: Path, catalog: Catalog) -> None:
    db = tmp_path / "gateway.db"
    path = write_grades(
        tmp_path / "grades.csv",
        [f"{SHANGHAI},good,评价,2026-10-01", f"{TIANJIN},A+,评价,2026-10-01"],
    )
    summary = do_import(db, catalog, path, kind="grades")
    assert pairs(summary) == [(2, "grade")]
    assert summary.rejected[0].message == "unknown grade 'A+'; known: excellent, good, fair, poor"
    assert summary.applied is False
    assert stored(db, SHANGHAI, TIANJIN, grades=True) == {SHANGHAI: None, TIANJIN: None}
    partial = do_import(db, catalog, path, kind="grades", allow_partial=True)
    assert (pairs(partial), partial.applied) == ([(2, "grade")], True)
    assert stored(db, SHANGHAI, TIANJIN, grades=True) == {
        SHANGHAI: Grade("good", "评价", date(2026, 10, 1)),
        TIANJIN: None,
    }


def test_grade_import_counts_inserted_updated_and_unchanged(
    tmp_path: Path, catalog: Catalog
) -> None:
    db = tmp_path / "gateway.db"
    first = write_grades(tmp_path / "g1.csv", [f"{SHANGHAI},good,评价,", f"{TIANJIN},poor,评价,"])
    assert do_import(db, catalog, first, kind="grades") == ImportSummary(
        rows=2, inserted=2, applied=True
    )
    assert do_import(db, catalog, first, kind="grades") == ImportSummary(
        rows=2, unchanged=2, applied=True
    )
    second = write_grades(
        tmp_path / "g2.csv", [f"{SHANGHAI},excellent,评价,", f"{TIANJIN},poor,评价,"]
    )
    assert do_import(db, catalog, second, kind="grades") == ImportSummary(
        rows=2, updated=1, unchanged=1, applied=True
    )


def test_an_unknown_grades_column_is_rejected_not_ignored(tmp_path: Path, catalog: Catalog) -> None:
    db = tmp_path / "gateway.db"
    lines = [f"{SHANGHAI},good,评价,2026-10-01"]
    path = write_grades(tmp_path / "g.csv", lines, header="uscc,grade,source,asof")
    summary = do_import(db, catalog, path, kind="grades")
    assert (pairs(summary), summary.applied) == ([(1, "asof")], False)
    assert stored(db, SHANGHAI, grades=True) == {SHANGHAI: None}
