"""Readers for list files: CSV (UTF-8, with or without BOM) and JSONL.

Each yields ``(row_number, record)`` where ``record`` maps field names to
strings (JSONL values are passed through), streaming: memory stays flat
whatever the file size. Row numbers count data rows from 1 (a CSV header is
not a row; a blank JSONL line still counts, so numbers match the file's lines).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

Format = Literal["csv", "jsonl"]


class SourceError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise SourceError(
        f"{path.name}: cannot tell the format from the extension; pass --format csv|jsonl"
    )


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise SourceError(f"{path.name}: empty file, no header row")
            header = [name.strip() for name in reader.fieldnames]
            reader.fieldnames = header
            for number, row in enumerate(reader, start=1):
                extra = row.pop(None, None)
                if extra:
                    yield number, {"__error__": f"{len(extra)} more cells than header columns"}
                    continue
                yield number, {k: (v or "").strip() for k, v in row.items()}
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path.name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


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


def read(path: Path, fmt: Format | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    fmt = fmt or detect_format(path)
    return read_csv(path) if fmt == "csv" else read_jsonl(path)
