"""The shape of the catalog's TOML files, as msgspec Structs.

Every ``*.toml`` file under a catalog directory may hold any of the arrays
``document``, ``list_type``, ``matter_type`` and ``measure``; the manifest
``catalog.toml`` also holds ``version``, ``effective_on``, ``title`` and the
``grade`` array. Unknown keys are refused, so a typo never passes silently.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from measures_catalog.model import ListKind, MeasureKind, Strength


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class RawBasis(_Strict):
    doc: str
    article: str = ""
    verified: bool = True


class RawDocument(_Strict):
    id: str
    title: str
    verified: bool = True


class RawListType(_Strict):
    code: str
    kind: ListKind
    name: str
    authority: str
    basis: list[RawBasis] = []
    default_period_months: int | None = None
    period_note: str = ""
    period_verified: bool = True


class RawMatterType(_Strict):
    code: str
    name: str
    description: str = ""


class RawGrade(_Strict):
    code: str
    name: str
    rank: int


class RawRule(_Strict):
    matters: list[str]
    list_types: list[str] = []
    list_kinds: list[ListKind] = []
    grades: list[str] = []
    commitment: bool = False
    basis: list[RawBasis] = []


class RawMeasure(_Strict):
    code: str
    name: str
    kind: MeasureKind
    strength: Strength
    basis: list[RawBasis] = []
    excludes: list[str] = []
    description: str = ""
    rule: list[RawRule] = []


class RawManifest(msgspec.Struct):
    version: str
    effective_on: date
    title: str = ""


#: Top-level array name → the Struct each of its entries must match.
ENTRY_TYPES: dict[str, type[Any]] = {
    "document": RawDocument,
    "list_type": RawListType,
    "matter_type": RawMatterType,
    "measure": RawMeasure,
    "grade": RawGrade,
}
MANIFEST_FILE = "catalog.toml"
MANIFEST_KEYS = frozenset({"version", "effective_on", "title"})
