"""Declarative import mappings: how a source's columns become canonical entry fields.

A new province's export is a TOML file, not code. The shipped ones, in
``mappings/`` (:func:`builtin` finds them by name), are commented examples::

    name = "wage_arrears"          # [a-z][a-z0-9_]*; a shipped file is named after it
    description = "..."
    optional = ["expires_on"]      # fields whose columns may be absent from a file
    [defaults]                     # field -> constant; also fills a field left empty
    list_type = "wage_arrears"
    [columns]                      # field -> source column, or a list: first non-empty wins
    uscc = ["统一社会信用代码", "组织机构代码"]
    [values.list_type]             # source value -> canonical value (others are problems)
    "拖欠农民工工资失信联合惩戒对象" = "wage_arrears"
    [derive]                       # while the field is empty; from_column moves a date column
    expires_on = { from = "listed_on", add_years = 3, add_days = -1 }  # or from_column = "列"
    source_id = { join = ["uscc", "document_no"], sep = "|" }          # when all parts are set

Column names and ``[values]`` keys match after NFKC (full-width brackets,
letters and digits become half-width) with all spaces, full-width ones too,
removed. Placeholder cells (``-``, ``/``, ``无``, ``暂无``, ``null`` …) are empty.
Dates come out ``YYYY-MM-DD``. A code that is a 15-digit registration number,
a 9-character organisation code or masked is reported on ``uscc``, never
guessed into a USCC (DOMAIN.md §9).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections import abc
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from adapters.sources.dates import parse_date, shift
from gateway.model import ENTRY_FIELDS

CANONICAL = ENTRY_FIELDS  # the canonical entry fields (API.md "Lists")
REQUIRED = ("uscc", "list_type", "listed_on")
DATES = ("listed_on", "expires_on")
BUILTIN_DIR = Path(__file__).parent / "mappings"
_ADDS = ("add_years", "add_months", "add_days")
_KEYS = ("name", "description", "optional", "defaults", "columns", "values", "derive")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_BLANKS = frozenset({"-", "--", "—", "/", "无", "暂无", "空", "null", "none", "n/a"})
_NOT_USCC = (
    (re.compile(r".*\*.*"), "masked"),
    (re.compile(r"[0-9]{15}"), "a 15-digit registration number (注册号)"),
    (re.compile(r"[0-9A-Z]{8}-?[0-9X]"), "a 9-character organisation code (组织机构代码)"),
)


class MappingError(ValueError):
    """A mapping file is not valid; ``file`` and ``key`` say where."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}")
        self.file, self.key = file, key


class Problem(NamedTuple):
    """Why a canonical field of one row is not usable; the message names the source column."""

    field: str
    message: str


@dataclass(frozen=True)
class Offset:
    """A date moved from a canonical date ``field`` or from a source ``column``."""

    field: str
    column: str
    years: int = 0
    months: int = 0
    days: int = 0

    def move(self, day: date) -> date:
        return shift(day, years=self.years, months=self.months, days=self.days)


@dataclass(frozen=True)
class Join:
    fields: tuple[str, ...]
    sep: str = "|"


