"""Citizen ID numbers never in clear: gateway.privacy, and where it is applied outside
the API (the import's reject report, the feed puller's errors, the logs, granian's
access log of a real server)."""

from __future__ import annotations

import doctest
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sources import upstream
from gateway import privacy
from gateway.cli import granian_logging
from gateway.identifiers import citizen_id
from gateway.privacy import (
    RedactingFilter,
    contains_citizen_id,
    install_log_redaction,
    mask_citizen_id,
    redact,
    redact_json,
)
from tests.fixtures import Seeded, run_gateway
from tests.server.conftest import free_port

PROPERTY = settings(database=None, deadline=None, max_examples=300)

WELL_KNOWN = "11010519491231002X"  # GB 11643's published example
MASKED = "110105********002X"
OTHERS = {  # valid numbers and their masks
    "110101199003071233": "110101********1233",
    "44030519850815004X": "440305********004X",
    "11010120000229123X": "110101********123X",  # 29 February 2000
}
OLD = "110105491231002"  # first generation, 15 digits: born 1949-12-31
OLD_MASKED = "110105********1002"


# --- mask_citizen_id and redact -----------------------------------------------------------------


def test_mask_is_first_six_and_last_four() -> None:
    assert mask_citizen_id(WELL_KNOWN) == MASKED
    assert mask_citizen_id("110105 19491231 002x") == MASKED
    for number, masked in OTHERS.items():
        assert mask_citizen_id(number) == masked
        assert len(masked) == 18


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (WELL_KNOWN, MASKED),
        ("11010519491231002x", MASKED),  # lower-case x
        ("110105 19491231 002X", MASKED),  # written in groups
        ("110105-19491231-002X", MASKED),
        ("１１０１０５１９４９１２３１００２Ｘ", MASKED),  # full-width
        (f"身份证号：{WELL_KNOWN}。", f"身份证号：{MASKED}。"),
        (f"ID{WELL_KNOWN}abc", f"ID{MASKED}abc"),  # letters around: still a number
        (OLD, OLD_MASKED),
        (f"旧证号{OLD}号", f"旧证号{OLD_MASKED}号"),
    ],
)
def test_valid_numbers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert contains_citizen_id(text)


@pytest.mark.parametrize(
    "text",
    [
        "110105194912310021",  # check digit wrong (X expected)
        "11010519491231002Y",  # not a digit or X
        "99010519491231002X",  # no such province
        "11010519490229002X",  # 1949 is not a leap year
        "11010518991231002X",  # born before 1900
        f"9{WELL_KNOWN}",  # part of a longer number
        f"{WELL_KNOWN[:-1]}0X",  # 19 characters
        "110105490229002",  # 15 digits, 29 February 1949
        "990105491231002",  # 15 digits, no such province
        "1101054912310021",  # 16 digits
        "91110000600037341L",  # a USCC
        "913101127033980359",  # a USCC of digits only
        "(2026)京01执123号",
        "2026-11-22T12:00:00.000+08:00",
        "01a2019c-0445-7001-bd49-76d851217f26",
        "13800138000",  # a mobile number
        "6222021001234567890",  # a bank card number (19 digits)
        "",
    ],
)
def test_anything_else_is_left_as_it_is(text: str) -> None:
    assert redact(text) is text
    assert not contains_citizen_id(text)


def test_several_numbers_in_chinese_text() -> None:
    text = (
        f"被执行人张三（身份证号{WELL_KNOWN}）、李四（身份证号110101199003071233）"
        f"与王五（旧身份证号{OLD}）均未履行；校验码错误的110105194912310021原样保留，"
        "统一社会信用代码91110000600037341L亦然。"
    )
    assert redact(text) == (
        f"被执行人张三（身份证号{MASKED}）、李四（身份证号110101********1233）"
        f"与王五（旧身份证号{OLD_MASKED}）均未履行；校验码错误的110105194912310021原样保留，"
        "统一社会信用代码91110000600037341L亦然。"
    )


def test_numbers_side_by_side_and_on_lines() -> None:
    text = f"{WELL_KNOWN},110101199003071233\n44030519850815004X;{WELL_KNOWN}"
    assert redact(text) == f"{MASKED},110101********1233\n440305********004X;{MASKED}"


def valid_numbers() -> st.SearchStrategy[str]:
    """Valid 18-character numbers: a province, a date from 1900 on, a sequence code."""

    def build(province: str, rest: str, day: int, sequence: int) -> str:
        born = (date(1900, 1, 1) + timedelta(days=day)).strftime("%Y%m%d")
        first17 = f"{province}{rest}{born}{sequence:03d}"
        return first17 + citizen_id.calc_check_digit(first17)

    return st.builds(
        build,
        st.sampled_from(sorted(citizen_id.PROVINCE_PREFIXES)),
        st.from_regex(r"[0-9]{4}", fullmatch=True),
        st.integers(0, 45_000),
        st.integers(0, 999),
    )


