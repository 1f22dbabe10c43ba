"""XLSX reader: the same ``(row_number, record)`` rows as the CSV reader.

The workbook is opened with openpyxl in read-only, values-only mode, so rows
stream from the file and memory stays flat; formulas give their cached values.
The first row with any non-empty cell is the header. Row numbers count from
the header: data row 1 is the sheet row just under it, and a blank row still
counts, so row numbers plus the header's row give the sheet's own numbering.
Blank rows (and the empty rows Excel leaves at the end) yield nothing.

Cells become strings as a CSV export would write them: dates and datetimes
``YYYY-MM-DD`` (the time is dropped), whole numbers without ``.0``, empty
cells ``""``, text stripped.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]
from openpyxl.utils.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    InvalidFileException,
)

from adapters.sources.files import SourceError


def cell_text(value: Any) -> str:
    """A cell's value as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _sheet(workbook: Any, path: Path, sheet: str | int | None) -> Any:
    sheets = list(workbook.worksheets)  # chart sheets left out
    if isinstance(sheet, int) and 0 <= sheet < len(sheets):
        return sheets[sheet]
    if sheet is None and sheets:
        return sheets[0]
    for candidate in sheets:
        if candidate.title == sheet:
            return candidate
    names = ", ".join(repr(s.title) for s in sheets) or "none"
    raise SourceError(f"{path.name}: no sheet {sheet!r}; worksheets: {names}")


def _record(header: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    beyond = sum(1 for text in cells[len(header) :] if text)
    if beyond:
        return {"__error__": f"{beyond} more cells than header columns"}
    unnamed = sum(1 for name, text in zip(header, cells, strict=False) if text and not name)
    if unnamed:
        return {"__error__": f"{unnamed} cells in columns without a header name"}
    record = {name: "" for name in header if name}
    for name, text in zip(header, cells, strict=False):
        if name:
            record[name] = text
    return record


def read_xlsx(path: Path, sheet: str | int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of ``sheet`` (a name or a 0-based index; the first sheet by default)."""
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError) as exc:
        raise SourceError(f"{path.name}: not an XLSX workbook ({exc})") from None
    try:
        header: list[str] | None = None
        header_row = 0
        worksheet = _sheet(workbook, path, sheet)
        # Some exporters write a wrong <dimension> (often "A1"), which read-only
        # mode would trust and cut rows short: read what is actually there.
        worksheet.reset_dimensions()
        for sheet_row, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(value) for value in values]
            if not any(cells):
                continue
            if header is None:
                while cells and not cells[-1]:
                    cells.pop()
                header, header_row = cells, sheet_row
                continue
            yield sheet_row - header_row, _record(header, cells)
        if header is None:
            raise SourceError(f"{path.name}: empty sheet, no header row")
    finally:
        workbook.close()
