"""统一社会信用代码 (USCC, GB 32100-2015): gateway.identifiers.uscc."""

from __future__ import annotations

import doctest
import pickle
import re
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import uscc as stdnum_uscc

from gateway import identifiers
from gateway.identifiers import errors, uscc
from gateway.identifiers.uscc import (
    ALPHABET,
    InvalidUSCC,
    calc_check_digit,
    calc_organisation_check_digit,
    normalize,
    validate,
)

# No example database: nothing is written into the working tree.
PROPERTY = settings(database=None, deadline=None, max_examples=300)

#: python-stdnum's published valid vectors (tests/test_cn_uscc.doctest).
STDNUM_VALID = [
    "91110000600037341L",
    "91110000710926094P",
    "91120224064012553U",
    "91310000631696382C",
    "91310115MA1K3BTP2B",
    "9144030071526726XG",
    "91620105L015101280",
    "92340602MA2PBMEM24",
    "913101127033980359",
    "121200004013590816",
]

#: Authorities A, N, Y (and a national-level region 100000), with correct check digits.
LETTER_AUTHORITY_VALID = [
    "N2110108MA0000007F",  # N2 村级集体经济组织
    "N1330110MA2H7X3K7Q",  # N1 农村集体经济组织
    "Y1110108MA0000007A",  # Y1
    "A1110000MA00000076",  # A1
    "A9310115MA0000007P",  # A9
]


def build(head8: str, org8: str) -> str:
    """A code from positions 1-8 and an organisation code, with both check digits."""
    first17 = head8 + org8 + calc_organisation_check_digit(org8)
    return first17 + calc_check_digit(first17)


# --- valid codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", STDNUM_VALID)
def test_stdnum_published_vectors_are_valid(code: str) -> None:
    assert validate(code) == code
    assert uscc.is_valid(code)
    assert identifiers.validate_uscc(code) == code


@pytest.mark.parametrize("code", LETTER_AUTHORITY_VALID)
def test_authorities_a_n_y_are_valid_but_stdnum_rejects_them(code: str) -> None:
    assert build(code[:8], code[8:16]) == code  # the literal has correct check digits
    assert validate(code) == code
    assert not stdnum_uscc.is_valid(code)


def test_national_level_region_10() -> None:
    code = build("12100000", "40135908")
    assert code == "12100000401359081X"
    assert validate(code) == code


def test_gb11714_ten_is_x_and_eleven_is_zero() -> None:
    # The weakness of another public validator: 10 → A and 11 → B; here X and 0.
    assert calc_organisation_check_digit("71526726") == "X"
    assert calc_organisation_check_digit("L0151012") == "8"
    eleven = next(f"{n:08d}" for n in range(10_000) if _org_sum(f"{n:08d}") % 11 == 0)
    assert calc_organisation_check_digit(eleven) == "0"
    with pytest.raises(InvalidUSCC) as info:
        validate("9144030071526726AG")
    assert info.value.rule == "organisation_code_check_digit"
    assert "应为 X" in info.value.message


def test_gb11714_values_use_the_full_latin_alphabet() -> None:
    assert uscc.ORG_VALUES["A"] == 10
    assert uscc.ORG_VALUES["I"] == 18
    assert uscc.ORG_VALUES["O"] == 24
    assert uscc.ORG_VALUES["Z"] == 35
    assert calc_organisation_check_digit("IOZSVIOZ") == _org_reference("IOZSVIOZ")


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "91310115MA1K3BTP2B",
        "91310115ma1k3btp2b",
        " 9131 0115 MA1K 3BTP 2B ",
        "9131-0115-MA1K3BTP-2B",
        "91310115\u3000MA1K3BTP\u30002B",  # ideographic space
        "91310115－MA1K3BTP–2B",  # full-width hyphen, en dash
        "９１３１０１１５ＭＡ１Ｋ３ＢＴＰ２Ｂ",  # full-width letters and digits
        "９１３１０１１５ｍａ１ｋ３ｂｔｐ２ｂ",  # full-width lower case
    ],
)
def test_normalisation(raw: str) -> None:
    assert normalize(raw) == "91310115MA1K3BTP2B"
    assert validate(raw) == "91310115MA1K3BTP2B"


