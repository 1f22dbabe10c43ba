"""The loader refuses a broken catalog and names the file and entry of every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

import measures_catalog
from measures_catalog import CatalogError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


def _problems(directory: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        measures_catalog.load(directory)
    return [str(p) for p in caught.value.problems]


def test_unknown_list_type_in_a_rule(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml",
        'list_types = ["court_defaulter"]',
        'list_types = ["court_defaulters"]',
    )
    assert _problems(catalog_dir) == [
        "measures/punishment.toml: measure #1 (P-BID-01) rule #2: "
        "unknown list type 'court_defaulters'"
    ]


def test_unknown_matter_in_a_rule_lists_the_known_ones(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml", 'matters = ["bidding"]', 'matters = ["tendering"]'
    )
    [problem] = _problems(catalog_dir)
    assert problem.startswith("measures/punishment.toml: measure #1 (P-BID-01) rule #1: ")
    assert "unknown matter type 'tendering'; known: bidding, honours, inspection" in problem


def test_duplicate_measure_code_names_both_files(catalog_dir: Path) -> None:
    _append(
        catalog_dir / "measures/incentive.toml",
        """
[[measure]]
code = "P-BID-01"
name = "重复"
kind = "punishment"
strength = "mandatory"
  [[measure.rule]]
  matters = ["bidding"]
  list_types = ["court_defaulter"]
  basis = [{ doc = "bidding_law", article = "第五十三条" }]
""",
    )
    assert _problems(catalog_dir) == [
        "measures/punishment.toml: measure #1 (P-BID-01): "
        "duplicate measure code 'P-BID-01' (first in measures/incentive.toml)"
    ]


def test_measure_without_legal_basis(catalog_dir: Path) -> None:
    _append(
        catalog_dir / "measures/management.toml",
        """
[[measure]]
code = "M-TEST-01"
name = "无依据的措施"
kind = "management"
strength = "discretionary"
  [[measure.rule]]
  matters = ["inspection"]
  list_types = ["focus"]
""",
    )
    [problem] = _problems(catalog_dir)
    assert problem == (
        "measures/management.toml: measure #12 (M-TEST-01) rule #1: measure has no legal "
        "basis for this rule (give the measure or the rule a basis)"
    )


def test_basis_without_article(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml",
        '{ doc = "spc_2017_7", article = "第八条" }',
        '{ doc = "spc_2017_7" }',
    )
    problems = _problems(catalog_dir)
    assert (
        "measures/punishment.toml: measure #1 (P-BID-01): basis cites 'spc_2017_7' without "
        "an article" in problems
    )


def test_basis_citing_an_unknown_document(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml",
        '{ doc = "spc_2017_7", article = "第八条" }',
        '{ doc = "spc_2017", article = "第八条" }',
    )
    assert (
        "measures/punishment.toml: measure #1 (P-BID-01): basis cites unknown document "
        "'spc_2017'" in _problems(catalog_dir)
    )


def test_unknown_field_is_a_typo_not_ignored(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml",
        'strength = "mandatory"',
        'strength = "mandatory"\nstrenght = "mandatory"',
    )
    [problem] = _problems(catalog_dir)
    assert problem.startswith("measures/punishment.toml: measure #1 (P-BID-01): ")
    assert "strenght" in problem


def test_wrong_enum_value(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/punishment.toml",
        'code = "P-BID-01"\nname = "限制参与依法必须招标项目的投标"\nkind = "punishment"',
        'code = "P-BID-01"\nname = "限制参与依法必须招标项目的投标"\nkind = "penalty"',
    )
    [problem] = _problems(catalog_dir)
    assert problem.startswith("measures/punishment.toml: measure #1 (P-BID-01): ")
    assert "punishment" in problem
    assert "$.kind" in problem


def test_incentive_triggered_by_a_black_list(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/incentive.toml",
        'list_types = ["integrity_model", "tax_grade_a"]\n  basis = [{ doc = "guizhou_2020", '
        'article = "(一)" }]\n\n[[measure]]\ncode = "I-LIC-02"',
        'list_types = ["integrity_model", "court_defaulter"]\n  basis = [{ doc = '
        '"guizhou_2020", article = "(一)" }]\n\n[[measure]]\ncode = "I-LIC-02"',
    )
    assert _problems(catalog_dir) == [
        "measures/incentive.toml: measure #1 (I-LIC-01) rule #2: incentive triggered by black "
        "list 'court_defaulter': black-list subjects never receive incentives"
    ]


def test_rule_without_trigger_and_measure_without_rule(catalog_dir: Path) -> None:
    _append(
        catalog_dir / "measures/management.toml",
        """
