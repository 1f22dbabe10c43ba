"""CSV encodings: UTF-8, UTF-8 with BOM and GB18030 read alike; the rest is refused by offset."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from adapters.sources.files import SAMPLE_BYTES, SourceError, read, read_csv

HEADER = "统一社会信用代码,被执行人姓名/名称,执行法院,发布时间"
ROWS = (
    "91110000600037341L,北京某某建设有限公司,北京市朝阳区人民法院,2026年3月1日\r\n"
    '91310000631696382C,"上海某某贸易有限公司（分公司）",上海市浦东新区人民法院,2026/3/2\r\n'
)
EXPECTED = [
    (
        1,
        {
            "统一社会信用代码": "91110000600037341L",
            "被执行人姓名/名称": "北京某某建设有限公司",
            "执行法院": "北京市朝阳区人民法院",
            "发布时间": "2026年3月1日",
        },
    ),
    (
        2,
        {
            "统一社会信用代码": "91310000631696382C",
            "被执行人姓名/名称": "上海某某贸易有限公司（分公司）",
            "执行法院": "上海市浦东新区人民法院",
            "发布时间": "2026/3/2",
        },
    ),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_utf8_bom_and_gb18030_files_read_the_same(tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path / "court.csv", f"{HEADER}\r\n{ROWS}".encode(encoding))
    assert list(read_csv(path)) == EXPECTED
    assert list(read(path)) == EXPECTED
    assert list(read(path, "csv", encoding=encoding)) == EXPECTED


def test_gb18030_characters_outside_gbk_are_read(tmp_path: Path) -> None:
    # U+20000 and U+4DAE are four-byte sequences in GB18030, absent from GBK and GB2312.
    name = "𠀀䶮科技有限公司"
    path = _write(tmp_path / "gb.csv", f"名称\n{name}\n".encode("gb18030"))
    assert list(read_csv(path)) == [(1, {"名称": name})]


def test_an_explicit_encoding_overrides_the_detection(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", "名称\n公司\n".encode())
    assert list(read_csv(path)) == [(1, {"名称": "公司"})]
    mojibake = [(1, {"名称".encode().decode("latin-1"): "公司".encode().decode("latin-1")})]
    assert list(read_csv(path, encoding="latin-1")) == mojibake


def test_an_explicit_utf8_drops_a_bom_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.csv", "名称\n甲\n".encode("utf-8-sig"))
    assert list(read_csv(path, encoding="utf-8")) == [(1, {"名称": "甲"})]


def _utf8_error(data: bytes) -> UnicodeDecodeError:
    with pytest.raises(UnicodeDecodeError) as excinfo:
        data.decode("utf-8")
    return excinfo.value


def test_a_gb18030_file_read_as_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    data = f"{HEADER}\r\n{ROWS}".encode("gb18030")
    path = _write(tmp_path / "gb.csv", data)
    error = _utf8_error(data)
    with pytest.raises(SourceError) as excinfo:
        list(read_csv(path, encoding="utf-8"))
    assert str(excinfo.value) == f"gb.csv: not UTF-8 ({error.reason} at byte {error.start})"


def test_a_file_neither_utf8_nor_gb18030_is_refused_with_both_offsets(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", b"uscc,name\n91110000600037341L,\x80\xff\n")
    with pytest.raises(SourceError) as excinfo:
        list(read_csv(path))
    assert str(excinfo.value) == (
        "bad.csv: not UTF-8 (invalid start byte at byte 29) "
        "nor GB18030 (illegal multibyte sequence at byte 29); pass the encoding explicitly"
    )


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    path = _write(tmp_path / "u16.csv", "名称\n甲\n".encode("utf-16"))
    with pytest.raises(SourceError, match=r"u16\.csv: UTF-16 text"):
        list(read_csv(path))


def test_an_unknown_encoding_name_is_a_source_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", b"a\n1\n")
    with pytest.raises(SourceError, match=r"e\.csv: unknown encoding 'klingon'"):
        list(read_csv(path, encoding="klingon"))


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_character_cut_by_the_sample_boundary_does_not_spoil_detection(
    tmp_path: Path, encoding: str
) -> None:
    head = "名称\n".encode(encoding)
    pad = b"a" * (SAMPLE_BYTES - len(head) - 1)  # the next character starts 1 byte before the end
    data = head + pad + "甲\n".encode(encoding)
    path = _write(tmp_path / "edge.csv", data)
    rows = list(read_csv(path))
    assert rows == [(1, {"名称": pad.decode() + "甲"})]


def test_a_bad_byte_after_the_sample_is_reported_at_its_file_offset(tmp_path: Path) -> None:
    head = b"name\n" + b"91110000600037341L\n" * (SAMPLE_BYTES // 19 + 500)
    data = head + "北京\n".encode("gb18030")
    path = _write(tmp_path / "late.csv", data)
    with pytest.raises(SourceError) as excinfo:
        list(read_csv(path))
    error = _utf8_error(data)
    assert error.start == len(head)
    assert str(excinfo.value) == f"late.csv: not UTF-8 ({error.reason} at byte {len(head)})"


def test_a_csv_streams_from_a_pipe(tmp_path: Path) -> None:
    """Row 1 arrives while the writer still holds row 2: nothing waits for the whole file,
    and detection peeks rather than seeking back."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    row_one_read = threading.Event()

    def write() -> None:
        with fifo.open("wb") as pipe:
            pipe.write("名称,列入日期\n甲公司,2026-03-01\n".encode("gb18030"))
            pipe.flush()
            row_one_read.wait(10)
            pipe.write("乙公司,2026-03-02\n".encode("gb18030"))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    rows = read_csv(fifo)
    assert next(rows) == (1, {"名称": "甲公司", "列入日期": "2026-03-01"})
    assert not row_one_read.is_set()
    row_one_read.set()
    assert list(rows) == [(2, {"名称": "乙公司", "列入日期": "2026-03-02"})]
    writer.join(10)


def test_read_refuses_an_encoding_for_jsonl(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", b'{"uscc": "91110000600037341L"}\n')
    assert list(read(path, encoding="utf-8")) == [(1, {"uscc": "91110000600037341L"})]
    with pytest.raises(SourceError, match=r"e\.jsonl: an encoding applies to CSV files only"):
        read(path, encoding="gb18030")