def test_normalisation_does_not_fold_lookalikes() -> None:
    # Circled digits and ligatures are not full-width ASCII: they stay, and fail the charset.
    for raw, char in [("9131011⑤MA1K3BTP2B", "⑤"), ("91310115MA1K3BTP2ﬀ", "ﬀ")]:
        with pytest.raises(InvalidUSCC) as info:
            validate(raw)
        assert info.value.rule == "charset"
        assert char in info.value.message


# --- one failing example per rule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rule", "position", "fragments"),
    [
        ("91310115MA1K3BTP2", "length", None, ["实为17位", "found 17"]),
        ("91310115MA1K3BTP2BB", "length", None, ["实为19位", "found 19"]),
        ("", "length", None, ["实为0位"]),
        ("91310115MA1K3OTP2B", "charset", 14, ["第14位字符 O", "character O at position 14"]),
        ("91310115MA1K3BTP2I", "charset", 18, ["第18位字符 I"]),
        ("9131中115MA1K3BTP2B", "charset", 5, ["第5位字符 中"]),
        ("9131\x00115MA1K3BTP2B", "charset", 5, ["U+0000"]),
        ("B1310115MA1K3BTP2B", "authority_code", 1, ["实为 B", "1 2 3 4 5 6 7 8 9 A N Y"]),
        ("01310115MA1K3BTP2B", "authority_code", 1, ["实为 0"]),
        ("94310115MA1K3BTP2B", "category_code", 2, ["1 2 3 之一，实为 4", "authority 9"]),
        ("Y2110108MA0000007A", "category_code", 2, ["应为 1 之一，实为 2"]),
        ("9131A115MA1K3BTP2B", "region", 5, ["第5位应为数字", "实为 A"]),
        ("91990000600037341L", "region", 3, ["代码 99 无效", "province code 99"]),
        ("91310115MA1K3BTP3B", "organisation_code_check_digit", 17, ["第17位", "应为 2，实为 3"]),
        ("91310115MA1K3BTP2C", "check_digit", 18, ["第18位校验码应为 B，实为 C"]),
    ],
)
def test_each_rule_fails_with_its_name_and_position(
    code: str, rule: str, position: int | None, fragments: list[str]
) -> None:
    with pytest.raises(InvalidUSCC) as info:
        validate(code)
    err = info.value
    assert (err.rule, err.position) == (rule, position)
    assert rule in uscc.RULES
    for fragment in fragments:
        assert fragment in err.message
    assert str(err) == err.message
    assert not uscc.is_valid(code)


def test_check_digit_message_is_exact() -> None:
    with pytest.raises(InvalidUSCC) as info:
        validate("91310115MA1K3BTP2C")
    assert info.value.message == (
        "第18位校验码应为 B，实为 C (check digit at position 18 should be B, found C)"
    )


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("O1310115MA1K3BTP2C", "charset"),  # before authority and check digit
        ("B4310115MA1K3BTP2C", "authority_code"),  # before category
        ("9431A115MA1K3BTP2C", "category_code"),  # before region
        ("9199A115MA1K3BTP2C", "region"),  # before the check digits
        ("91310115MA1K3BTP3C", "organisation_code_check_digit"),  # before check digit
    ],
)
def test_the_first_failing_rule_is_reported(code: str, rule: str) -> None:
    with pytest.raises(InvalidUSCC) as info:
        validate(code)
    assert info.value.rule == rule


def test_exception_shape() -> None:
    with pytest.raises(identifiers.InvalidIdentifier) as info:
        validate("91310115MA1K3BTP2C")
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, identifiers.InvalidUSCC)
    assert err.args == (err.message,)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.rule, copy.message, copy.position) == (
        InvalidUSCC,
        err.rule,
        err.message,
        err.position,
    )


def test_messages_cover_the_rules_and_read_chinese_then_english() -> None:
    assert {key.partition("/")[0] for key in uscc.MESSAGES} == set(uscc.RULES)
    assert identifiers.USCC_RULES == uscc.RULES
    for template in uscc.MESSAGES.values():
        assert re.fullmatch(r"[^(]*[\u4e00-\u9fff][^(]* \([A-Za-z].*\)", template), template