[[measure]]
code = "M-TEST-02"
name = "永不触发"
kind = "management"
strength = "discretionary"
basis = [{ doc = "guizhou_2020", article = "(七)" }]

[[measure]]
code = "M-TEST-03"
name = "无触发条件"
kind = "management"
strength = "discretionary"
basis = [{ doc = "guizhou_2020", article = "(七)" }]
  [[measure.rule]]
  matters = ["inspection"]
""",
    )
    assert _problems(catalog_dir) == [
        "measures/management.toml: measure #12 (M-TEST-02): measure has no rule, so it can "
        "never apply",
        "measures/management.toml: measure #13 (M-TEST-03) rule #1: rule has no trigger "
        "(list_types, list_kinds, grades or commitment)",
    ]


def test_excludes_must_name_an_incentive(catalog_dir: Path) -> None:
    _edit(
        catalog_dir / "measures/management.toml",
        'excludes = ["I-LIC-01", "I-LIC-05"]',
        'excludes = ["I-LIC-99", "P-BID-01"]',
    )
    problems = _problems(catalog_dir)
    assert len(problems) == 2
    assert problems[0].endswith("excludes unknown measure 'I-LIC-99'")
    assert "excludes 'P-BID-01'" in problems[1]


def test_all_problems_are_reported_at_once(catalog_dir: Path) -> None:
    _edit(catalog_dir / "list_types.toml", 'doc = "sat_order_54"', 'doc = "nowhere"')
    _edit(catalog_dir / "matter_types.toml", 'code = "subsidy"', 'code = "honours"')
    problems = _problems(catalog_dir)
    assert any(
        p.startswith(
            "list_types.toml: list_type #2 (tax_major_violation): basis cites "
            "unknown document 'nowhere'"
        )
        for p in problems
    )
    assert any("duplicate matter type code 'honours'" in p for p in problems)
    assert any("unknown matter type 'subsidy'" in p for p in problems)


def test_invalid_toml_and_missing_manifest(catalog_dir: Path) -> None:
    (catalog_dir / "catalog.toml").unlink()
    (catalog_dir / "extra.toml").write_text("[[measure]\n", encoding="utf-8")
    problems = _problems(catalog_dir)
    assert problems[0].startswith("extra.toml: not valid UTF-8 TOML:")
    assert "catalog.toml: missing: the manifest names version and effective_on" in problems


def test_manifest_needs_a_date(catalog_dir: Path) -> None:
    _edit(catalog_dir / "catalog.toml", "effective_on = 2026-11-01", 'effective_on = "soon"')
    [problem] = _problems(catalog_dir)
    assert problem.startswith("catalog.toml: manifest: ")
    assert "date" in problem
    assert "$.effective_on" in problem


def test_not_a_directory(tmp_path: Path) -> None:
    assert _problems(tmp_path / "missing") == [f"{tmp_path / 'missing'}: not a directory"]


def test_a_province_can_add_a_file(catalog_dir: Path) -> None:
    (catalog_dir / "measures/local.toml").write_text(
        """
[[measure]]
code = "P-LOCAL-01"
name = "取消专家评审资格"
kind = "punishment"
strength = "discretionary"
  [[measure.rule]]
  matters = ["honours"]
  list_kinds = ["black"]
  basis = [{ doc = "ankang_2020", article = "二(五)3" }]
""",
        encoding="utf-8",
    )
    extended = measures_catalog.load(catalog_dir)
    codes = [t.measure.code for t in extended.index["honours"].by_list_type["court_defaulter"]]
    assert "P-LOCAL-01" in codes