FILLER = st.text(st.characters(exclude_categories=["Nd"]), max_size=30)


@PROPERTY
@given(valid_numbers(), FILLER, FILLER)
def test_any_valid_number_in_any_text_is_masked(number: str, before: str, after: str) -> None:
    assert citizen_id.is_valid(number)
    text = f"{before}{number}{after}"
    if after[:1] in ("X", "x", "Ｘ", "ｘ"):  # the number would be 19 characters long
        return
    redacted = redact(text)
    assert number not in redacted
    assert number[6:14] not in redacted  # the birth date
    assert f"{before}{mask_citizen_id(number)}{after}" == redacted
    assert redact(redacted) == redacted  # masking twice changes nothing


@PROPERTY
@given(st.text(max_size=60))
def test_redact_only_ever_masks_valid_numbers(text: str) -> None:
    redacted = redact(text)
    if redacted is not text:
        assert contains_citizen_id(text)
        assert not contains_citizen_id(redacted)
        assert "********" in redacted


def test_redact_is_cheap_when_there_is_nothing_to_mask() -> None:
    """The hot path's free text (a case reference, a name, a document number) costs well
    under a microsecond; measured properly in the report, bounded loosely here."""
    texts = ["2026-ZJ0102-XK-000123", "某某建设有限公司", "(2026)京01执123号", ""]
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            redact(text)
    per_call = (time.perf_counter() - started) / (rounds * len(texts))
    assert per_call < 5e-6, f"{per_call * 1e9:.0f} ns a call"


# --- JSON ---------------------------------------------------------------------------------------


def test_redact_json_masks_strings_keys_included_and_never_numbers() -> None:
    document = {
        "case_ref": f"案件 {WELL_KNOWN}",
        "feedback": {"handled_by": f"张三 {OLD}", "measures": [{"reason": WELL_KNOWN}]},
        WELL_KNOWN: 1,
        "big": 110101199003071233,
    }
    redacted = msgspec.json.decode(redact_json(msgspec.json.encode(document)))
    assert redacted == {
        "case_ref": f"案件 {MASKED}",
        "feedback": {"handled_by": f"张三 {OLD_MASKED}", "measures": [{"reason": MASKED}]},
        MASKED: 1,
        "big": 110101199003071233,
    }


def test_redact_json_returns_a_body_without_numbers_unchanged() -> None:
    body = msgspec.json.encode({"check_id": "01a2019c-0445-7001-bd49-76d851217f26", "n": 5})
    assert redact_json(body) is body


# --- logs ---------------------------------------------------------------------------------------


@pytest.fixture
def stream_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own, writing to a string through a redacting handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.privacy.stream")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_log_messages_args_and_tracebacks_are_redacted(
    stream_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = stream_logger
    logger.warning("feed %s item %d: uscc %s", "province", 3, WELL_KNOWN)
    logger.warning(f"caller sent {OLD}")
    logger.warning("%(path)s %(status)d", {"path": f"/v1/subjects/{WELL_KNOWN}", "status": 422})
    try:
        raise ValueError(f"unknown matter type {WELL_KNOWN!r}")
    except ValueError:
        logger.exception("request failed for %s", WELL_KNOWN)
    output = stream.getvalue()
    assert WELL_KNOWN not in output
    assert OLD not in output
    assert f"feed province item 3: uscc {MASKED}" in output
    assert f"caller sent {OLD_MASKED}" in output
    assert f"/v1/subjects/{MASKED} 422" in output
    assert f"ValueError: unknown matter type '{MASKED}'" in output
    assert "Traceback (most recent call last)" in output


def test_a_record_is_redacted_once_for_every_handler() -> None:
    record = logging.LogRecord("gateway", logging.ERROR, __file__, 1, "x %s", (WELL_KNOWN,), None)
    assert RedactingFilter().filter(record)
    assert RedactingFilter().filter(record)  # a second handler's filter
    assert record.getMessage() == f"x {MASKED}"
    assert record.args is None


def test_install_log_redaction_filters_every_handler_once() -> None:
    logger = logging.getLogger("tests.privacy.install")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        install_log_redaction(logger)
        install_log_redaction(logger)
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_granian_logging_puts_every_handler_behind_the_filter() -> None:
    config = granian_logging()
    assert config["filters"]["redact"] == {"()": "gateway.privacy.RedactingFilter"}
    assert config["handlers"]
    for handler in config["handlers"].values():
        assert "redact" in handler["filters"]
    assert {"_granian", "granian.access"} <= set(config["loggers"])


