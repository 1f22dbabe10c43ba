"""Generate a bench population: valid USCCs, list entries for some, codes to query.

``generate(n_subjects, hit_ratio, seed)`` builds ``n_subjects`` distinct valid codes
(GB 32100: authority ``9``, category ``1``, real GB/T 2260 region codes, GB 11714
organisation code with its check digit, mod-31 check digit). A ``hit_ratio`` share of
them get one list entry each (half ``court_defaulter``, the rest spread over the other
list types of API.md); the others are clear. Dates are relative to ``today``: every
entry is in force (``listed_on`` in the past, ``expires_on`` in the future).

Command line (writes ``entries.csv`` in the canonical import format and ``codes.txt``,
one code a line, half hits and half clear, shuffled; ``--load`` also posts the entries to
a running gateway through its Lists API)::

    python -m loadtest.datagen --subjects 100000 --hit-ratio 0.1 --out var/bench/
    python -m loadtest.datagen --subjects 10000 --load http://127.0.0.1:8000 --key <lists key>
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from gateway.identifiers.uscc import ALPHABET, calc_check_digit, calc_organisation_check_digit

# fmt: off
ENTRY_FIELDS = ("uscc", "subject_name", "list_type", "authority", "reason", "basis",
                "document_no", "listed_on", "expires_on", "source", "source_id")
SOURCE = "bench"

#: (GB/T 2260 county-level code, city, one-character abbreviation of its province)
REGIONS = (
    ("110105", "北京市", "京"), ("110108", "北京市", "京"), ("120116", "天津市", "津"),
    ("130102", "石家庄市", "冀"), ("140105", "太原市", "晋"), ("210203", "大连市", "辽"),
    ("220104", "长春市", "吉"), ("230103", "哈尔滨市", "黑"), ("310104", "上海市", "沪"),
    ("310115", "上海市", "沪"), ("320505", "苏州市", "苏"), ("320106", "南京市", "苏"),
    ("330106", "杭州市", "浙"), ("330212", "宁波市", "浙"), ("340104", "合肥市", "皖"),
    ("350203", "厦门市", "闽"), ("360111", "南昌市", "赣"), ("370202", "青岛市", "鲁"),
    ("410105", "郑州市", "豫"), ("420106", "武汉市", "鄂"), ("430104", "长沙市", "湘"),
    ("440305", "深圳市", "粤"), ("440106", "广州市", "粤"), ("450103", "南宁市", "桂"),
    ("460106", "海口市", "琼"), ("500112", "重庆市", "渝"), ("510107", "成都市", "川"),
    ("520102", "贵阳市", "黔"), ("530102", "昆明市", "云"), ("610113", "西安市", "陕"),
    ("620102", "兰州市", "甘"), ("640104", "银川市", "宁"), ("650102", "乌鲁木齐市", "新"),
)
_TRADE = "华泰恒信远达鑫盛博瑞宏昌安丰永新中科金诚源汇通嘉和润天宇广隆兴邦德益明辉"
_TRADES = ("建设", "建筑工程", "科技", "商贸", "物流", "机电设备", "环保工程", "市政工程",
           "信息技术", "医药", "食品", "劳务", "装饰工程", "实业")
_FORMS = ("有限公司", "有限责任公司", "股份有限公司", "集团有限公司")

#: list type → (authority template, reason, basis, document-number template)
LIST_DETAILS: dict[str, tuple[str, str, str, str]] = {
    "court_defaulter": ("{city}中级人民法院", "有履行能力而拒不履行生效法律文书确定义务",
                        "《最高人民法院关于公布失信被执行人名单信息的若干规定》第一条",
                        "({year}){abbr}01执{n}号"),
    "tax_major_violation": ("国家税务总局{city}税务局", "虚开增值税专用发票",
                            "《重大税收违法失信主体信息公布管理办法》第六条",
                            "{abbr}税稽罚〔{year}〕{n}号"),
    "market_serious_violation": ("{city}市场监督管理局", "提供虚假材料取得登记",
                                 "《市场监督管理严重违法失信名单管理办法》第十条",
                                 "{abbr}市监严失〔{year}〕{n}号"),
    "wage_arrears": ("{city}人力资源和社会保障局", "克扣、无故拖欠农民工工资达到认定拒不支付",
                     "《拖欠农民工工资失信联合惩戒对象名单管理暂行办法》第五条",
                     "{abbr}人社失信〔{year}〕{n}号"),
    "work_safety_serious": ("{city}应急管理局", "发生较大及以上生产安全责任事故",
                            "《安全生产严重失信主体名单管理办法》第六条",
                            "{abbr}应急失信〔{year}〕{n}号"),
    "statistics_serious": ("{city}统计局", "统计造假、弄虚作假",
                           "《统计严重失信企业信用管理办法》第五条",
                           "{abbr}统失信〔{year}〕{n}号"),
    "procurement_serious": ("{city}财政局", "提供虚假材料谋取中标、成交",
                            "《中华人民共和国政府采购法》第七十七条",
                            "{abbr}财采处〔{year}〕{n}号"),
    "customs_dishonest": ("{city}海关", "走私违法被海关行政处罚",
                          "《中华人民共和国海关注册登记和备案企业信用管理办法》第十二条",
                          "{abbr}关失信〔{year}〕{n}号"),
    "social_org_serious": ("{city}民政局", "弄虚作假办理变更登记",
                           "《社会组织信用信息管理办法》第十三条",
                           "{abbr}民社失〔{year}〕{n}号"),
    "focus": ("{city}发展和改革委员会", "一年内受到三次以上行政处罚",
              "《关于加快推进社会信用体系建设构建以信用为基础的新型监管机制的指导意见》",
              "{abbr}发改信用〔{year}〕{n}号"),
    "business_abnormal": ("{city}市场监督管理局", "未按规定期限公示年度报告",
                          "《企业经营异常名录管理暂行办法》第四条",
                          "{abbr}市监异〔{year}〕{n}号"),
    "tax_grade_a": ("国家税务总局{city}税务局", "纳税信用评价为A级",
                    "《纳税信用管理办法（试行）》第二十九条", "{abbr}税信A〔{year}〕{n}号"),
    "customs_advanced": ("{city}海关", "通过海关高级认证",
                         "《中华人民共和国海关注册登记和备案企业信用管理办法》第二十二条",
                         "{abbr}关认证〔{year}〕{n}号"),
    "integrity_model": ("{city}发展和改革委员会", "评为诚信示范企业",
                        "《关于建立完善守信联合激励和失信联合惩戒制度的指导意见》",
                        "{abbr}发改诚信〔{year}〕{n}号"),
}
# fmt: on
OTHER_LIST_TYPES = tuple(t for t in LIST_DETAILS if t != "court_defaulter")

Row = dict[str, str]


def make_uscc(rnd: random.Random, region: str) -> str:
    """A valid USCC of a company (authority 9, category 1) registered in ``region``."""
    if rnd.random() < 0.6:  # codes issued since 2015 start with MA
        eight = "MA" + "".join(rnd.choice(ALPHABET) for _ in range(6))
    else:
        eight = "".join(rnd.choice("0123456789") for _ in range(8))
    first17 = "91" + region + eight + calc_organisation_check_digit(eight)
    return first17 + calc_check_digit(first17)


def _entry(
    rnd: random.Random,
    index: int,
    uscc: str,
    region: tuple[str, str, str],
    list_type: str,
    today: date,
) -> Row:
    _code, city, abbr = region
    authority, reason, basis, doc = LIST_DETAILS[list_type]
    listed_on = today - timedelta(days=rnd.randint(30, 700))
    name = "".join(rnd.sample(_TRADE, 2)) + rnd.choice(_TRADES) + rnd.choice(_FORMS)
    return {
        "uscc": uscc,
        "subject_name": city.removesuffix("市") + name,
        "list_type": list_type,
        "authority": authority.format(city=city),
        "reason": reason,
        "basis": basis,
        "document_no": doc.format(year=listed_on.year, abbr=abbr, n=rnd.randint(1, 9999)),
        "listed_on": listed_on.isoformat(),
        "expires_on": (today + timedelta(days=rnd.randint(180, 1100))).isoformat(),
        "source": SOURCE,
        "source_id": f"{SOURCE}-{index:07d}",
    }


def generate(
    n_subjects: int, hit_ratio: float, seed: int = 7, today: date | None = None
) -> tuple[list[Row], list[str], list[str]]:
    """Return ``(entries_rows, hit_codes, clear_codes)``: one entry per hit code."""
    if n_subjects < 2 or not 0 < hit_ratio < 1:
        raise ValueError("need n_subjects >= 2 and 0 < hit_ratio < 1")
    rnd = random.Random(seed)
    today = today or date.today()
    seen: set[str] = set()
    subjects: list[tuple[str, tuple[str, str, str]]] = []
    while len(subjects) < n_subjects:
        region = rnd.choice(REGIONS)
        code = make_uscc(rnd, region[0])
        if code not in seen:
            seen.add(code)
            subjects.append((code, region))
    n_hits = max(1, min(n_subjects - 1, round(n_subjects * hit_ratio)))
    rows: list[Row] = []
    for i, (code, region) in enumerate(subjects[:n_hits]):
        list_type = "court_defaulter" if i % 2 == 0 else rnd.choice(OTHER_LIST_TYPES)
        rows.append(_entry(rnd, i + 1, code, region, list_type, today))
    return rows, [c for c, _ in subjects[:n_hits]], [c for c, _ in subjects[n_hits:]]


def query_codes(hit_codes: list[str], clear_codes: list[str], n: int, seed: int = 7) -> list[str]:
    """``n`` codes to query, half hits and half clear (as the floor app's ``/codes``), shuffled."""
    rnd = random.Random(seed)
    half = min(n // 2, len(hit_codes))
    codes = rnd.sample(hit_codes, half) + rnd.sample(clear_codes, min(n - half, len(clear_codes)))
    rnd.shuffle(codes)
    return codes


def write_entries(path: Path, rows: list[Row]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ENTRY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def write_codes(path: Path, codes: list[str]) -> None:
    path.write_text("".join(f"{c}\n" for c in codes), encoding="ascii")


def write_all(
    out: Path, n_subjects: int, hit_ratio: float, n_codes: int, seed: int = 7
) -> tuple[Path, Path, int]:
    """Write ``entries.csv`` and ``codes.txt`` under ``out``; return both paths, entry count."""
    out.mkdir(parents=True, exist_ok=True)
    rows, hits, clear = generate(n_subjects, hit_ratio, seed)
    entries, codes = out / "entries.csv", out / "codes.txt"
    write_entries(entries, rows)
    write_codes(codes, query_codes(hits, clear, n_codes, seed))
    return entries, codes, len(rows)


def load_into(
    base_url: str, key: str, rows: list[Row], chunk: int = 5_000, timeout: float = 120.0
) -> dict[str, int]:
    """Load ``rows`` into a running gateway through ``POST /v1/lists/entries`` (NDJSON, a
    key with scope ``lists``), ``chunk`` rows a request; the summed counts."""
    import httpx

    totals = {"inserted": 0, "updated": 0, "unchanged": 0}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        for start in range(0, len(rows), chunk):
            body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[start : start + chunk])
            response = client.post("/v1/lists/entries", content=body.encode())
            if response.status_code != 200:
                raise RuntimeError(
                    f"rows {start + 1}-: {response.status_code} {response.text[:500]}"
                )
            for name in totals:
                totals[name] += int(response.json()[name])
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.datagen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--hit-ratio", type=float, default=0.1, help="share of subjects listed")
    parser.add_argument("--codes", type=int, default=10_000, help="codes to query (half hits)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    parser.add_argument(
        "--load",
        metavar="URL",
        help="also load the entries into the gateway at URL (127.0.0.1 only)",
    )
    parser.add_argument("--key", help="API key with scope lists, for --load")
    args = parser.parse_args(argv)
    entries, codes, n = write_all(args.out, args.subjects, args.hit_ratio, args.codes, args.seed)
    print(f"{args.subjects} subjects, {n} listed: wrote {entries} ({n} entries) and {codes}")
    if args.load:
        if not args.key:
            parser.error("--load needs --key")
        host = urlsplit(args.load).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("load targets are loopback addresses only")
        rows, _, _ = generate(args.subjects, args.hit_ratio, args.seed)
        print(f"loaded into {args.load}: {load_into(args.load, args.key, rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