def test_calc_functions_reject_bad_input() -> None:
    for bad in ["9131011", "91310115MA1K3OTP2", "91310115MA1K3BTP2B"]:
        with pytest.raises(ValueError, match="17 characters"):
            calc_check_digit(bad)
    for bad in ["MA1K3BT", "MA1K3BT-", "MA1K3BTPQ"]:
        with pytest.raises(ValueError, match="8 characters"):
            calc_organisation_check_digit(bad)


# --- the hot path's check digits equal the standard's weighted sums ----------------------------


#: The standards' weights, written out here independently of the module's constants.
STANDARD_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
STANDARD_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_sum(eight: str) -> int:
    return sum(uscc.ORG_VALUES[c] * w for c, w in zip(eight, STANDARD_ORG_WEIGHTS, strict=True))


def _org_reference(eight: str) -> str:
    c = 11 - _org_sum(eight) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def test_weights_are_the_standards() -> None:
    # The hot path relies on these forms: 3^i mod 31, and 3·6^i mod 11 (see uscc.py).
    assert uscc.WEIGHTS == STANDARD_WEIGHTS
    assert tuple(pow(3, i, 31) for i in range(17)) == STANDARD_WEIGHTS
    assert uscc.ORG_WEIGHTS == STANDARD_ORG_WEIGHTS
    assert tuple(3 * pow(6, i, 11) % 11 for i in range(8)) == STANDARD_ORG_WEIGHTS


@PROPERTY
@given(st.text(ALPHABET, min_size=17, max_size=17))
def test_fast_check_digit_equals_weighted_sum(first17: str) -> None:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, STANDARD_WEIGHTS, strict=True))
    assert uscc._check_digit(first17) == ALPHABET[(31 - total % 31) % 31]
    assert calc_check_digit(first17) == ALPHABET[(31 - total % 31) % 31]


@PROPERTY
@given(st.text(ALPHABET, min_size=8, max_size=8))
def test_fast_organisation_check_digit_equals_weighted_sum(eight: str) -> None:
    assert uscc._org_check_digit(eight) == _org_reference(eight)
    assert calc_organisation_check_digit(eight) == _org_reference(eight)


# --- properties --------------------------------------------------------------------------------

HEADS = sorted(a + c for a, cats in uscc.AUTHORITY_CATEGORIES.items() for c in cats)


@st.composite
def valid_codes(draw: st.DrawFn, heads: list[str] = HEADS) -> str:
    head = draw(st.sampled_from(heads))
    region = draw(st.sampled_from(sorted(uscc.REGION_PREFIXES))) + draw(
        st.text("0123456789", min_size=4, max_size=4)
    )
    return build(head + region, draw(st.text(ALPHABET, min_size=8, max_size=8)))


@PROPERTY
@given(valid_codes())
def test_built_codes_validate(code: str) -> None:
    assert validate(code) == code
    spaced = f" {code[:8].lower()}-{code[8:]} "
    assert validate(spaced) == code


@PROPERTY
@given(valid_codes(), st.integers(0, 17), st.sampled_from(ALPHABET))
def test_any_single_substitution_is_rejected(code: str, index: int, char: str) -> None:
    if char == code[index]:
        char = ALPHABET[(ALPHABET.index(char) + 1) % len(ALPHABET)]
    mutated = code[:index] + char + code[index + 1 :]
    with pytest.raises(InvalidUSCC):
        validate(mutated)


@PROPERTY
@given(valid_codes(heads=[h for h in HEADS if h.isdigit()]))
def test_codes_with_digit_prefix_are_accepted_by_stdnum(code: str) -> None:
    assert validate(code) == code
    assert code[:8].isdigit()
    assert stdnum_uscc.is_valid(code)


@PROPERTY
@given(st.text(max_size=30))
def test_validate_raises_only_invalid_uscc(text: str) -> None:
    if uscc.is_valid(text):  # is_valid lets any other exception through
        assert validate(text) == normalize(text)
    else:
        with pytest.raises(InvalidUSCC) as info:
            validate(text)
        assert info.value.rule in uscc.RULES
        assert info.value.message


# --- doctests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [uscc, errors, identifiers])
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
