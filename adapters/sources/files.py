"""Readers for list files: CSV (UTF-8 with or without BOM, or GB18030), JSONL and XLSX.

Each yields ``(row_number, record)`` where ``record`` maps field names to
strings (JSONL values are passed through), streaming: memory stays flat
whatever the file size. Row numbers count data rows from 1 (a CSV header is
not a row; a blank JSONL line still counts, so numbers match the file's lines).

A CSV's encoding, unless given, is decided on its first 64 KiB: UTF-8 with a
BOM, UTF-8, else GB18030 (what Chinese government systems export; a superset
of GBK and GB2312). XLSX is read by :mod:`adapters.sources.xlsx`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

Format = Literal["csv", "jsonl", "xlsx"]

#: How many bytes decide a CSV's encoding.
SAMPLE_BYTES = 64 * 1024
_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030"}


class SourceError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".xlsx":
        return "xlsx"
    if suffix == ".xls":
        raise SourceError(
            f"{path.name}: the old Excel .xls format is not supported; save it as .xlsx or .csv"
        )
    raise SourceError(
        f"{path.name}: cannot tell the format from the extension; pass --format csv|jsonl|xlsx"
    )


def _codec(path: Path, encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise SourceError(f"{path.name}: unknown encoding {encoding!r}") from None
    # A UTF-8 BOM is dropped whichever way UTF-8 was asked for.
    return "utf-8-sig" if name == "utf-8" else name


def _decode_error(sample: bytes, encoding: str) -> UnicodeDecodeError | None:
    # Not final: the sample may end inside a character; what follows is checked
    # while reading.
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(sample, False)
    except UnicodeDecodeError as exc:
        return exc
    return None


def detect_encoding(path: Path, sample: bytes) -> str:
    """The codec for a CSV whose first bytes are ``sample``: utf-8-sig, or gb18030."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(
            f"{path.name}: UTF-16 text (Excel 'Unicode text'); save it as CSV UTF-8 "
            "or pass the encoding explicitly"
        )
    utf8 = _decode_error(sample, "utf-8")
    if utf8 is None:
        return "utf-8-sig"
    gb = _decode_error(sample, "gb18030")
    if gb is None:
        return "gb18030"
    raise SourceError(
        f"{path.name}: not UTF-8 ({utf8.reason} at byte {utf8.start}) "
        f"nor GB18030 ({gb.reason} at byte {gb.start}); pass the encoding explicitly"
    )


def _text(
    path: Path, binary: io.BufferedReader[io.FileIO], encoding: str | None
) -> io.TextIOWrapper:
    if encoding is None:  # peek, not read: pipes can't seek back
        codec = detect_encoding(path, binary.peek(SAMPLE_BYTES)[:SAMPLE_BYTES])
    else:
        codec = _codec(path, encoding)
    return io.TextIOWrapper(binary, encoding=codec, newline="")


def _not_decodable(
    path: Path, binary: BinaryIO, codec: str, exc: UnicodeDecodeError
) -> SourceError:
    # ``exc.object`` is the tail of what was read so far (bytes held over from
    # the previous chunk + the chunk): its end is the binary stream's position.
    offset = binary.tell() - len(exc.object) + exc.start
    label = _LABELS.get(codec, codec)
    return SourceError(f"{path.name}: not {label} ({exc.reason} at byte {offset})")


def read_csv(path: Path, encoding: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV; ``encoding`` (any Python codec name) overrides the detection."""
    with (
        io.BufferedReader(io.FileIO(path), SAMPLE_BYTES) as binary,
        _text(path, binary, encoding) as handle,
    ):
        try:
            # csv.reader and one dict per row: twice as fast as csv.DictReader.
            reader = csv.reader(handle)
            first = next(reader, None)
            if not first:
                raise SourceError(f"{path.name}: empty file, no header row")
            header = [name.strip() for name in first]
            width = len(header)
            number = 0
            for cells in reader:
                if not cells:  # a blank line is not a row (as csv.DictReader has it)
                    continue
                number += 1
                if len(cells) > width:
                    yield (
                        number,
                        {"__error__": f"{len(cells) - width} more cells than header columns"},
                    )
                    continue
                if len(cells) < width:
                    cells += [""] * (width - len(cells))
                yield number, dict(zip(header, map(str.strip, cells), strict=True))
        except UnicodeDecodeError as exc:
            raise _not_decodable(path, binary, handle.encoding, exc) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, {"__error__": f"not valid JSON: {exc.msg}"}
                    continue
                if not isinstance(value, dict):
                    yield number, {"__error__": "each line must be a JSON object"}
                    continue
                yield number, value
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path.name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def read(
    path: Path, fmt: Format | None = None, encoding: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a file in ``fmt`` (else told by the extension).

    ``encoding`` applies to CSV; JSONL is UTF-8 by definition and XLSX carries
    its own, so for them only ``None`` or a UTF-8 name is accepted.
    """
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return read_csv(path, encoding)
    if encoding is not None and _codec(path, encoding) != "utf-8-sig":
        raise SourceError(f"{path.name}: an encoding applies to CSV files only, not {fmt}")
    if fmt == "xlsx":
        from adapters.sources.xlsx import read_xlsx  # openpyxl only when needed

        return read_xlsx(path)
    return read_jsonl(path)
