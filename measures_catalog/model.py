"""The compiled, immutable measures catalog.

A :class:`Catalog` is what :func:`measures_catalog.load` returns: every list
type, matter type, grade and measure, plus an index that answers, for one
matter, which measures a list type, a grade or a credit commitment triggers
and on what basis. The engine reads only the index; nothing here changes after
loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

import msgspec

ListKind = Literal["black", "focus", "abnormal", "red"]
MeasureKind = Literal["punishment", "management", "incentive"]
Strength = Literal["mandatory", "discretionary"]

LIST_KINDS: tuple[ListKind, ...] = ("black", "focus", "abnormal", "red")
MEASURE_KINDS: tuple[MeasureKind, ...] = ("punishment", "management", "incentive")


class Document(msgspec.Struct, frozen=True):
    """A law, rule or policy text that a basis cites."""

    id: str
    title: str
    verified: bool = True


class LegalBasis(msgspec.Struct, frozen=True):
    """One cited provision: a document and an article (or section) of it."""

    document: str
    article: str
    #: ``title + article`` as shown to callers, e.g. 《中华人民共和国招标投标法》第五十三条.
    text: str
    verified: bool = True


class ListType(msgspec.Struct, frozen=True):
    code: str
    kind: ListKind
    name: str
    authority: str
    basis: tuple[LegalBasis, ...]
    #: Usual publication period; ``None`` means until removed.
    default_period_months: int | None = None
    period_note: str = ""
    period_verified: bool = True


class MatterType(msgspec.Struct, frozen=True):
    code: str
    name: str
    description: str = ""


class GradeLevel(msgspec.Struct, frozen=True):
    code: str
    name: str
    #: Higher is better.
    rank: int


class Rule(msgspec.Struct, frozen=True):
    """When a measure applies: for these matters, if any trigger matches."""

    matters: tuple[str, ...]
    #: Explicit list types, with ``list_kinds`` already expanded.
    list_types: tuple[str, ...]
    grades: tuple[str, ...]
    commitment: bool
    basis: tuple[LegalBasis, ...]


class MeasureDefinition(msgspec.Struct, frozen=True):
    code: str
    name: str
    kind: MeasureKind
    strength: Strength
    basis: tuple[LegalBasis, ...]
    rules: tuple[Rule, ...]
    #: Incentives withheld whenever this measure is returned.
    excludes: frozenset[str]
    #: Position in the catalog; decisions list measures in this order.
    ordinal: int
    description: str = ""


class Trigger(msgspec.Struct, frozen=True):
    """A measure triggered for one matter by one list type, grade or commitment."""

    measure: MeasureDefinition
    #: The measure's own basis followed by that of every rule that fired, rendered.
    basis: tuple[str, ...]


class MatterIndex(msgspec.Struct, frozen=True):
    """Everything that can trigger a measure for one matter type."""

    by_list_type: Mapping[str, tuple[Trigger, ...]]
    by_grade: Mapping[str, tuple[Trigger, ...]]
    on_commitment: tuple[Trigger, ...]
    #: Decisions the engine derived from the fields above, keyed by the shape of a
    #: subject (its live list types, grade, commitment). A cache, never a source.
    memo: dict[object, object] = {}


@dataclass(frozen=True, slots=True)
class Catalog:
    """An immutable, validated catalog with a version id and an effective date."""

    #: ``<declared version>+<content hash>``, recorded with every check.
    version: str
    declared_version: str
    content_hash: str
    effective_on: date
    title: str
    documents: Mapping[str, Document]
    list_types: Mapping[str, ListType]
    matter_types: Mapping[str, MatterType]
    grades: Mapping[str, GradeLevel]
    measures: Mapping[str, MeasureDefinition]
    index: Mapping[str, MatterIndex]

    def unverified_bases(self) -> list[tuple[str, LegalBasis]]:
        """Every basis (with the code citing it) whose title or article awaits verification."""
        cited: list[tuple[str, LegalBasis]] = []
        for lt in self.list_types.values():
            cited.extend((lt.code, b) for b in lt.basis)
        for m in self.measures.values():
            cited.extend((m.code, b) for b in m.basis)
            cited.extend((m.code, b) for r in m.rules for b in r.basis)
        seen: set[tuple[str, str]] = set()
        out = []
        for code, b in cited:
            if (not b.verified or not self.documents[b.document].verified) and (
                (code, b.text) not in seen
            ):
                seen.add((code, b.text))
                out.append((code, b))
        return out
