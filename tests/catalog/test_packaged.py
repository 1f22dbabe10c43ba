"""The packaged catalog: complete, well-formed and faithful to API.md's vocabulary."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

import measures_catalog
from measures_catalog import Catalog

API_LIST_TYPES = {
    "court_defaulter": "black",
    "tax_major_violation": "black",
    "market_serious_violation": "black",
    "wage_arrears": "black",
    "work_safety_serious": "black",
    "statistics_serious": "black",
    "procurement_serious": "black",
    "customs_dishonest": "black",
    "social_org_serious": "black",
    "focus": "focus",
    "business_abnormal": "abnormal",
    "tax_grade_a": "red",
    "customs_advanced": "red",
    "integrity_model": "red",
}
API_MATTERS = {
    "licensing",
    "bidding",
    "procurement",
    "land_resources",
    "inspection",
    "public_service",
    "honours",
    "subsidy",
}


def test_all_fourteen_list_types_with_kind_name_authority_and_basis(catalog: Catalog) -> None:
    assert {c: lt.kind for c, lt in catalog.list_types.items()} == API_LIST_TYPES
    for lt in catalog.list_types.values():
        assert lt.name, lt.code
        assert lt.authority, lt.code
        assert lt.basis, f"{lt.code} has no legal basis"


def test_the_eight_matter_types(catalog: Catalog) -> None:
    assert set(catalog.matter_types) == API_MATTERS
    assert catalog.matter_types["bidding"].name == "招标投标"


def test_grades_ranked_best_first(catalog: Catalog) -> None:
    ranked = sorted(catalog.grades.values(), key=lambda g: -g.rank)
    assert [g.code for g in ranked] == ["excellent", "good", "fair", "poor"]
    assert [g.name for g in ranked] == ["优秀", "良好", "中等", "较差"]


def test_at_least_thirty_measures_each_fully_described(catalog: Catalog) -> None:
    assert len(catalog.measures) >= 30
    kinds = {m.kind for m in catalog.measures.values()}
    assert kinds == {"punishment", "management", "incentive"}
    for m in catalog.measures.values():
        assert m.name, m.code
        assert m.strength in ("mandatory", "discretionary"), m.code
        assert m.rules, f"{m.code} has no rule"
        for rule in m.rules:
            basis = (*m.basis, *rule.basis)
            assert basis, f"{m.code} has a rule without legal basis"
            assert all(b.article for b in basis), f"{m.code} cites a document without article"


def test_every_measure_can_be_triggered_for_some_matter(catalog: Catalog) -> None:
    reachable = {
        t.measure.code
        for idx in catalog.index.values()
        for triggers in (*idx.by_list_type.values(), *idx.by_grade.values(), idx.on_commitment)
        for t in triggers
    }
    assert reachable == set(catalog.measures)


def test_every_list_type_triggers_something(catalog: Catalog) -> None:
    triggered = {lt for idx in catalog.index.values() for lt in idx.by_list_type}
    assert triggered == set(catalog.list_types)


def test_version_is_declared_version_plus_content_hash(catalog: Catalog) -> None:
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d+\+[0-9a-f]{12}", catalog.version)
    assert catalog.version == f"{catalog.declared_version}+{catalog.content_hash}"
    assert catalog.effective_on == date(2026, 11, 1)


def test_same_content_same_version_changed_content_new_version(
    catalog: Catalog, catalog_dir: Path
) -> None:
    assert measures_catalog.load(catalog_dir).version == catalog.version
    matters = catalog_dir / "matter_types.toml"
    matters.write_text(matters.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    changed = measures_catalog.load(catalog_dir)
    assert changed.declared_version == catalog.declared_version
    assert changed.version != catalog.version


def test_catalog_is_immutable(catalog: Catalog) -> None:
    with pytest.raises(TypeError):
        catalog.measures["X-1"] = catalog.measures["P-BID-01"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        catalog.version = "tampered"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        catalog.measures["P-BID-01"].name = "tampered"  # type: ignore[misc]


def test_basis_renders_articles_and_sections(catalog: Catalog) -> None:
    texts = {b.text for r in catalog.measures["P-PRO-01"].rules for b in r.basis}
    assert "《中华人民共和国政府采购法》第二十二条" in texts
    assert "《关于推进信用应用业务协同的实施意见》(浙发改信用〔2019〕183号) 三(四)" in texts


def test_unverified_citations_are_listed_not_hidden(catalog: Catalog) -> None:
    unverified = catalog.unverified_bases()
    assert unverified, "DOMAIN.md marks several items unverified"
    assert all(not b.verified or not catalog.documents[b.document].verified for _, b in unverified)