def test_access_log_of_a_real_server_has_no_number_in_clear(seeded: Seeded) -> None:
    """``serve --access-log``: a request with a citizen ID number in its path or its query
    string is logged with the path masked and without the query string."""
    port = free_port()
    log = seeded.path.with_suffix(".log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--access-log"],
            env={**os.environ, "GATEWAY_DB": str(seeded.path)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        headers = seeded.auth()
        query = {"uscc": WELL_KNOWN, "matter": "bidding", "case_ref": OLD}
        assert httpx.get(f"{url}/v1/check", params=query, headers=headers).status_code == 422
        assert httpx.get(f"{url}/v1/subjects/{WELL_KNOWN}", headers=headers).status_code in (
            403,
            422,
        )
        assert httpx.get(f"{url}/v1/checks/{WELL_KNOWN}", headers=headers).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text()
    assert f"/v1/checks/{MASKED}" in output, output
    assert f"/v1/subjects/{MASKED}" in output
    assert "GET /v1/check " in output
    assert WELL_KNOWN not in output
    assert OLD not in output
    assert "uscc=" not in output


# --- the import's reject report -----------------------------------------------------------------


def test_an_import_reports_a_persons_number_masked(tmp_path: Path, seeded: Seeded) -> None:
    """Rows whose identifier is a citizen ID number, or that quote one elsewhere, are
    rejected with the number masked: in the report file and on standard error."""
    source = tmp_path / "entries.csv"
    source.write_text(
        "uscc,subject_name,list_type,authority,document_no,listed_on,expires_on,source,source_id\n"
        f"{WELL_KNOWN},张三,court_defaulter,北京市第一中级人民法院,(2026)京01执9号,"
        "2026-03-01,,court,C-1\n"
        f"91110000600037341L,某某公司,{WELL_KNOWN},北京市第一中级人民法院,,2026-03-01,,court,C-2\n"
        f"91310000631696382C,某某公司,court_defaulter,某法院,,{OLD},,court,C-3\n",
        encoding="utf-8",
    )
    report = tmp_path / "rejected.csv"
    result = run_gateway(seeded.path, "import", str(source), "--report", str(report))
    assert result.returncode == 1, result.stderr
    written = report.read_text(encoding="utf-8-sig")
    for output in (written, result.stderr, result.stdout):
        assert WELL_KNOWN not in output
        assert OLD not in output
    assert f'1,uscc,"{MASKED} 是公民身份号码，不是统一社会信用代码' in written
    assert f"'{MASKED}'" in written  # the unknown list type, quoted
    assert f"'{OLD_MASKED}'" in written  # the date that is not one
    assert f"row 1: uscc: {MASKED} 是公民身份号码" in result.stderr


def test_an_import_through_a_mapping_reports_old_numbers_masked(
    tmp_path: Path, seeded: Seeded
) -> None:
    """失信被执行人 exports carry 身份证号码/组织机构代码: a person's 15-digit number is
    reported (it is not a USCC) masked."""
    source = tmp_path / "失信被执行人.csv"
    source.write_text(
        "被执行人姓名/名称,身份证号码/组织机构代码,执行法院,案号,发布时间,失信被执行人行为具体情形,"
        "执行依据文号\n"
        f"王五,{OLD},北京市第一中级人民法院,(2026)京01执10号,2026-03-01,有履行能力而拒不履行,"
        "(2025)京01民初1号\n"
        f"赵六,{WELL_KNOWN},北京市第一中级人民法院,(2026)京01执11号,2026-03-01,虚假诉讼,"
        "(2025)京01民初2号\n",
        encoding="utf-8",
    )
    report = tmp_path / "rejected.csv"
    result = run_gateway(
        seeded.path,
        "import",
        str(source),
        "--mapping",
        "court_defaulter",
        "--report",
        str(report),
    )
    assert result.returncode == 1, result.stderr
    written = report.read_text(encoding="utf-8-sig")
    for output in (written, result.stderr):
        assert WELL_KNOWN not in output
        assert OLD not in output
    assert f"'{OLD_MASKED}' is a 15-digit registration number" in written
    assert f"{MASKED} 是公民身份号码" in written


# --- the feed puller ----------------------------------------------------------------------------


def test_upstream_errors_quote_the_answer_masked() -> None:
    answer = httpx.Response(400, text=f'{{"error": "bad item", "id": "{WELL_KNOWN}"}}')
    assert MASKED in upstream._snippet(answer)
    assert WELL_KNOWN not in upstream._snippet(answer)
    cut = httpx.Response(500, text="x" * 195 + WELL_KNOWN)  # the cut falls inside it
    assert "1101051949" not in upstream._snippet(cut)
    error = upstream.UpstreamError(f"'next_cursor' must be a string, not {WELL_KNOWN!r}")
    assert WELL_KNOWN not in str(error)


# --- doctests -----------------------------------------------------------------------------------


def test_doctests() -> None:
    result = doctest.testmod(privacy)
    assert result.attempted > 0
    assert result.failed == 0
