"""Import mappings: shipped layouts give exact canonical records; bad files name file and key."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped, unused-ignore]

from adapters.sources import files, mapping
from adapters.sources.mapping import CANONICAL, Mapping, MappingError, Problem
from gateway.lists import parse_entries
from measures_catalog import Catalog

COURT_ROW = {
    "被执行人姓名/名称": "北京某某建设有限公司",
    "性别": "",
    "年龄": "",
    "身份证号码/组织机构代码": "60003734-1",
    "统一社会信用代码": "91110000600037341L",
    "法定代表人或者负责人姓名": "张某",
    "执行法院": "北京市朝阳区人民法院",
    "省份": "北京",
    "执行依据文号": "（2025）京0105民初1234号",
    "立案时间": "2025年11月3日",
    "案号": "（2025）京0105执5678号",
    "做出执行依据单位": "北京市朝阳区人民法院",
    "生效法律文书确定的义务": "支付货款人民币50万元及利息",
    "被执行人的履行情况": "全部未履行",
    "已履行部分": "",
    "未履行部分": "",
    "失信被执行人行为具体情形": "有履行能力而拒不履行生效法律文书确定义务",
    "发布时间": "2026年3月1日",
}
MARKET_ROW = {  # a bulk export: full-width brackets and stray spaces in the header
    "序号": "1",
    "统一社会信用代码": "91310115MA1K3BTP2B",
    "企业名称": "上海某某食品有限公司",
    "类别": "严重违法失信名单",
    "列入严重违法失信名单（黑名单）原因": "提交虚假材料取得公司登记，被依法撤销登记",
    " 列入日期 ": "2025/6/18",
    "列入决定书文号": "沪市监浦处〔2025〕012号",
    "作出决定机关（列入）": "上海市浦东新区市场监督管理局",
    "移出原因": "",
    "移出日期": "",
    "移出决定书文号": "",
    "作出决定机关（移出）": "",
}
WAGE_ROW = {
    "对象名称": "深圳某某建筑劳务有限公司",
    "统一社会信用代码": "9144030071526726XG",
    "列入时间": "2025-09-10",
    "预计退出日期": "2028-09-09",
    "法定代表人": "李某",
    "发布机关名称": "深圳市人力资源和社会保障局",
    "文书号": "深人社惩〔2025〕3号",
    "列入黑名单事由": "拖欠农民工工资，经责令限期支付逾期未支付",
    "列入依据": "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》（人社部令第45号）",
}
PROCUREMENT_ROW = {
    "序号": "1",
    "企业名称": "兰州某某信息技术有限公司",
    "统一社会信用代码(或组织机构代码)": "91620105L015101280",
    "企业地址": "甘肃省兰州市城关区某某路1号",
    "严重违法失信行为的具体情形": "提供虚假材料谋取中标",
    "处罚结果": "罚款人民币1万元，一年内禁止参加政府采购活动",
    "处罚依据": "《中华人民共和国政府采购法》第七十七条",
    "处罚日期": "20250815",
    "公布日期": "20250820",
    "执法单位": "兰州市财政局",
    "处罚结束时间": "2026年8月14日",
}


def _builtin(name: str) -> Mapping:
    return mapping.load(mapping.builtin(name))


def _apply(name: str, record: dict[str, Any]) -> tuple[dict[str, str], list[Problem]]:
    return _builtin(name).apply(1, record)


def test_every_shipped_mapping_loads_and_is_named_after_its_file() -> None:
    names = mapping.available()
    assert {"court_defaulter", "market_serious_violation", "wage_arrears"} <= set(names)
    assert "procurement_serious" in names
    for name in names:
        assert _builtin(name).name == name


def test_court_defaulter_row() -> None:
    assert _apply("court_defaulter", COURT_ROW) == (
        {
            "uscc": "91110000600037341L",
            "subject_name": "北京某某建设有限公司",
            "list_type": "court_defaulter",
            "authority": "北京市朝阳区人民法院",
            "reason": "有履行能力而拒不履行生效法律文书确定义务",
            "basis": "（2025）京0105民初1234号",
            "document_no": "（2025）京0105执5678号",
            "listed_on": "2026-03-01",
            "expires_on": "",
            "source": "court_disclosure",
            "source_id": "（2025）京0105执5678号|91110000600037341L",
        },
        [],
    )


def test_court_code_falls_back_to_the_older_column_when_the_uscc_is_a_placeholder() -> None:
    row = {**COURT_ROW, "统一社会信用代码": "-", "身份证号码/组织机构代码": "91110000600037341L"}
    canonical, problems = _apply("court_defaulter", row)
    assert (canonical["uscc"], problems) == ("91110000600037341L", [])


def test_court_row_with_only_an_organisation_code_is_reported_not_guessed() -> None:
    row = {k: v for k, v in COURT_ROW.items() if k != "统一社会信用代码"}
    canonical, problems = _apply("court_defaulter", row)
    assert canonical["uscc"] == "60003734-1"
    assert problems == [
        (
            "uscc",
            "身份证号码/组织机构代码: '60003734-1' is a 9-character organisation code "
            "(组织机构代码), not a USCC: no subject can match it",
        )
    ]


def test_a_masked_identifier_is_reported() -> None:
    row = {**COURT_ROW, "统一社会信用代码": "", "身份证号码/组织机构代码": "1101**********002X"}
    _, problems = _apply("court_defaulter", row)
    assert problems == [
        (
            "uscc",
            "身份证号码/组织机构代码: '1101**********002X' is masked, not a USCC: "
            "no subject can match it",
        )
    ]


def test_market_serious_violation_row_matches_full_width_headers() -> None:
    assert _apply("market_serious_violation", MARKET_ROW) == (
        {
            "uscc": "91310115MA1K3BTP2B",
            "subject_name": "上海某某食品有限公司",
            "list_type": "market_serious_violation",
            "authority": "上海市浦东新区市场监督管理局",
            "reason": "提交虚假材料取得公司登记，被依法撤销登记",
            "basis": "",
            "document_no": "沪市监浦处〔2025〕012号",
            "listed_on": "2025-06-18",
            "expires_on": "",
            "source": "market_publicity",
            "source_id": "91310115MA1K3BTP2B|沪市监浦处〔2025〕012号",
        },
        [],
    )


def test_a_removed_market_entry_ends_the_day_before_its_removal() -> None:
    row = {**MARKET_ROW, "移出原因": "信用修复", "移出日期": "2026年6月18日"}
    canonical, problems = _apply("market_serious_violation", row)
    assert (canonical["expires_on"], problems) == ("2026-06-17", [])


def test_a_market_export_without_removal_columns_is_fine() -> None:
    row = {k: v for k, v in MARKET_ROW.items() if not k.startswith("移出")}
    canonical, problems = _apply("market_serious_violation", row)
    assert (canonical["expires_on"], problems) == ("", [])


def test_wage_arrears_row() -> None:
    assert _apply("wage_arrears", WAGE_ROW) == (
        {
            "uscc": "9144030071526726XG",
            "subject_name": "深圳某某建筑劳务有限公司",
            "list_type": "wage_arrears",
            "authority": "深圳市人力资源和社会保障局",
            "reason": "拖欠农民工工资，经责令限期支付逾期未支付",
            "basis": "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》（人社部令第45号）",
            "document_no": "深人社惩〔2025〕3号",
            "listed_on": "2025-09-10",
            "expires_on": "2028-09-09",
            "source": "hrss_wage_arrears",
            "source_id": "9144030071526726XG|深人社惩〔2025〕3号",
        },
        [],
    )


def test_wage_arrears_without_an_exit_date_gets_the_three_year_period() -> None:
    row = {**WAGE_ROW, "列入时间": "2024/2/29", "预计退出日期": ""}
    canonical, problems = _apply("wage_arrears", row)
    assert (canonical["listed_on"], canonical["expires_on"], problems) == (
        "2024-02-29",
        "2027-02-27",
        [],
    )


def test_procurement_serious_row() -> None:
    assert _apply("procurement_serious", PROCUREMENT_ROW) == (
        {
            "uscc": "91620105L015101280",
            "subject_name": "兰州某某信息技术有限公司",
            "list_type": "procurement_serious",
            "authority": "兰州市财政局",
            "reason": "提供虚假材料谋取中标",
            "basis": "《中华人民共和国政府采购法》第七十七条",
            "document_no": "",
            "listed_on": "2025-08-15",
            "expires_on": "2026-08-14",
            "source": "ccgp",
            "source_id": "91620105L015101280|2025-08-15",
        },
        [],
    )


def test_a_15_digit_registration_number_is_reported_on_uscc() -> None:
    row = {k: v for k, v in PROCUREMENT_ROW.items() if k != "处罚结束时间"}
    row["统一社会信用代码(或组织机构代码)"] = "110105 012345678"
    canonical, problems = _apply("procurement_serious", row)
    assert canonical["expires_on"] == ""  # its column is optional
    assert problems == [
        (
            "uscc",
            "统一社会信用代码(或组织机构代码): '110105 012345678' is a 15-digit registration "
            "number (注册号), not a USCC: no subject can match it",
        )
    ]


def test_a_bad_date_is_a_problem_naming_the_source_column() -> None:
    canonical, problems = _apply("court_defaulter", {**COURT_ROW, "发布时间": "2026年13月1日"})
    assert problems == [
        ("listed_on", "发布时间: '2026年13月1日' is not a calendar date (month must be in 1..12)")
    ]
    assert canonical["uscc"] == "91110000600037341L"
    _, problems = _apply("wage_arrears", {**WAGE_ROW, "预计退出日期": "长期"})
    assert [p.field for p in problems] == ["expires_on"]
    assert problems[0].message.startswith("预计退出日期: '长期' is not a date; accepted: ")


def test_empty_required_and_missing_columns_are_problems() -> None:
    court = _builtin("court_defaulter")
    row = {k: v for k, v in COURT_ROW.items() if k != "执行法院"}
    row.update({"统一社会信用代码": "无", "身份证号码/组织机构代码": " ", "发布时间": ""})
    _, problems = court.apply(7, row)
    assert problems == [
        ("authority", "no column 执行法院 in the file"),
        ("uscc", "统一社会信用代码 / 身份证号码/组织机构代码: empty, but required"),
        ("listed_on", "发布时间: empty, but required"),
    ]
    assert court.missing_columns(row) == ["authority: 执行法院"]
    assert court.missing_columns(COURT_ROW) == []


def test_a_reader_error_passes_through() -> None:
    canonical, problems = _apply("wage_arrears", {"__error__": "2 more cells than header columns"})
    assert canonical == dict.fromkeys(CANONICAL, "")
    assert problems == [("*", "2 more cells than header columns")]


PROVINCE = """
name = "province_blacklists"
description = "省信用平台 汇总导出：一张表多种名单"
[defaults]
source = "province_credit"
[columns]
uscc = "统一社会信用代码"
subject_name = "主体名称"
list_type = "名单类别"
listed_on = "认定日期"
source_id = "记录编号"
[values.list_type]
"失信被执行人" = "court_defaulter"
"拖欠农民工工资失信联合惩戒对象" = "wage_arrears"
"重大税收违法失信主体" = "tax_major_violation"
"""


def test_a_values_table_maps_source_values_to_canonical_ones(tmp_path: Path) -> None:
    path = tmp_path / "province.toml"
    path.write_text(PROVINCE, encoding="utf-8")
    province = mapping.load(path)
    row = {
        "统一社会信用代码": "91120224064012553U",
        "主体名称": "天津某某贸易有限公司",
        "名单类别": " 拖欠农民工工资　失信联合惩戒对象 ",
        "认定日期": "2026.1.5",
        "记录编号": "TJ-2026-0001",
    }
    canonical, problems = province.apply(1, row)
    assert problems == []
    assert canonical["list_type"] == "wage_arrears"
    assert (canonical["listed_on"], canonical["source"]) == ("2026-01-05", "province_credit")
    _, problems = province.apply(2, {**row, "名单类别": "安全生产严重失信"})
    assert problems == [
        (
            "list_type",
            "名单类别: '安全生产严重失信' is not one of: 失信被执行人, "
            "拖欠农民工工资失信联合惩戒对象, 重大税收违法失信主体",
        )
    ]


BASE = """
name = "t"
[columns]
uscc = "统一社会信用代码"
listed_on = "列入日期"
[defaults]
list_type = "court_defaulter"
"""


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("name = 't'\n[columns]\nusc = 'x'", "columns.usc", "unknown canonical field"),
        (
            BASE + "[derive]\nlisted = { from = 'listed_on', add_days = 1 }",
            "derive.listed",
            "unknown",
        ),
        (BASE.replace('listed_on = "列入日期"', ""), "listed_on", "required: map it in [columns]"),
        (BASE.replace('list_type = "court_defaulter"', ""), "list_type", "required"),
        ("owner = 'x'\n" + BASE, "owner", "unknown key; expected: name, description"),
        ("description = 'no name'\n" + BASE.replace('name = "t"', ""), "name", "required"),
        (BASE.replace('name = "t"', 'name = "Court Defaulter"'), "name", "lower-case"),
        (
            BASE + "reason = 'x'\n[values.reason]\n'a' = 'b'",
            "values.reason",
            "only a field mapped",
        ),
        (BASE + "[values.uscc]\n'a' = ''", "values.uscc", "must be a table of source value"),
        (BASE + "expires_on = '2026-02-30'", "defaults.expires_on", "not a calendar date"),
        (BASE + "source = ''", "defaults.source", "must be a non-empty string"),
        (BASE.replace('"列入日期"', "[]"), "columns.listed_on", "non-empty list"),
        (
            BASE + "[derive]\nexpires_on = { from = 'listed_on', add_weeks = 2 }",
            "derive.expires_on.add_weeks",
            "unknown key",
        ),
        (
            BASE + "[derive]\nexpires_on = { from = 'listed_on', add_years = 1.5 }",
            "derive.expires_on",
            "whole numbers",
        ),
        (BASE + "[derive]\nexpires_on = { add_years = 1 }", "derive.expires_on", "needs one of"),
        (
            BASE + "[derive]\nexpires_on = { from = 'source' }",
            "derive.expires_on.from",
            "other canonical date",
        ),
        (
            BASE + "[derive]\nreason = { from = 'listed_on' }",
            "derive.reason",
            "only listed_on and expires_on",
        ),
        (
            BASE + "[derive]\nsource_id = { join = ['uscc', 'doc'] }",
            "derive.source_id",
            "join lists canonical fields",
        ),
        (BASE + "[derive]\nlisted_on = { from_column = '日期' }", "derive.listed_on", "not both"),
        ("optional = ['reason']\n" + BASE, "optional", "fields mapped from columns"),
        ("name = 't'\n[columns\n", "*", "not a valid UTF-8 TOML file"),
    ],
)
def test_mapping_errors_name_the_file_and_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as excinfo:
        mapping.load(path)
    assert (excinfo.value.file, excinfo.value.key) == ("broken.toml", key)
    assert str(excinfo.value).startswith(f"broken.toml: {key}: ")
    assert message in str(excinfo.value)


def test_an_unknown_builtin_names_the_available_ones() -> None:
    with pytest.raises(MappingError, match=r"no built-in mapping; available: .*court_defaulter"):
        mapping.builtin("court")
    with pytest.raises(MappingError):
        mapping.builtin("../mappings/court_defaulter")


def test_a_gb18030_court_csv_maps_to_entries_the_gateway_accepts(
    tmp_path: Path, catalog: Catalog
) -> None:
    second = {
        **COURT_ROW,
        "被执行人姓名/名称": "天津某某物流有限公司",
        "统一社会信用代码": "91120224064012553U",
        "执行法院": "天津市宝坻区人民法院",
        "案号": "（2025）津0115执321号",
        "发布时间": "2026/2/27 09:30:00",
    }
    header = ",".join(COURT_ROW)
    lines = [header] + [",".join(row.values()) for row in (COURT_ROW, second)]
    path = tmp_path / "失信被执行人.csv"
    path.write_bytes("\r\n".join(lines).encode("gb18030"))
    court = _builtin("court_defaulter")
    mapped = [(n, *court.apply(n, r)) for n, r in files.read(path)]
    assert [problems for _, _, problems in mapped] == [[], []]
    entries, rejected = parse_entries([(n, c) for n, c, _ in mapped], catalog)
    assert rejected == []
    assert [(e.uscc, e.listed_on, e.authority) for e in entries] == [
        ("91110000600037341L", date(2026, 3, 1), "北京市朝阳区人民法院"),
        ("91120224064012553U", date(2026, 2, 27), "天津市宝坻区人民法院"),
    ]


def test_a_wage_arrears_workbook_maps_to_entries_the_gateway_accepts(
    tmp_path: Path, catalog: Catalog
) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(WAGE_ROW))
    sheet.append([date(2025, 9, 10) if k == "列入时间" else v for k, v in WAGE_ROW.items()])
    second = {**WAGE_ROW, "文书号": "深人社惩〔2025〕4号", "预计退出日期": None}
    sheet.append(list(second.values()))
    workbook.save(tmp_path / "wage.xlsx")
    wage = _builtin("wage_arrears")
    mapped = [wage.apply(n, r) for n, r in files.read(tmp_path / "wage.xlsx")]
    assert [problems for _, problems in mapped] == [[], []]
    entries, rejected = parse_entries(enumerate((c for c, _ in mapped), start=1), catalog)
    assert rejected == []
    assert [(e.listed_on, e.expires_on) for e in entries] == [
        (date(2025, 9, 10), date(2028, 9, 9)),
        (date(2025, 9, 10), date(2028, 9, 9)),
    ]
