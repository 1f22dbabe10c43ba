"""The list side: turn source rows into canonical entries and grades, and import them.

A row is accepted only whole; every problem is reported with its row, field
and reason. By default nothing is applied from a file with any rejected row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import msgspec

from gateway.identifiers import InvalidUSCC, validate_uscc
from gateway.model import ENTRY_FIELDS, EntryInput, Grade
from measures_catalog import Catalog

GRADE_FIELDS = ("uscc", "grade", "source", "as_of")
MAX_TEXT = 2_000
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Rejection(msgspec.Struct, frozen=True):
    row: int
    field: str
    message: str


class ImportSummary(msgspec.Struct):
    rows: int = 0
    #: Every rejection counted (``rejected`` keeps the first thousand).
    rejected_total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = []
    applied: bool = False


def _date(
    value: Any, field: str, row: int, problems: list[Rejection], *, required: bool
) -> date | None:
    text = str(value or "").strip()
    if not text:
        if required:
            problems.append(Rejection(row, field, "required (a date YYYY-MM-DD)"))
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        problems.append(Rejection(row, field, f"{text!r} is not a date YYYY-MM-DD"))
        return None


def _uscc(value: Any, row: int, problems: list[Rejection]) -> str | None:
    try:
        return validate_uscc(str(value or ""))
    except InvalidUSCC as exc:
        problems.append(Rejection(row, "uscc", f"{exc.message} [rule: {exc.rule}]"))
        return None


def _text(record: Mapping[str, Any], field: str, row: int, problems: list[Rejection]) -> str:
    value = record.get(field)
    text = "" if value is None else value.strip() if type(value) is str else str(value).strip()
    if len(text) > MAX_TEXT:
        problems.append(Rejection(row, field, f"longer than {MAX_TEXT} characters"))
    return text


#: The free-text fields of an entry, taken as they are (trimmed).
_ENTRY_TEXTS = (
    "subject_name",
    "authority",
    "reason",
    "basis",
    "document_no",
    "source",
    "source_id",
)
#: Unknown columns per set of column names: a file's rows all have the same.
_unknown_columns: dict[tuple[str, ...], list[str]] = {}


def _unreadable_or_unknown(
    row: int, record: Mapping[str, Any], fields: tuple[str, ...]
) -> list[Rejection] | None:
    """A reader's error (the row is done), else a rejection per unknown column, if any."""
    if "__error__" in record:
        return None
    columns = (*fields, *record)
    unknown = _unknown_columns.get(columns)
    if unknown is None:
        if len(_unknown_columns) > 256:
            _unknown_columns.clear()
        unknown = _unknown_columns[columns] = sorted(set(record) - set(fields))
    return (
        [Rejection(row, unknown[0], f"unknown field; expected: {', '.join(fields)}")]
        if unknown
        else []
    )


def parse_entry(
    row: int, record: Mapping[str, Any], catalog: Catalog
) -> tuple[EntryInput | None, list[Rejection]]:
    problems = _unreadable_or_unknown(row, record, ENTRY_FIELDS)
    if problems is None:
        return None, [Rejection(row, "*", str(record["__error__"]))]
    uscc = _uscc(record.get("uscc"), row, problems)
    list_type = _text(record, "list_type", row, problems)
    if list_type not in catalog.list_types:
        problems.append(
            Rejection(
                row,
                "list_type",
                f"unknown list type {list_type!r}; known: {', '.join(catalog.list_types)}",
            )
        )
    listed_on = _date(record.get("listed_on"), "listed_on", row, problems, required=True)
    expires_on = _date(record.get("expires_on"), "expires_on", row, problems, required=False)
    if listed_on and expires_on and expires_on < listed_on:
        problems.append(Rejection(row, "expires_on", "earlier than listed_on"))
    texts = {f: _text(record, f, row, problems) for f in _ENTRY_TEXTS}
    if texts["source_id"] and not texts["source"]:
        problems.append(Rejection(row, "source", "required when source_id is given"))
    if problems or uscc is None or listed_on is None:
        return None, problems
    return EntryInput(
        uscc=uscc, list_type=list_type, listed_on=listed_on, expires_on=expires_on, **texts
    ), []


def parse_grade(
    row: int, record: Mapping[str, Any], catalog: Catalog
) -> tuple[tuple[str, Grade] | None, list[Rejection]]:
    problems = _unreadable_or_unknown(row, record, GRADE_FIELDS)
    if problems is None:
        return None, [Rejection(row, "*", str(record["__error__"]))]
    uscc = _uscc(record.get("uscc"), row, problems)
    value = _text(record, "grade", row, problems)
    if value not in catalog.grades:
        problems.append(
            Rejection(row, "grade", f"unknown grade {value!r}; known: {', '.join(catalog.grades)}")
        )
    as_of = _date(record.get("as_of"), "as_of", row, problems, required=False)
    source = _text(record, "source", row, problems)
    if problems or uscc is None:
        return None, problems
    return (uscc, Grade(value, source, as_of)), []  # type: ignore[arg-type]


def parse_entries(
    rows: Iterable[tuple[int, Mapping[str, Any]]], catalog: Catalog
) -> tuple[list[EntryInput], list[Rejection]]:
    """Every row parsed; a (source, source_id) seen twice in one file is refused."""
    entries: list[EntryInput] = []
    rejected: list[Rejection] = []
    seen: dict[tuple[str, str], int] = {}
    for row, record in rows:
        entry, problems = parse_entry(row, record, catalog)
        if entry is not None and entry.source_id:
            first = seen.setdefault((entry.source, entry.source_id), row)
            if first != row:
                problems = [Rejection(row, "source_id", f"same (source, source_id) as row {first}")]
                entry = None
        rejected.extend(problems)
        if entry is not None:
            entries.append(entry)
    return entries, rejected
