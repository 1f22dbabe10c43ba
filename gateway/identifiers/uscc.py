"""统一社会信用代码 USCC (Unified Social Credit Code), GB 32100-2015.

18 characters from ``0-9`` and ``A-Z`` without I, O, Z, S, V:

* position 1: 登记管理部门代码 registration authority (``1-9``, ``A``, ``N``, ``Y``),
* position 2: 机构类别代码 entity category, allowed per authority,
* positions 3-8: 登记管理机关行政区划码 region (GB/T 2260, or ``10`` national level),
* positions 9-17: 主体标识码 organisation code (GB 11714), its check digit at 17,
* position 18: 校验码 check digit (mod 31).

Unlike ``stdnum.cn.uscc``, codes from authorities ``A``, ``N`` and ``Y`` are
accepted and the embedded GB 11714 check digit is verified.

>>> validate('91310115MA1K3BTP2B')
'91310115MA1K3BTP2B'
>>> validate('9131 0115-ma1k3btp－２ｂ')
'91310115MA1K3BTP2B'
>>> validate('N2110108MA0000007F')
'N2110108MA0000007F'
>>> validate('91310115MA1K3BTP2C')  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
gateway.identifiers.errors.InvalidUSCC: 第18位校验码应为 B，实为 C (check digit at position 18 ...)
>>> try:
...     validate('91310115MA1K3OTP2B')
... except InvalidUSCC as err:
...     print(err.rule, err.position)
charset 14
>>> is_valid('91310115MA1K3BTP3B')
False
>>> try:  # a person's citizen ID number: said so, masked
...     validate('11010519491231002X')
... except InvalidUSCC as err:
...     print(err.rule, err.message.partition(" (")[0])
region 110105********002X 是公民身份号码，不是统一社会信用代码
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Final

from gateway.identifiers.errors import InvalidUSCC as InvalidUSCC  # re-exported

# fmt: off
#: Rule names, in the order they are checked; the first failing one is reported.
RULES: Final = ("length", "charset", "authority_code", "category_code", "region",
                "organisation_code_check_digit", "check_digit")

#: The 31 symbols, in value order (``0`` = 0 … ``Y`` = 30).
ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Weights of positions 1-17 for the check digit (3^(i-1) mod 31).
WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

#: 登记管理部门代码 → the 机构类别代码 allowed with it (each value lists characters).
AUTHORITY_CATEGORIES: Final[Mapping[str, str]] = {
    "1": "1239", "2": "19", "3": "123459", "4": "19", "5": "1239", "6": "129",
    "7": "129", "8": "19", "9": "123", "A": "19", "N": "1239", "Y": "1",
}
#: GB/T 2260 province-level codes (positions 1-2 of a region code); also used for citizen IDs.
PROVINCE_PREFIXES: Final = frozenset((
    "11", "12", "13", "14", "15",  "21", "22", "23",
    "31", "32", "33", "34", "35", "36", "37",  "41", "42", "43", "44", "45", "46",
    "50", "51", "52", "53", "54",  "61", "62", "63", "64", "65",  "71",  "81", "82",
))
# fmt: on
#: Positions 3-4 of a USCC: a province, or ``10`` for national-level registrations.
REGION_PREFIXES: Final = PROVINCE_PREFIXES | {"10"}

#: GB 11714 (organisation code): values 0-9, A-Z = 10-35, weights, and result symbols.
_BASE36_DIGITS: Final = string.digits + string.ascii_uppercase
ORG_VALUES: Final = {c: i for i, c in enumerate(_BASE36_DIGITS)}
ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
ORG_SYMBOLS: Final = "0123456789X0"  # indexed by C = 11 - (Σ mod 11), 1..11

#: Characters removed by :func:`normalize`: spaces and hyphens, ASCII and others.
SEPARATORS: Final = " \t\r\n\u00a0\u3000-\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d"

#: Message templates, keyed by rule (``rule/variant`` where a rule has several).
MESSAGES: Final[Mapping[str, str]] = {
    "length": "统一社会信用代码应为18位，实为{length}位"
    " (a unified social credit code has 18 characters, found {length})",
    "charset": "第{position}位字符 {found} 无效，只能是数字或除 I、O、Z、S、V 以外的大写字母"
    " (invalid character {found} at position {position}:"
    " only digits and capital letters other than I, O, Z, S, V are allowed)",
    "authority_code": "第1位登记管理部门代码应为 {expected} 之一，实为 {found}"
    " (registration authority code at position 1 should be one of {expected}, found {found})",
    "category_code": "第2位机构类别代码在登记管理部门代码 {authority} 下"
    "应为 {expected} 之一，实为 {found}"
    " (entity category code at position 2 should be one of {expected}"
    " for registration authority {authority}, found {found})",
    "region/digit": "第{position}位应为数字（第3-8位为登记管理机关行政区划码），实为 {found}"
    " (position {position} should be a digit, positions 3-8 being the region code, found {found})",
    "region/province": "第3-4位省级行政区划代码 {found} 无效，"
    "应为 GB/T 2260 省级代码或 10（国家级）"
    " (province code {found} at positions 3-4 is invalid:"
    " expected a GB/T 2260 province-level code or 10 for national level)",
    "organisation_code_check_digit": "第17位组织机构代码校验码应为 {expected}，实为 {found}"
    " (organisation code check digit at position 17 should be {expected}, found {found})",
    "check_digit": "第18位校验码应为 {expected}，实为 {found}"
    " (check digit at position 18 should be {expected}, found {found})",
}
#: Put before the failed rule's message when the code is a citizen ID number (masked).
CITIZEN_ID_HINT: Final = (
    "{masked} 是公民身份号码，不是统一社会信用代码"
    " ({masked} is a citizen ID number, not a unified social credit code)"
)

_CHARSET: Final = frozenset(ALPHABET)
_ALPHABET_BYTES: Final = ALPHABET.encode()
#: Every valid positions 1-4 (authority, category, province), for one lookup on the hot path.
_HEADS: Final = frozenset(
    a + c + r for a, cats in AUTHORITY_CATEGORIES.items() for c in cats for r in REGION_PREFIXES
)
# Hot path: both check digits are computed by int() in C, which reads a string as a
# polynomial in its base. Mod 31: WEIGHTS[i] = 3^i and 34 ≡ 3, so the first 17 values,
# written as base-34 digits (value v → v-th of 0-9A-U) in reverse, give Σ mod 31.
# GB 11714: ORG_WEIGHTS[i] = 3·6^i mod 11 and 35 ≡ 2 = 6⁻¹, so int(eight, 35) ≡ 7·Σ/3,
# i.e. Σ ≡ 2·int(eight, 35) (mod 11); base 35 lacks Z, which the USCC charset excludes.
# calc_check_digit and calc_organisation_check_digit keep the plain weighted sums.
_TO_BASE34: Final = bytes.maketrans(_ALPHABET_BYTES, _BASE36_DIGITS[:31].encode())


def _normalize_table() -> dict[int, int | None]:
    table: dict[int, int | None] = {ord(c): None for c in SEPARATORS}
    for c in string.ascii_lowercase:
        table[ord(c)] = table[ord(c) + 0xFEE0] = ord(c.upper())  # a, ａ → A
    for c in _BASE36_DIGITS:
        table[ord(c) + 0xFEE0] = ord(c)  # ９, Ｆ → 9, F
    return table


_NORMALIZE: Final = _normalize_table()


def normalize(code: str) -> str:
    """Remove spaces and hyphens, map full-width letters and digits to ASCII, upper-case.

    >>> normalize(' 9131 0115-ma1k3btp\u30002b ')
    '91310115MA1K3BTP2B'
    >>> normalize('９１３１０１１５–ＭＡ１Ｋ３ＢＴＰ２Ｂ')
    '91310115MA1K3BTP2B'
    """
    if code.isascii() and code.isalnum():
        return code.upper()
    return code.translate(_NORMALIZE)


def _check_digit(code: str) -> str:
    return ALPHABET[-int(code[16::-1].encode().translate(_TO_BASE34), 34) % 31]


def _org_check_digit(eight: str) -> str:
    return ORG_SYMBOLS[11 - 2 * int(eight, 35) % 11]


def calc_check_digit(first17: str) -> str:
    """Return the check digit (position 18) for the first 17 characters of a USCC.

    >>> calc_check_digit('91110000600037341')
    'L'
    """
    if len(first17) != 17 or not _CHARSET.issuperset(first17):
        raise ValueError(f"need 17 characters from {ALPHABET}, got {len(first17)}")
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def calc_organisation_check_digit(eight: str) -> str:
    """Return the GB 11714 check digit (USCC position 17) for an 8-character organisation code.

    >>> calc_organisation_check_digit('71526726'), calc_organisation_check_digit('L0151012')
    ('X', '8')
    """
    if len(eight) != 8 or not all(c in ORG_VALUES for c in eight):
        raise ValueError(f"need 8 characters from 0-9 and A-Z, got {len(eight)}")
    total = sum(ORG_VALUES[c] * w for c, w in zip(eight, ORG_WEIGHTS, strict=True))
    return ORG_SYMBOLS[11 - total % 11]


def _show(char: str) -> str:
    return char if char.isprintable() else f"U+{ord(char):04X}"


def _fail(key: str, position: int | None, **fields: object) -> InvalidUSCC:
    message = MESSAGES[key].format(position=position, **fields)
    return InvalidUSCC(key.partition("/")[0], message, position)


def _first_failure(code: str) -> InvalidUSCC:
    """Diagnose a code that failed one of the combined format checks of :func:`validate`."""
    if len(code) != 18:
        return _fail("length", None, length=len(code))
    for pos, char in enumerate(code, 1):
        if char not in _CHARSET:
            return _fail("charset", pos, found=_show(char))
    allowed = AUTHORITY_CATEGORIES.get(code[0])
    if allowed is None:
        return _fail("authority_code", 1, expected=" ".join(AUTHORITY_CATEGORIES), found=code[0])
    if code[1] not in allowed:
        expected = " ".join(allowed)
        return _fail("category_code", 2, authority=code[0], expected=expected, found=code[1])
    for pos, char in enumerate(code[2:8], 3):
        if not char.isdigit():
            return _fail("region/digit", pos, found=char)
    return _fail("region/province", 3, found=code[2:4])


def _person(code: str, failure: InvalidUSCC) -> InvalidUSCC:
    """``failure``, or if ``code`` is a citizen ID number (a person's, typed where an
    organisation's code belongs) the same failure saying so, the number masked."""
    from gateway.identifiers import citizen_id  # it imports this module

    if len(code) != 18 or not citizen_id.is_valid(code):
        return failure
    hint = CITIZEN_ID_HINT.format(masked=citizen_id.mask(code))
    return InvalidUSCC(failure.rule, f"{hint}: {failure.message}", failure.position)


def validate(code: str) -> str:
    """Return the normalised code, or raise :class:`InvalidUSCC` naming the first failed rule."""
    code = normalize(code)
    if (
        len(code) != 18
        or not code.isascii()
        or code.encode().translate(None, _ALPHABET_BYTES)  # characters outside ALPHABET
        or code[:4] not in _HEADS
        or not code[4:8].isdigit()
    ):
        raise _person(code, _first_failure(code))
    expected = _org_check_digit(code[8:16])
    if code[16] != expected:
        failure = _fail("organisation_code_check_digit", 17, expected=expected, found=code[16])
        raise _person(code, failure)
    expected = _check_digit(code)
    if code[17] != expected:
        raise _person(code, _fail("check_digit", 18, expected=expected, found=code[17]))
    return code


def is_valid(code: str) -> bool:
    """Return whether ``code`` is a valid USCC (see :func:`validate`)."""
    try:
        validate(code)
    except InvalidUSCC:
        return False
    return True