@lru_cache(maxsize=4096)
def normalise(name: str) -> str:
    """The form column names and ``[values]`` keys are compared in."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text.casefold() in _BLANKS else text


@dataclass(frozen=True)
class Mapping:
    name: str
    description: str = ""
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    derive: dict[str, Offset | Join] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()

    def missing_columns(self, header: abc.Iterable[str]) -> list[str]:
        """``field: column`` for each non-optional column absent from ``header`` (once a file)."""
        have = {normalise(name) for name in header}
        return [
            f"{f}: {' | '.join(names)}"
            for f, names in self.columns.items()
            if f not in self.optional and not any(normalise(n) in have for n in names)
        ]

    def apply(
        self, row_number: int, record: abc.Mapping[str, Any]
    ) -> tuple[dict[str, str], list[Problem]]:
        """The canonical record of a source row (every field; ``""`` if unknown) and its
        problems (none when the row is usable; a reader's ``__error__`` is one, on ``*``)."""
        out = dict.fromkeys(CANONICAL, "")
        if "__error__" in record:
            return out, [Problem("*", str(record["__error__"]))]
        cells = {normalise(str(k)): v for k, v in record.items()}
        problems: list[Problem] = []
        origin: dict[str, str] = {}  # field -> the column(s) its value came from
        for name, columns in self.columns.items():
            present = [c for c in columns if normalise(c) in cells]
            if not present and name not in self.optional:
                problems.append(Problem(name, f"no column {' or '.join(columns)} in the file"))
            origin[name] = " / ".join(present or columns)
            for column in present:
                if text := _cell(cells[normalise(column)]):
                    out[name], origin[name] = text, column
                    break
        for name, table in self.values.items():
            if out[name] and normalise(out[name]) not in table:
                message = f"{out[name]!r} is not one of: {', '.join(table)}"
                problems.append(Problem(name, f"{origin[name]}: {message}"))
            out[name] = table.get(normalise(out[name]), out[name])
        bad = {p.field for p in problems}
        for name in DATES:
            if out[name]:  # from a column: defaults are normalised by load()
                rule = self.derive.get(name)
                try:
                    day = parse_date(out[name])
                    day = rule.move(day) if isinstance(rule, Offset) and rule.column else day
                    out[name] = day.isoformat()
                except (ValueError, OverflowError) as exc:
                    problems.append(Problem(name, f"{origin[name]}: {exc}"))
                    bad.add(name)
        for name, value in self.defaults.items():
            out[name] = out[name] or value
        self._derive(out, problems, bad)
        code = "".join(unicodedata.normalize("NFKC", out["uscc"]).split()).upper()
        for pattern, kind in _NOT_USCC:
            if pattern.fullmatch(code):
                message = f"{out['uscc']!r} is {kind}, not a USCC: no subject can match it"
                problems.append(Problem("uscc", f"{origin.get('uscc', 'uscc')}: {message}"))
                break
        for name in REQUIRED:
            if not out[name] and all(p.field != name for p in problems):
                problems.append(Problem(name, f"{origin.get(name, name)}: empty, but required"))
        return out, problems

    def _derive(self, out: dict[str, str], problems: list[Problem], bad: set[str]) -> None:
        for name, rule in sorted(self.derive.items(), key=lambda i: isinstance(i[1], Join)):
            if out[name]:
                continue
            if isinstance(rule, Join):
                if all(out[f] for f in rule.fields):
                    out[name] = rule.sep.join(out[f] for f in rule.fields)
            elif rule.field and out[rule.field] and rule.field not in bad:
                try:
                    out[name] = rule.move(date.fromisoformat(out[rule.field])).isoformat()
                except (ValueError, OverflowError) as exc:
                    problems.append(Problem(name, f"{rule.field} {out[rule.field]}: {exc}"))


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def load(path: Path | str) -> Mapping:
    """Read and validate a mapping file; :class:`MappingError` names the file and key."""
    path = Path(path)

    def fail(key: str, message: str) -> NoReturn:
        raise MappingError(path.name, key, message)

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        fail("*", f"not a valid UTF-8 TOML file ({exc})")
    for key in sorted(set(data) - set(_KEYS)):
        fail(key, f"unknown key; expected: {', '.join(_KEYS)}")
    name, description = data.get("name"), data.get("description", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        fail("name", "required: lower-case letters, digits and _, starting with a letter")
    if not isinstance(description, str):
        fail("description", "must be a string")

    def table(key: str, valid: abc.Callable[[Any], bool], expected: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            fail(key, "must be a table")
        for f, spec in value.items():
            if f not in CANONICAL:
                fail(f"{key}.{f}", f"unknown canonical field; expected: {', '.join(CANONICAL)}")
            if not valid(spec):
                fail(f"{key}.{f}", f"must be {expected}")
        return value

    def is_columns(v: Any) -> bool:
        return _text(v) or (isinstance(v, list) and bool(v) and all(_text(n) for n in v))

    def is_values(v: Any) -> bool:
        return isinstance(v, dict) and bool(v) and all(_text(c) for c in v.values())

    spec = table("columns", is_columns, "a column name or a non-empty list of column names")
    columns = {f: (v,) if isinstance(v, str) else tuple(v) for f, v in spec.items()}
    defaults = {f: v.strip() for f, v in table("defaults", _text, "a non-empty string").items()}
    for f in set(DATES) & set(defaults):
        try:
            defaults[f] = parse_date(defaults[f]).isoformat()
        except ValueError as exc:
            fail(f"defaults.{f}", str(exc))
    values = table("values", is_values, "a table of source value = canonical value")
    for f in sorted(set(values) - set(columns)):
        fail(f"values.{f}", "only a field mapped in [columns] can have a [values] table")
    derive = {f: _rule(fail, f, v) for f, v in table("derive", lambda v: True, "").items()}
    for f, rule in derive.items():
        if isinstance(rule, Join) and any(isinstance(derive.get(p), Join) for p in rule.fields):
            fail(f"derive.{f}", "cannot join a field that is itself joined")
        if isinstance(rule, Offset) and rule.column:
            if f in columns:
                fail(f"derive.{f}", "a field comes from [columns] or from_column, not both")
            columns[f] = (rule.column,)
    optional = data.get("optional", [])
    if not isinstance(optional, list) or not all(f in columns for f in optional):
        fail("optional", "must list fields mapped from columns ([columns] or from_column)")
    for f in REQUIRED:
        if f not in columns and f not in defaults and f not in derive:
            fail(f, "required: map it in [columns], set it in [defaults] or compute it in [derive]")
    values = {f: {normalise(k): v.strip() for k, v in t.items()} for f, t in values.items()}
    return Mapping(name, description, columns, defaults, values, derive, frozenset(optional))


def _rule(fail: abc.Callable[[str, str], NoReturn], target: str, spec: Any) -> Offset | Join:
    key = f"derive.{target}"
    if not isinstance(spec, dict):
        fail(key, "must be an inline table: { from = ..., add_months = ... } or { join = [...] }")
    allowed = {"join", "sep"} if "join" in spec else {"from", "from_column", *_ADDS}
    for unknown in sorted(set(spec) - allowed):
        fail(f"{key}.{unknown}", f"unknown key; expected: {', '.join(sorted(allowed))}")
    if "join" in spec:
        parts, sep = spec["join"], spec.get("sep", "|")
        if target in DATES or not isinstance(parts, list) or not parts or target in parts:
            fail(f"{key}.join", "joins a non-empty list of other fields into a text field")
        if not all(p in CANONICAL for p in parts) or not isinstance(sep, str):
            fail(key, f"join lists canonical fields ({', '.join(CANONICAL)}); sep is a string")
        return Join(tuple(parts), sep)
    if target not in DATES:
        fail(key, "only listed_on and expires_on are computed from a date")
    base, column = spec.get("from"), spec.get("from_column")
    if (base is None) == (column is None):
        fail(key, "needs one of: from (a canonical date field), from_column (a source column)")
    if base is not None and (base not in DATES or base == target):
        fail(f"{key}.from", "must be the other canonical date field")
    if column is not None and not _text(column):
        fail(f"{key}.from_column", "must be a column name")
    adds = [spec.get(k, 0) for k in _ADDS]
    if any(type(v) is not int for v in adds):
        fail(key, f"{', '.join(_ADDS)} must be whole numbers")
    return Offset(base or "", column or "", *adds)


def available() -> list[str]:
    """Names of the shipped mappings."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def builtin(name: str) -> Path:
    """The path of a shipped mapping, by name: ``load(builtin("court_defaulter"))``."""
    path = BUILTIN_DIR / f"{name}.toml"
    if not _NAME.fullmatch(name) or not path.is_file():
        known = ", ".join(available())
        raise MappingError("mappings", name, f"no built-in mapping; available: {known}")
    return path
