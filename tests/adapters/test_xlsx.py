"""XLSX reader: rows numbered under the header, cells as text, streamed, closed."""

from __future__ import annotations

import os
import tracemalloc
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]
from openpyxl.styles import Font  # type: ignore[import-untyped, unused-ignore]

from adapters.sources.files import SourceError, detect_format, read
from adapters.sources.xlsx import cell_text, read_xlsx

HEADER = ["统一社会信用代码", "对象名称", "列入时间", "预计退出日期", "涉及人数", "拖欠金额(万元)"]


def _save(path: Path, rows: Sequence[Sequence[object]], *, title: str = "名单") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_rows_are_read_with_cells_as_text(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "wage.xlsx",
        [
            HEADER,
            ["91110000600037341L", " 北京某某建设有限公司 ", date(2026, 3, 1), None, 12, 3.0],
            [
                "91310000631696382C",
                "上海某某劳务有限公司",
                datetime(2026, 3, 2, 10, 20),
                "",
                7,
                12.5,
            ],
        ],
    )
    assert list(read_xlsx(path)) == [
        (
            1,
            {
                "统一社会信用代码": "91110000600037341L",
                "对象名称": "北京某某建设有限公司",
                "列入时间": "2026-03-01",
                "预计退出日期": "",
                "涉及人数": "12",
                "拖欠金额(万元)": "3",
            },
        ),
        (
            2,
            {
                "统一社会信用代码": "91310000631696382C",
                "对象名称": "上海某某劳务有限公司",
                "列入时间": "2026-03-02",
                "预计退出日期": "",
                "涉及人数": "7",
                "拖欠金额(万元)": "12.5",
            },
        ),
    ]


def test_header_is_the_first_non_empty_row_and_blank_rows_still_count(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet["B3"], sheet["C3"] = " 名称 ", "列入日期"  # rows 1-2 empty: header on sheet row 3
    sheet["B4"], sheet["C4"] = "甲公司", date(2026, 3, 1)
    sheet["B6"], sheet["C6"] = "乙公司", "2026/3/2"  # sheet row 5 left blank
    for row in range(7, 12):  # trailing rows Excel keeps: styled but empty, or only spaces
        sheet.cell(row=row, column=2).font = Font(bold=True)
        sheet.cell(row=row, column=3).value = "   " if row % 2 else None
    workbook.save(tmp_path / "e.xlsx")
    assert list(read_xlsx(tmp_path / "e.xlsx")) == [
        (1, {"名称": "甲公司", "列入日期": "2026-03-01"}),
        (3, {"名称": "乙公司", "列入日期": "2026/3/2"}),
    ]


def test_cells_beyond_the_header_are_flagged_and_reading_goes_on(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "e.xlsx",
        [["名称", "列入日期"], ["甲公司", "2026-03-01", "多余", "更多"], ["乙公司", "2026-03-02"]],
    )
    assert list(read_xlsx(path)) == [
        (1, {"__error__": "2 more cells than header columns"}),
        (2, {"名称": "乙公司", "列入日期": "2026-03-02"}),
    ]


def test_a_cell_under_an_unnamed_header_column_is_flagged(tmp_path: Path) -> None:
    path = _save(tmp_path / "e.xlsx", [["名称", None, "列入日期"], ["甲", "?", "2026-03-01"]])
    assert list(read_xlsx(path)) == [(1, {"__error__": "1 cells in columns without a header name"})]


def test_sheets_are_chosen_by_name_or_index(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.title = "说明"
    workbook.active.append(["本表为公开数据"])
    data = workbook.create_sheet("名单")
    data.append(["名称"])
    data.append(["甲公司"])
    workbook.save(tmp_path / "e.xlsx")
    path = tmp_path / "e.xlsx"
    assert list(read_xlsx(path)) == []
    assert list(read_xlsx(path, sheet="名单")) == [(1, {"名称": "甲公司"})]
    assert list(read_xlsx(path, sheet=1)) == [(1, {"名称": "甲公司"})]
    with pytest.raises(SourceError, match=r"e\.xlsx: no sheet '数据'; worksheets: '说明', '名单'"):
        list(read_xlsx(path, sheet="数据"))
    with pytest.raises(SourceError, match=r"no sheet 2;"):
        list(read_xlsx(path, sheet=2))


def test_a_wrong_dimension_record_does_not_cut_rows_short(tmp_path: Path) -> None:
    """Some exporters write <dimension ref="A1"/>; read-only mode must not trust it."""
    good = _save(tmp_path / "good.xlsx", [["名称", "列入日期"], ["甲公司", "2026-03-01"]])
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b'<dimension ref="A1:B2" />' in data
                data = data.replace(b'<dimension ref="A1:B2" />', b'<dimension ref="A1"/>')
            target.writestr(item, data)
    assert list(read_xlsx(bad)) == [(1, {"名称": "甲公司", "列入日期": "2026-03-01"})]


def test_an_empty_workbook_is_a_source_error(tmp_path: Path) -> None:
    path = _save(tmp_path / "empty.xlsx", [])
    with pytest.raises(SourceError, match=r"empty\.xlsx: empty sheet, no header row"):
        list(read_xlsx(path))


def test_a_file_that_is_not_a_workbook_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("名称,列入日期\n甲公司,2026-03-01\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"fake\.xlsx: not an XLSX workbook"):
        list(read_xlsx(path))


def test_format_detection_and_read_dispatch(tmp_path: Path) -> None:
    assert detect_format(Path("名单.XLSX")) == "xlsx"
    with pytest.raises(SourceError, match=r"old Excel \.xls format is not supported"):
        detect_format(Path("名单.xls"))
    path = _save(tmp_path / "e.xlsx", [["名称"], ["甲公司"]])
    assert list(read(path)) == [(1, {"名称": "甲公司"})]
    assert list(read(path, "xlsx")) == [(1, {"名称": "甲公司"})]
    with pytest.raises(SourceError, match=r"encoding applies to CSV files only"):
        read(path, encoding="gb18030")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (date(2026, 3, 1), "2026-03-01"),
        (datetime(2026, 3, 1, 23, 59), "2026-03-01"),
        (12, "12"),
        (12.0, "12"),
        (0.5, "0.5"),
        (True, "TRUE"),
        ("  甲  ", "甲"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_rows_stream_rather_than_load_the_sheet(tmp_path: Path) -> None:
    """Memory while reading stays far below what loading the sheet's cells would take."""
    rows = 3_000
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["统一社会信用代码", "对象名称", "序号"])
    for number in range(rows):
        sheet.append(["91110000600037341L", "某某建设有限公司", number])
    workbook.save(tmp_path / "big.xlsx")
    tracemalloc.start()
    try:
        reader = read_xlsx(tmp_path / "big.xlsx")
        first = next(reader)
        opened, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = 1 + sum(1 for _ in reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == (
        1,
        {"统一社会信用代码": "91110000600037341L", "对象名称": "某某建设有限公司", "序号": "0"},
    )
    assert count == rows
    # Loading the whole sheet costs about 1 KiB a row here (3.6 MB); streaming grows by
    # well under a tenth of that.
    assert peak - opened < 1_000_000


def _open_handles(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_workbook_is_closed_when_reading_ends_or_stops(tmp_path: Path) -> None:
    path = _save(tmp_path / "e.xlsx", [["名称"], ["甲公司"], ["乙公司"]])
    reader = read_xlsx(path)
    assert next(reader) == (1, {"名称": "甲公司"})
    assert _open_handles(path) == 1
    reader.close()  # a caller that stops early
    assert _open_handles(path) == 0
    assert len(list(read_xlsx(path))) == 2
    assert _open_handles(path) == 0
