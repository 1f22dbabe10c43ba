"""公民身份号码 (citizen ID, GB 11643-1999): gateway.identifiers.citizen_id."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric

from gateway import identifiers
from gateway.identifiers import citizen_id
from gateway.identifiers.citizen_id import (
    InvalidCitizenID,
    calc_check_digit,
    mask,
    normalize,
    validate,
)

# No example database: nothing is written into the working tree.
PROPERTY = settings(database=None, deadline=None, max_examples=300)

WELL_KNOWN = "11010519491231002X"  # the standard's published example
CONSTRUCTED = "110101199003071233"  # region 110101, born 1990-03-07, sequence 123


def assert_private(err: InvalidCitizenID, number: str) -> None:
    """The error shows nothing of the number beyond what mask() shows (for 15+ characters)."""
    normalised = normalize(number)
    if len(normalised) < 15:  # too short to be a number; only its length is reported
        return
    for text in (err.message, str(err), repr(err), *map(str, err.args)):
        assert normalised not in text
        assert normalised[6:14] not in text  # the birth date, hidden by the mask


@pytest.mark.parametrize(
    "number",
    [
        WELL_KNOWN,
        CONSTRUCTED,
        "11010120000229123X",  # 29 February of a leap year divisible by 400
        "110101200402291239",  # 29 February 2004
        "44030519850815004X",
    ],
)
def test_valid_numbers(number: str) -> None:
    assert calc_check_digit(number[:17]) == number[17]
    assert validate(number) == number
    assert citizen_id.is_valid(number)
    assert identifiers.validate_citizen_id(number) == number


def test_constructed_example() -> None:
    assert calc_check_digit("11010119900307123") == "3"
    assert calc_check_digit("11010519491231002") == "X"


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002x",
        " 110105 19491231 002X ",
        "110105-19491231-002X",
        "110105\u300019491231\u3000002X",
        "１１０１０５１９４９１２３１００２ｘ",
    ],
)
def test_normalisation(raw: str) -> None:
    assert normalize(raw) == WELL_KNOWN
    assert validate(raw) == WELL_KNOWN


@pytest.mark.parametrize(
    ("number", "rule", "position", "fragment"),
    [
        ("11010519491231002", "length", None, "实为17位"),
        ("11010519491231002X1", "length", None, "实为19位"),
        ("110105194912A1002X", "charset", 13, "第13位应为数字"),
        ("11010519491231002Y", "charset", 18, "第18位应为数字或 X"),
        ("X1010519491231002X", "charset", 1, "第1位应为数字"),
        ("99010519491231002X", "region", 1, "代码 99 无效"),
        ("10000019491231002X", "region", 1, "代码 10 无效"),  # 10 is USCC-only
        ("00010519491231002X", "region", 1, "代码 00 无效"),
        ("11010518991231002X", "birth_date", 7, "早于1900年"),
        ("11010519491331002X", "birth_date", 11, "月份应为01-12"),
        ("11010519490031002X", "birth_date", 11, "月份应为01-12"),
        ("11010519491232002X", "birth_date", 13, "不存在"),
        ("11010519491200002X", "birth_date", 13, "不存在"),
        ("11010519490230002X", "birth_date", 13, "不存在"),
        ("11010519490229002X", "birth_date", 13, "不存在"),  # 1949 is not a leap year
        ("11010519000229002X", "birth_date", 13, "不存在"),  # nor is 1900
        ("110105194912310021", "check_digit", 18, "第18位校验码与前17位不符"),
    ],
)
def test_each_rule_fails_with_its_name_and_position(
    number: str, rule: str, position: int | None, fragment: str
) -> None:
    with pytest.raises(InvalidCitizenID) as info:
        validate(number)
    err = info.value
    assert (err.rule, err.position) == (rule, position)
    assert rule in citizen_id.RULES
    assert fragment in err.message
    assert err.__cause__ is None
    assert err.__context__ is None
    assert_private(err, number)
    assert not citizen_id.is_valid(number)


def test_check_digit_message_does_not_reveal_the_expected_digit() -> None:
    with pytest.raises(InvalidCitizenID) as info:
        validate("110105194912310021")
    assert info.value.message == (
        "第18位校验码与前17位不符 (check digit at position 18 does not match the first 17 digits)"
    )


def test_messages_cover_the_rules() -> None:
    assert {key.partition("/")[0] for key in citizen_id.MESSAGES} == set(citizen_id.RULES)
    assert identifiers.CITIZEN_ID_RULES == citizen_id.RULES
    for template in citizen_id.MESSAGES.values():
        # Only the province code (positions 1-2, shown by the mask) may be interpolated.
        assert "{found}" not in template or template.startswith("第1-2位")


def test_exception_is_an_invalid_identifier() -> None:
    with pytest.raises(identifiers.InvalidIdentifier) as info:
        validate("110105194912310021")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, identifiers.InvalidCitizenID)
    assert not isinstance(info.value, identifiers.InvalidUSCC)


# --- masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (WELL_KNOWN, "110105********002X"),
        (" 110105 19491231 002x ", "110105********002X"),
        ("11010519491231002", "110105********1002"),  # invalid: masked all the same
        ("ABCDEFGHIJKLMNO", "ABCDEF********LMNO"),
        ("ABCDEFGHIJ", "**********"),
        ("123456789", "*********"),
        ("", ""),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked
    assert identifiers.mask_citizen_id(raw) == masked


@PROPERTY
@given(st.text(max_size=40))
def test_mask_never_raises_and_hides_the_middle(text: str) -> None:
    masked = mask(text)
    normalised = normalize(text)
    if len(normalised) >= 15:
        assert masked == normalised[:6] + "********" + normalised[-4:]
    else:
        assert masked == "*" * len(normalised)


# --- properties --------------------------------------------------------------------------------


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(sorted(citizen_id.PROVINCE_PREFIXES)))
    region += draw(st.text("0123456789", min_size=4, max_size=4))
    year = draw(st.integers(1900, 9999))
    month = draw(st.integers(1, 12))
    last = int(citizen_id.LAST_DAY[f"{month:02d}"])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    day = draw(st.integers(1, last + (month == 2 and leap)))
    first17 = f"{region}{year:04d}{month:02d}{day:02d}" + draw(
        st.text("0123456789", min_size=3, max_size=3)
    )
    return first17 + calc_check_digit(first17)


@PROPERTY
@given(valid_numbers())
def test_built_numbers_validate(number: str) -> None:
    assert validate(number) == number


@PROPERTY
@given(st.text("0123456789", min_size=17, max_size=17))
def test_check_digit_agrees_with_stdnum(first17: str) -> None:
    assert calc_check_digit(first17) == stdnum_ric.calc_check_digit(first17 + "0")
    assert citizen_id._check_digit(first17) == calc_check_digit(first17)


@PROPERTY
@given(valid_numbers(), st.integers(0, 16), st.integers(1, 9))
def test_any_single_digit_change_is_rejected(number: str, index: int, shift: int) -> None:
    digit = str((int(number[index]) + shift) % 10)
    with pytest.raises(InvalidCitizenID):
        validate(number[:index] + digit + number[index + 1 :])


@PROPERTY
@given(st.text("0123456789X -", min_size=14, max_size=24))
def test_errors_never_reveal_the_number(text: str) -> None:
    if not citizen_id.is_valid(text):
        with pytest.raises(InvalidCitizenID) as info:
            validate(text)
        assert info.value.rule in citizen_id.RULES
        assert_private(info.value, text)


@PROPERTY
@given(st.text(max_size=25))
def test_validate_raises_only_invalid_citizen_id(text: str) -> None:
    if citizen_id.is_valid(text):  # is_valid lets any other exception through
        assert validate(text) == normalize(text)
    else:
        with pytest.raises(InvalidCitizenID) as info:
            validate(text)
        assert info.value.rule in citizen_id.RULES
        assert info.value.message


# --- doctests ----------------------------------------------------------------------------------


def test_doctests() -> None:
    result = doctest.testmod(citizen_id)
    assert result.attempted > 0
    assert result.failed == 0
