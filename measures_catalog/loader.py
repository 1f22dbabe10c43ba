"""Read a catalog directory, validate every reference, compile the index.

The loader refuses a catalog rather than guess: each problem names the file
and the entry, and all problems are reported at once.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from measures_catalog.model import (
    MEASURE_KINDS,
    Catalog,
    Document,
    GradeLevel,
    LegalBasis,
    ListType,
    MatterIndex,
    MatterType,
    MeasureDefinition,
    Rule,
    Trigger,
)
from measures_catalog.schema import (
    ENTRY_TYPES,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    RawBasis,
    RawDocument,
    RawGrade,
    RawListType,
    RawManifest,
    RawMatterType,
    RawMeasure,
    RawRule,
)

DEFAULT_DIR = Path(__file__).parent / "data"


class CatalogProblem(msgspec.Struct, frozen=True):
    file: str
    entry: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.entry}: {self.message}"
            if self.entry
            else (f"{self.file}: {self.message}")
        )


class CatalogError(Exception):
    """The catalog was refused; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[CatalogProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"catalog refused ({len(self.problems)} problem(s)):\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


class _Located(msgspec.Struct):
    file: str
    label: str
    raw: Any


def load(path: str | Path | None = None) -> Catalog:
    """Load and validate the catalog in ``path`` (default: the packaged one).

    >>> catalog = load()
    >>> sorted(catalog.matter_types)[:3]
    ['bidding', 'honours', 'inspection']
    >>> catalog.measures["P-BID-01"].kind
    'punishment'
    """
    return _Loader(Path(path) if path is not None else DEFAULT_DIR).run()


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[CatalogProblem] = []
        self.entries: dict[str, list[_Located]] = {name: [] for name in ENTRY_TYPES}
        self.manifest: RawManifest | None = None

    def fail(self, file: str, entry: str, message: str) -> None:
        self.problems.append(CatalogProblem(file, entry, message))

    def run(self) -> Catalog:
        if not self.root.is_dir():
            raise CatalogError([CatalogProblem(str(self.root), "", "not a directory")])
        files = sorted(p for p in self.root.rglob("*.toml") if p.is_file())
        digest = hashlib.sha256()
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0" + data + b"\0")
            self._read_file(rel, data)
        if self.manifest is None and not any(p.file == MANIFEST_FILE for p in self.problems):
            self.fail(MANIFEST_FILE, "", "missing: the manifest names version and effective_on")
        catalog = self._compile(digest.hexdigest()[:12])
        if self.problems or catalog is None:
            raise CatalogError(self.problems)
        return catalog

    # -- reading -----------------------------------------------------------
    def _read_file(self, rel: str, data: bytes) -> None:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            self.fail(rel, "", f"not valid UTF-8 TOML: {exc}")
            return
        if rel == MANIFEST_FILE:
            head = {k: v for k, v in doc.items() if k in MANIFEST_KEYS}
            try:
                self.manifest = msgspec.convert(head, RawManifest)
            except msgspec.ValidationError as exc:
                self.fail(rel, "manifest", str(exc))
        for key, value in doc.items():
            if rel == MANIFEST_FILE and key in MANIFEST_KEYS:
                continue
            if key not in ENTRY_TYPES:
                known = ", ".join(sorted(ENTRY_TYPES))
                self.fail(rel, key, f"unknown table; expected one of: {known}")
                continue
            if key == "grade" and rel != MANIFEST_FILE:
                self.fail(rel, key, f"grades are declared in {MANIFEST_FILE} only")
                continue
            if not isinstance(value, list):
                self.fail(rel, key, f"must be an array of tables ([[{key}]])")
                continue
            for n, item in enumerate(value, start=1):
                ident = item.get("code", item.get("id")) if isinstance(item, dict) else None
                label = f"{key} #{n}" + (f" ({ident})" if ident else "")
                try:
                    raw = msgspec.convert(item, ENTRY_TYPES[key])
                except msgspec.ValidationError as exc:
                    self.fail(rel, label, str(exc))
                    continue
                self.entries[key].append(_Located(rel, label, raw))

    def _unique(self, kind: str, what: str) -> dict[str, _Located]:
        seen: dict[str, _Located] = {}
        for loc in self.entries[kind]:
            key = loc.raw.id if kind == "document" else loc.raw.code
            if not key:
                self.fail(loc.file, loc.label, f"empty {what}")
            elif key in seen:
                first = seen[key]
                self.fail(loc.file, loc.label, f"duplicate {what} {key!r} (first in {first.file})")
            else:
                seen[key] = loc
        return seen

    # -- compiling ---------------------------------------------------------
    def _compile(self, content_hash: str) -> Catalog | None:
        documents = {
            k: Document(v.raw.id, v.raw.title, v.raw.verified)
            for k, v in self._unique("document", "document id").items()
            if isinstance(v.raw, RawDocument)
        }
        grades = {
            k: GradeLevel(v.raw.code, v.raw.name, v.raw.rank)
            for k, v in self._unique("grade", "grade code").items()
            if isinstance(v.raw, RawGrade)
        }
        matters = {
            k: MatterType(v.raw.code, v.raw.name, v.raw.description)
            for k, v in self._unique("matter_type", "matter type code").items()
            if isinstance(v.raw, RawMatterType)
        }
        list_types: dict[str, ListType] = {}
        for code, loc in self._unique("list_type", "list type code").items():
            lt = loc.raw
            assert isinstance(lt, RawListType)
            if lt.default_period_months is not None and lt.default_period_months <= 0:
                self.fail(loc.file, loc.label, "default_period_months must be positive")
            basis = self._basis(loc, lt.basis, documents, need_article=False)
            if not basis:
                self.fail(loc.file, loc.label, "list type has no legal basis")
            list_types[code] = ListType(
                code,
                lt.kind,
                lt.name,
                lt.authority,
                basis,
                lt.default_period_months,
                lt.period_note,
                lt.period_verified,
            )
        if not matters:
            self.fail("*", "", "no matter_type defined")
        measures = self._measures(documents, grades, matters, list_types)
        if self.problems or self.manifest is None:
            return None
        return Catalog(
            version=f"{self.manifest.version}+{content_hash}",
            declared_version=self.manifest.version,
            content_hash=content_hash,
            effective_on=self.manifest.effective_on,
            title=self.manifest.title,
            documents=MappingProxyType(documents),
            list_types=MappingProxyType(list_types),
            matter_types=MappingProxyType(matters),
            grades=MappingProxyType(grades),
            measures=MappingProxyType(measures),
            index=MappingProxyType(_build_index(measures, matters)),
        )

    def _basis(
        self,
        loc: _Located,
        raw: list[RawBasis],
        documents: dict[str, Document],
        *,
        need_article: bool,
    ) -> tuple[LegalBasis, ...]:
        out = []
        for b in raw:
            doc = documents.get(b.doc)
            if doc is None:
                self.fail(loc.file, loc.label, f"basis cites unknown document {b.doc!r}")
                continue
            if need_article and not b.article.strip():
                self.fail(loc.file, loc.label, f"basis cites {b.doc!r} without an article")
                continue
            out.append(LegalBasis(b.doc, b.article, _render(doc.title, b.article), b.verified))
        return tuple(out)

    def _measures(
        self,
        documents: dict[str, Document],
        grades: dict[str, GradeLevel],
        matters: dict[str, MatterType],
        list_types: dict[str, ListType],
    ) -> dict[str, MeasureDefinition]:
        located = self._unique("measure", "measure code")
        # Decisions list punishments, then management measures, then incentives.
        in_order = sorted(located.items(), key=lambda kv: MEASURE_KINDS.index(kv[1].raw.kind))
        out: dict[str, MeasureDefinition] = {}
        for ordinal, (code, loc) in enumerate(in_order):
            m = loc.raw
            assert isinstance(m, RawMeasure)
            if not m.name.strip():
                self.fail(loc.file, loc.label, "measure has no name")
            basis = self._basis(loc, m.basis, documents, need_article=True)
            if not m.rule:
                self.fail(loc.file, loc.label, "measure has no rule, so it can never apply")
            rules = tuple(
                self._rule(loc, m, n, r, basis, documents, grades, matters, list_types)
                for n, r in enumerate(m.rule, start=1)
            )
            out[code] = MeasureDefinition(
                code,
                m.name,
                m.kind,
                m.strength,
                basis,
                rules,
                frozenset(m.excludes),
                ordinal,
                m.description,
            )
        for code, loc in located.items():
            for target in loc.raw.excludes:
                excluded = out.get(target)
                if excluded is None:
                    self.fail(loc.file, loc.label, f"excludes unknown measure {target!r}")
                elif excluded.kind != "incentive" or out[code].kind == "incentive":
                    self.fail(
                        loc.file,
                        loc.label,
                        f"excludes {target!r}: only a punishment or management measure "
                        "may exclude, and only incentives can be excluded",
                    )
        return out

    def _rule(
        self,
        loc: _Located,
        m: RawMeasure,
        n: int,
        r: RawRule,
        measure_basis: tuple[LegalBasis, ...],
        documents: dict[str, Document],
        grades: dict[str, GradeLevel],
        matters: dict[str, MatterType],
        list_types: dict[str, ListType],
    ) -> Rule:
        where = f"{loc.label} rule #{n}"
        for matter in r.matters:
            if matter not in matters:
                self.fail(
                    loc.file,
                    where,
                    f"unknown matter type {matter!r}; known: {', '.join(sorted(matters))}",
                )
        if not r.matters:
            self.fail(loc.file, where, "rule names no matter type")
        for lt in r.list_types:
            if lt not in list_types:
                self.fail(loc.file, where, f"unknown list type {lt!r}")
        for g in r.grades:
            if g not in grades:
                self.fail(
                    loc.file, where, f"unknown grade {g!r}; known: {', '.join(sorted(grades))}"
                )
        if not (r.list_types or r.list_kinds or r.grades or r.commitment):
            self.fail(
                loc.file,
                where,
                "rule has no trigger (list_types, list_kinds, grades or commitment)",
            )
        if r.commitment and m.kind != "incentive":
            self.fail(loc.file, where, "only an incentive can be triggered by a commitment")
        expanded = list(
            dict.fromkeys(
                [*r.list_types, *(c for c, t in list_types.items() if t.kind in r.list_kinds)]
            )
        )
        for lt_code in expanded:
            target = list_types.get(lt_code)
            if target is None:
                continue
            if m.kind == "incentive" and target.kind == "black":
                self.fail(
                    loc.file,
                    where,
                    f"incentive triggered by black list {lt_code!r}: "
                    "black-list subjects never receive incentives",
                )
            if m.kind != "incentive" and target.kind == "red":
                self.fail(loc.file, where, f"{m.kind} triggered by red list {lt_code!r}")
        basis = self._basis(loc, r.basis, documents, need_article=True)
        if not measure_basis and not basis:
            self.fail(
                loc.file,
                where,
                "measure has no legal basis for this rule (give the measure or the rule a basis)",
            )
        return Rule(tuple(r.matters), tuple(expanded), tuple(r.grades), r.commitment, basis)


def _render(title: str, article: str) -> str:
    """《招标投标法》第五十三条 for articles; a space before a section such as 三(四)."""
    if not article or article.startswith("第"):
        return title + article
    return f"{title} {article}"


def _build_index(
    measures: dict[str, MeasureDefinition], matters: dict[str, MatterType]
) -> dict[str, MatterIndex]:
    """Per matter: list type / grade / commitment → the measures they trigger, merged."""
    index = {}
    for matter in matters:
        by_list: dict[str, dict[str, list[str]]] = {}
        by_grade: dict[str, dict[str, list[str]]] = {}
        commitment: dict[str, list[str]] = {}
        for m in measures.values():
            for rule in m.rules:
                if matter not in rule.matters:
                    continue
                texts = [b.text for b in (*m.basis, *rule.basis)]
                for lt in rule.list_types:
                    by_list.setdefault(lt, {}).setdefault(m.code, []).extend(texts)
                for g in rule.grades:
                    by_grade.setdefault(g, {}).setdefault(m.code, []).extend(texts)
                if rule.commitment:
                    commitment.setdefault(m.code, []).extend(texts)

        def triggers(found: dict[str, list[str]]) -> tuple[Trigger, ...]:
            ordered = sorted(found.items(), key=lambda kv: measures[kv[0]].ordinal)
            return tuple(Trigger(measures[c], tuple(dict.fromkeys(t))) for c, t in ordered)

        index[matter] = MatterIndex(
            by_list_type=MappingProxyType({k: triggers(v) for k, v in by_list.items()}),
            by_grade=MappingProxyType({k: triggers(v) for k, v in by_grade.items()}),
            on_commitment=triggers(commitment),
        )
    return index
