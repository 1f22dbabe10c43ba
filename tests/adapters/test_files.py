"""CSV and JSONL readers: numbered rows, UTF-8 with or without BOM, bad rows flagged, not raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sources.files import SourceError, detect_format, read, read_csv, read_jsonl

HEADER = "uscc,subject_name,list_type,listed_on"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.csv", "csv"), ("A.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl")],
)
def test_format_is_detected_from_the_extension(name: str, expected: str) -> None:
    assert detect_format(Path(name)) == expected


def test_an_unknown_extension_asks_for_format() -> None:
    with pytest.raises(SourceError, match=r"entries\.txt: cannot tell the format.*--format"):
        detect_format(Path("entries.txt"))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_csv_rows_are_numbered_from_1_after_the_header(tmp_path: Path, encoding: str) -> None:
    path = _write(
        tmp_path / "e.csv",
        f"{HEADER}\r\n"
        "91110000600037341L, 北京某某建设有限公司 ,court_defaulter,2026-03-01\r\n"
        '91310000631696382C,"上海某某, 贸易\n有限公司",tax_grade_a,2026-04-01\r\n',
        encoding,
    )
    assert list(read_csv(path)) == [
        (
            1,
            {
                "uscc": "91110000600037341L",
                "subject_name": "北京某某建设有限公司",
                "list_type": "court_defaulter",
                "listed_on": "2026-03-01",
            },
        ),
        (
            2,
            {
                "uscc": "91310000631696382C",
                "subject_name": "上海某某, 贸易\n有限公司",
                "list_type": "tax_grade_a",
                "listed_on": "2026-04-01",
            },
        ),
    ]


def test_csv_header_names_are_stripped_and_missing_cells_are_empty(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", " uscc , list_type \n91110000600037341L\n", "utf-8-sig")
    assert list(read_csv(path)) == [(1, {"uscc": "91110000600037341L", "list_type": ""})]


def test_a_csv_row_with_too_many_cells_is_flagged_and_reading_goes_on(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.csv",
        f"{HEADER}\n"
        "91110000600037341L,甲,court_defaulter,2026-03-01,extra,more\n"
        "91310000631696382C,乙,tax_grade_a,2026-04-01\n",
    )
    rows = list(read_csv(path))
    assert rows[0] == (1, {"__error__": "2 more cells than header columns"})
    assert rows[1][0] == 2
    assert rows[1][1]["uscc"] == "91310000631696382C"


def test_an_empty_csv_is_a_source_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", "")
    with pytest.raises(SourceError, match=r"e\.csv: empty file, no header row"):
        list(read_csv(path))


def test_a_csv_in_neither_utf8_nor_gb18030_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER.encode() + b"\n\x80\xff\n")
    with pytest.raises(SourceError, match=r"bad\.csv: not UTF-8 \(.* at byte \d+\)"):
        list(read_csv(path))


def test_a_gb18030_csv_reads_like_utf8(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "gb.csv",
        f"{HEADER}\n91110000600037341L,北京某某公司,court_defaulter,2026-03-01\n",
        "gb18030",
    )
    [(row, record)] = list(read_csv(path))
    assert row == 1
    assert record["subject_name"] == "北京某某公司"


def test_jsonl_rows_are_numbered_by_line_and_blank_lines_still_count(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.jsonl",
        '{"uscc": "91110000600037341L", "listed_on": "2026-03-01"}\n'
        "\n"
        '  {"uscc": "91310000631696382C", "source_id": 7, "expires_on": null}  \n',
        "utf-8-sig",
    )
    assert list(read_jsonl(path)) == [
        (1, {"uscc": "91110000600037341L", "listed_on": "2026-03-01"}),
        (3, {"uscc": "91310000631696382C", "source_id": 7, "expires_on": None}),
    ]


def test_jsonl_lines_that_are_not_json_objects_are_flagged(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.jsonl",
        '{"uscc": "91110000600037341L"\n'
        '["91110000600037341L"]\n'
        '"91110000600037341L"\n'
        "42\n"
        '{"uscc": "91310000631696382C"}\n',
    )
    rows = list(read_jsonl(path))
    assert [number for number, _ in rows] == [1, 2, 3, 4, 5]
    assert rows[0][1]["__error__"].startswith("not valid JSON: ")
    for _, record in rows[1:4]:
        assert record == {"__error__": "each line must be a JSON object"}
    assert rows[4] == (5, {"uscc": "91310000631696382C"})


def test_a_jsonl_file_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "gb.jsonl", '{"subject_name": "北京某某公司"}\n', "gb18030")
    with pytest.raises(SourceError, match=r"gb\.jsonl: not UTF-8"):
        list(read_jsonl(path))


def test_read_uses_the_given_format_over_the_extension(tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "export.txt", '{"uscc": "91110000600037341L"}\n')
    assert list(read(jsonl, "jsonl")) == [(1, {"uscc": "91110000600037341L"})]
    csv_file = _write(tmp_path / "export.csv", "uscc\n91110000600037341L\n")
    assert list(read(csv_file)) == [(1, {"uscc": "91110000600037341L"})]
    with pytest.raises(SourceError, match="--format"):
        read(jsonl)
