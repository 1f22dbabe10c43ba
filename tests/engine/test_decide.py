"""The engine, rule by rule, as the policies state them (DOMAIN.md §5-§7, API.md).

Each row: who the subject is, the matter, and exactly which measures come back
in which state, with the verdict. Entries are written ``list_type`` or
``list_type:status`` and are in force on TODAY unless a row says otherwise.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple

import pytest

from gateway.engine import UnknownMatter, decide
from gateway.model import Grade, ListEntry
from measures_catalog import Catalog

TODAY = date(2026, 11, 22)
USCC = "91110000600037341L"


class Row(NamedTuple):
    why: str
    entries: tuple[str, ...]
    grade: str | None
    matter: str
    expect: dict[str, str]  # measure code -> state
    verdict: str
    commitment: bool = False


def entry(spec: str, n: int = 0, *, listed: int = -200, expires: int | None = 400) -> ListEntry:
    list_type, _, status = spec.partition(":")
    return ListEntry(
        entry_id=f"e{n}-{list_type}",
        uscc=USCC,
        list_type=list_type,
        status=status or "active",  # type: ignore[arg-type]
        listed_on=TODAY + timedelta(days=listed),
        expires_on=None if expires is None else TODAY + timedelta(days=expires),
    )


A, S = "apply", "suspended"

ROWS = [
    # --- black lists, every matter (court defaulter: 法释〔2017〕7号 第八条) ---------
    Row(
        "失信被执行人 → 限制投标",
        ("court_defaulter",),
        None,
        "bidding",
        {"P-BID-01": A},
        "restricted",
    ),
    Row(
        "失信被执行人 → 限制政府采购",
        ("court_defaulter",),
        None,
        "procurement",
        {"P-PRO-01": A},
        "restricted",
    ),
    Row(
        "黑名单 → 限制土地、矿业权、特许经营 (浙 三(四))",
        ("court_defaulter",),
        None,
        "land_resources",
        {"P-LAND-01": A, "P-LAND-02": A, "P-LAND-03": A},
        "restricted",
    ),
    Row(
        "失信被执行人 → 限制许可、暂缓审批、不予容缺受理",
        ("court_defaulter",),
        None,
        "licensing",
        {"P-LIC-01": A, "P-LIC-02": A, "P-LIC-03": A, "M-LIC-01": A},
        "restricted",
    ),
    Row(
        "黑名单 → 提高抽查比例、重点监管",
        ("court_defaulter",),
        None,
        "inspection",
        {"M-INS-01": A, "M-INS-02": A},
        "attention",
    ),
    Row("公共服务无惩戒措施", ("court_defaulter",), None, "public_service", {}, "clear"),
    Row(
        "黑名单 → 限制评优、撤销荣誉",
        ("court_defaulter",),
        None,
        "honours",
        {"P-HON-01": A, "P-HON-02": A},
        "restricted",
    ),
    Row(
        "黑名单 → 限制财政资金、税收优惠",
        ("court_defaulter",),
        None,
        "subsidy",
        {"P-SUB-01": A, "P-SUB-02": A},
        "restricted",
    ),
    Row(
        "拖欠农民工工资 → 限制投标 (条例 第四十八条)",
        ("wage_arrears",),
        None,
        "bidding",
        {"P-BID-01": A},
        "restricted",
    ),
    Row(
        "拖欠农民工工资 → 市场准入",
        ("wage_arrears",),
        None,
        "licensing",
        {"P-LIC-01": A, "P-LIC-03": A, "P-LIC-04": A, "M-LIC-01": A},
        "restricted",
    ),
    Row(
        "重大税收违法 → 限制采购",
        ("tax_major_violation",),
        None,
        "procurement",
        {"P-PRO-01": A},
        "restricted",
    ),
    Row(
        "市场监管严重违法 → 行业禁入",
        ("market_serious_violation",),
        None,
        "licensing",
        {"P-LIC-01": A, "P-LIC-03": A, "P-LIC-04": A, "M-LIC-01": A},
        "restricted",
    ),
    Row(
        "安全生产严重失信 → 限制投标",
        ("work_safety_serious",),
        None,
        "bidding",
        {"P-BID-01": A},
        "restricted",
    ),
    Row(
        "统计严重失信 → 限制财政资金",
        ("statistics_serious",),
        None,
        "subsidy",
        {"P-SUB-01": A, "P-SUB-02": A},
        "restricted",
    ),
    Row(
        "政府采购严重违法 → 禁止参加采购 (政府采购法 第七十七条)",
        ("procurement_serious",),
        None,
        "procurement",
        {"P-PRO-01": A},
        "restricted",
    ),
    Row(
        "海关失信 → 提高查验率",
        ("customs_dishonest",),
        None,
        "inspection",
        {"M-INS-01": A, "M-INS-02": A, "M-INS-03": A},
        "attention",
    ),
    Row(
        "社会组织严重失信 → 限制政府购买服务",
        ("social_org_serious",),
        None,
        "procurement",
        {"P-PRO-01": A, "P-PRO-03": A},
        "restricted",
    ),
    # --- focus list (黔 (八)) ----------------------------------------------------------
    Row("重点关注 → 重点审查", ("focus",), None, "licensing", {"M-LIC-02": A}, "attention"),
    Row(
        "重点关注 → 提高抽查比例",
        ("focus",),
        None,
        "inspection",
        {"M-INS-01": A, "M-INS-02": A},
        "attention",
    ),
    Row("重点关注 → 审查投标人", ("focus",), None, "bidding", {"M-BID-01": A}, "attention"),
    Row("重点关注 → 审查供应商", ("focus",), None, "procurement", {"M-PRO-01": A}, "attention"),
    Row(
        "重点关注 → 土地出让参考", ("focus",), None, "land_resources", {"M-LAND-01": A}, "attention"
    ),
    Row("重点关注 → 审慎推荐", ("focus",), None, "honours", {"M-HON-01": A}, "attention"),
    Row("重点关注 → 从严审核资金", ("focus",), None, "subsidy", {"M-SUB-01": A}, "attention"),
    Row("重点关注不影响公共服务", ("focus",), None, "public_service", {}, "clear"),
    # --- abnormal list (企业信息公示暂行条例 第十八条) ------------------------------------
    Row(
        "经营异常 → 采购依法限制",
        ("business_abnormal",),
        None,
        "procurement",
        {"P-PRO-02": A},
        "restricted",
    ),
    Row(
        "经营异常 → 招投标依法限制",
        ("business_abnormal",),
        None,
        "bidding",
        {"P-BID-02": A},
        "restricted",
    ),
    Row(
        "经营异常 → 土地出让依法限制",
        ("business_abnormal",),
        None,
        "land_resources",
        {"P-LAND-04": A, "M-LAND-01": A},
        "restricted",
    ),
    Row(
        "经营异常 → 荣誉称号依法限制",
        ("business_abnormal",),
        None,
        "honours",
        {"P-HON-03": A},
        "restricted",
    ),
    Row(
        "经营异常 → 提高抽查比例",
        ("business_abnormal",),
        None,
        "inspection",
        {"M-INS-01": A},
        "attention",
    ),
    Row(
        "经营异常 → 从严审核资金",
        ("business_abnormal",),
        None,
        "subsidy",
        {"M-SUB-01": A},
        "attention",
    ),
    # --- red lists ---------------------------------------------------------------------
    Row(
        "A级纳税人 → 容缺受理、绿色通道、加快、简化",
        ("tax_grade_a",),
        None,
        "licensing",
        {"I-LIC-01": A, "I-LIC-02": A, "I-LIC-03": A, "I-LIC-04": A},
        "incentive",
    ),
    Row(
        "海关高级认证 → 绿色通道",
        ("customs_advanced",),
        None,
        "licensing",
        {"I-LIC-01": A, "I-LIC-02": A, "I-LIC-03": A, "I-LIC-04": A},
        "incentive",
    ),
    Row(
        "诚信示范企业 → 容缺办理、优先办理",
        ("integrity_model",),
        None,
        "public_service",
        {"I-SVC-01": A, "I-SVC-02": A},
        "incentive",
    ),
    Row(
        "红名单 → 降低抽查比例、减少现场核查",
        ("tax_grade_a",),
        None,
        "inspection",
        {"I-INS-01": A, "I-INS-02": A},
        "incentive",
    ),
    Row("红名单 → 优先推荐", ("integrity_model",), None, "honours", {"I-HON-01": A}, "incentive"),
    Row(
        "红名单 → 优先安排资金",
        ("customs_advanced",),
        None,
        "subsidy",
        {"I-SUB-01": A},
        "incentive",
    ),
    Row("招标投标没有激励措施", ("tax_grade_a",), None, "bidding", {}, "clear"),
    # --- grades (浙 三(一)(二), 黔 (七)) ------------------------------------------------
    Row("良好 → 容缺受理", (), "good", "licensing", {"I-LIC-01": A}, "incentive"),
    Row(
        "优秀 → 容缺受理、加快办理",
        (),
        "excellent",
        "licensing",
        {"I-LIC-01": A, "I-LIC-03": A},
        "incentive",
    ),
    Row("中等 → 不予容缺受理", (), "fair", "licensing", {"M-LIC-01": A}, "attention"),
    Row(
        "较差 → 不予容缺受理、重点审查、重点监管",
        (),
        "poor",
        "licensing",
        {"M-LIC-01": A, "M-LIC-02": A, "M-LIC-03": A},
        "attention",
    ),
    Row(
        "较差 → 提高抽查比例", (), "poor", "inspection", {"M-INS-01": A, "M-INS-02": A}, "attention"
    ),
    Row(
        "优秀 → 降低抽查比例、减少现场核查",
        (),
        "excellent",
        "inspection",
        {"I-INS-01": A, "I-INS-02": A},
        "incentive",
    ),
    Row("良好 → 降低抽查比例 (黔 (七))", (), "good", "inspection", {"I-INS-01": A}, "incentive"),
    Row("中等 → 常规抽查", (), "fair", "inspection", {}, "clear"),
    Row(
        "优秀 → 公共服务优先办理",
        (),
        "excellent",
        "public_service",
        {"I-SVC-01": A, "I-SVC-02": A},
        "incentive",
    ),
    Row("较差 → 招投标重点审查", (), "poor", "bidding", {"M-BID-01": A}, "attention"),
    # --- precedence: black beats red; exclusions -----------------------------------------
    Row(
        "黑名单 + 红名单 → 无激励",
        ("court_defaulter", "tax_grade_a"),
        None,
        "licensing",
        {"P-LIC-01": A, "P-LIC-02": A, "P-LIC-03": A, "M-LIC-01": A},
        "restricted",
    ),
    Row(
        "黑名单 + 良好 → 无容缺受理",
        ("market_serious_violation",),
        "good",
        "licensing",
        {"P-LIC-01": A, "P-LIC-03": A, "P-LIC-04": A, "M-LIC-01": A},
        "restricted",
    ),
    Row(
        "黑名单 + 优秀 → 无降低抽查",
        ("court_defaulter",),
        "excellent",
        "inspection",
        {"M-INS-01": A, "M-INS-02": A},
        "attention",
    ),
    Row(
        "红名单 + 中等 → 不予容缺受理，其余激励保留",
        ("tax_grade_a",),
        "fair",
        "licensing",
        {"M-LIC-01": A, "I-LIC-02": A, "I-LIC-03": A, "I-LIC-04": A},
        "attention",
    ),
    Row(
        "重点关注 + 红名单 → 激励与审查并存",
        ("focus", "integrity_model"),
        None,
        "licensing",
        {"M-LIC-02": A, "I-LIC-01": A, "I-LIC-02": A, "I-LIC-03": A, "I-LIC-04": A},
        "attention",
    ),
    # --- credit commitment (黔 (一)) -----------------------------------------------------
    Row(
        "信用承诺 → 即时办理", (), None, "licensing", {"I-LIC-05": A}, "incentive", commitment=True
    ),
    Row(
        "信用承诺 + 黑名单 → 不适用",
        ("court_defaulter",),
        None,
        "licensing",
        {"P-LIC-01": A, "P-LIC-02": A, "P-LIC-03": A, "M-LIC-01": A},
        "restricted",
        commitment=True,
    ),
    Row(
        "信用承诺 + 中等 → 不适用告知承诺",
        (),
        "fair",
        "licensing",
        {"M-LIC-01": A},
        "attention",
        commitment=True,
    ),
    Row("信用承诺只用于审批", (), None, "bidding", {}, "clear", commitment=True),
    # --- objection suspends (黔 (十七)) --------------------------------------------------
    Row(
        "异议期间 → 惩戒暂停",
        ("court_defaulter:objection_pending",),
        None,
        "bidding",
        {"P-BID-01": S},
        "attention",
    ),
    Row(
        "异议期间 → 审批惩戒和管理措施暂停",
        ("court_defaulter:objection_pending",),
        None,
        "licensing",
        {"P-LIC-01": S, "P-LIC-02": S, "P-LIC-03": S, "M-LIC-01": S},
        "attention",
    ),
    Row(
        "一条异议、一条有效 → 执行",
        ("court_defaulter:objection_pending", "court_defaulter"),
        None,
        "bidding",
        {"P-BID-01": A},
        "restricted",
    ),
    Row(
        "异议期间不恢复激励",
        ("court_defaulter:objection_pending", "tax_grade_a"),
        None,
        "licensing",
        {"P-LIC-01": S, "P-LIC-02": S, "P-LIC-03": S, "M-LIC-01": S},
        "attention",
    ),
    Row(
        "异议期间 + 中等 → 不予容缺受理仍执行",
        ("market_serious_violation:objection_pending",),
        "fair",
        "licensing",
        {"P-LIC-01": S, "P-LIC-03": S, "P-LIC-04": S, "M-LIC-01": A},
        "attention",
    ),
    # --- repair, revocation, expiry: nothing ----------------------------------------------
    Row(
        "信用修复 → 终止惩戒 (黔 (十三))",
        ("court_defaulter:repaired",),
        None,
        "bidding",
        {},
        "clear",
    ),
    Row("撤销 → 无措施", ("court_defaulter:revoked",), None, "procurement", {}, "clear"),
    Row("已过期 → 无措施", ("wage_arrears:expired",), None, "bidding", {}, "clear"),
    Row(
        "修复后红名单激励恢复",
        ("court_defaulter:repaired", "tax_grade_a"),
        None,
        "public_service",
        {"I-SVC-02": A, "I-SVC-01": A},
        "incentive",
    ),
    Row("无记录 → clear", (), None, "bidding", {}, "clear"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_policy_table(row: Row, catalog: Catalog) -> None:
    entries = [entry(spec, n) for n, spec in enumerate(row.entries)]
    grade = Grade(row.grade) if row.grade else None  # type: ignore[arg-type]
    decision = decide(entries, grade, row.matter, catalog, TODAY, commitment=row.commitment)
    assert {m.code: m.state for m in decision.measures} == row.expect
    assert decision.verdict == row.verdict
    assert decision.feedback_required == (A in row.expect.values())
    for m in decision.measures:
        assert m.basis, f"{m.code} returned without legal basis"
        assert m.triggered_by, f"{m.code} returned without a trigger"
        definition = catalog.measures[m.code]
        assert (m.name, m.kind, m.strength) == (
            definition.name,
            definition.kind,
            definition.strength,
        )


def test_rows_cover_every_matter_and_every_list_kind(catalog: Catalog) -> None:
    assert {r.matter for r in ROWS} == set(catalog.matter_types)
    kinds = {catalog.list_types[e.partition(":")[0]].kind for r in ROWS for e in r.entries}
    assert kinds == {"black", "focus", "abnormal", "red"}
    assert {r.grade for r in ROWS} >= set(catalog.grades)


# --- what triggered what, and on what basis --------------------------------------------


def test_one_measure_from_several_entries_appears_once_with_all_triggers(
    catalog: Catalog,
) -> None:
    entries = [entry("court_defaulter", 1), entry("wage_arrears", 2)]
    decision = decide(entries, None, "bidding", catalog, TODAY)
    [measure] = decision.measures
    assert measure.code == "P-BID-01"
    assert measure.triggered_by == ("e1-court_defaulter", "e2-wage_arrears")
    court = "《最高人民法院关于公布失信被执行人名单信息的若干规定》(法释〔2017〕7号)第八条"
    assert court in measure.basis
    assert "《保障农民工工资支付条例》第四十八条" in measure.basis
    assert len(set(measure.basis)) == len(measure.basis)


def test_grade_and_list_triggers_are_named(catalog: Catalog) -> None:
    decision = decide([entry("tax_grade_a", 7)], Grade("good"), "licensing", catalog, TODAY)
    by_code = {m.code: m for m in decision.measures}
    assert by_code["I-LIC-01"].triggered_by == ("e7-tax_grade_a", "grade:good")
    commitment = decide([], None, "licensing", catalog, TODAY, commitment=True)
    assert commitment.measures[0].triggered_by == ("commitment",)


def test_measures_come_punishments_first_in_catalog_order(catalog: Catalog) -> None:
    decision = decide([entry("court_defaulter")], None, "licensing", catalog, TODAY)
    assert [m.code for m in decision.measures] == ["P-LIC-01", "P-LIC-02", "P-LIC-03", "M-LIC-01"]


# --- dates decide, not sweeps ----------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "expires", "live"),
    [
        (-10, -1, False),  # expired yesterday
        (-10, 0, True),  # last day in force
        (1, 100, False),  # listed tomorrow: not yet in force
        (0, 100, True),  # in force from today
        (-1000, None, True),  # no end date: until removed
    ],
    ids=["expired-yesterday", "expires-today", "listed-tomorrow", "listed-today", "open-ended"],
)
def test_in_force_by_dates(catalog: Catalog, listed: int, expires: int | None, live: bool) -> None:
    e = entry("court_defaulter", listed=listed, expires=expires)
    decision = decide([e], None, "bidding", catalog, TODAY)
    assert decision.hits == ((e,) if live else ())
    assert decision.verdict == ("restricted" if live else "clear")


def test_only_live_entries_are_returned_as_hits(catalog: Catalog) -> None:
    live, repaired = entry("focus", 1), entry("court_defaulter:repaired", 2)
    decision = decide([repaired, live], None, "public_service", catalog, TODAY)
    assert decision.hits == (live,)
    assert decision.verdict == "clear"


def test_entry_of_a_list_type_the_catalog_no_longer_has_is_shown_without_measures(
    catalog: Catalog,
) -> None:
    retired = entry("retired_list")
    decision = decide([retired], None, "bidding", catalog, TODAY)
    assert decision.hits == (retired,)
    assert decision.measures == ()


def test_unknown_matter_names_the_valid_ones(catalog: Catalog) -> None:
    with pytest.raises(UnknownMatter) as caught:
        decide([], None, "tendering", catalog, TODAY)
    assert caught.value.matter == "tendering"
    assert set(caught.value.valid) == set(catalog.matter_types)
    assert "licensing" in str(caught.value)
