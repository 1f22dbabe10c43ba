"""公民身份号码 citizen ID number, GB 11643-1999.

18 characters:

* positions 1-6: 常住户口所在县（市、旗、区）行政区划代码 address code (GB/T 2260),
* positions 7-14: 出生日期 birth date, ``YYYYMMDD``,
* positions 15-17: 顺序码 sequence code,
* position 18: 校验码 check digit (ISO 7064 MOD 11-2), ``0-9`` or ``X``.

The number is personal data: log or return only :func:`mask` of it. Error
messages name positions but never repeat a character that the mask hides, nor
the expected check digit (which is derived from the hidden digits; and a
mismatch more often means a typo elsewhere than a wrong last character).

>>> validate('11010519491231002X')
'11010519491231002X'
>>> validate('110105 19491231 002x')
'11010519491231002X'
>>> mask('11010519491231002X')
'110105********002X'
>>> validate('110105194912310021')  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
gateway.identifiers.errors.InvalidCitizenID: 第18位校验码与前17位不符 (check digit ...)
>>> try:
...     validate('110105194902300021')
... except InvalidCitizenID as err:
...     print(err.rule, err.position)
birth_date 13
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from gateway.identifiers import uscc
from gateway.identifiers.errors import InvalidCitizenID as InvalidCitizenID  # re-exported
from gateway.identifiers.uscc import normalize as _normalize

#: Rule names, in the order they are checked; the first failing one is reported.
RULES: Final = ("length", "charset", "region", "birth_date", "check_digit")

#: Positions 1-2: GB/T 2260 province-level codes (the USCC's ``10`` is not one).
PROVINCE_PREFIXES: Final = uscc.PROVINCE_PREFIXES
#: Weights of positions p = 1-17: 2^(18-p) mod 11.
WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: Check symbols indexed by (12 - Σ mod 11) mod 11.
CHECK_SYMBOLS: Final = "0123456789X"
#: Earliest birth year accepted (as the 4 characters of positions 7-10).
MIN_YEAR: Final = "1900"
#: Month (positions 11-12) → last day in a common year (positions 13-14).
# fmt: off
LAST_DAY: Final[Mapping[str, str]] = {
    "01": "31", "02": "28", "03": "31", "04": "30", "05": "31", "06": "30",
    "07": "31", "08": "31", "09": "30", "10": "31", "11": "30", "12": "31",
}
# fmt: on

#: Message templates, keyed by rule (``rule/variant`` where a rule has several).
#: They may use only what :func:`mask` shows (positions 1-6 and 15-18) and lengths.
MESSAGES: Final[Mapping[str, str]] = {
    "length": "公民身份号码应为18位，实为{length}位"
    " (a citizen ID number has 18 characters, found {length})",
    "charset/digit": "第{position}位应为数字 (position {position} should be a digit)",
    "charset/check": "第18位应为数字或 X (position 18 should be a digit or X)",
    "region": "第1-2位省级行政区划代码 {found} 无效"
    " (province code {found} at positions 1-2 is not a GB/T 2260 province-level code)",
    "birth_date/year": "第7-10位出生年份早于{min_year}年"
    " (birth year at positions 7-10 is before {min_year})",
    "birth_date/month": "第11-12位出生月份应为01-12"
    " (birth month at positions 11-12 should be 01-12)",
    "birth_date/day": "第13-14位出生日期在该月中不存在"
    " (birth day at positions 13-14 does not exist in that month)",
    "check_digit": "第18位校验码与前17位不符"
    " (check digit at position 18 does not match the first 17 digits)",
}

_DIGITS: Final = frozenset("0123456789")
#: Every valid ``MMDD`` of positions 11-14 (``0229`` needs a leap year besides).
_MONTH_DAYS: Final = frozenset(
    month + f"{day:02d}"
    for month, last in LAST_DAY.items()
    for day in range(1, int(last) + 2)
    if day <= int(last) or month == "02"
)


def normalize(number: str) -> str:
    """Remove spaces and hyphens, map full-width letters and digits to ASCII, upper-case.

    >>> normalize('１１０１０５ 19491231-002x')
    '11010519491231002X'
    """
    return _normalize(number)


#: Shorter than this, a masked number shows nothing of itself.
MIN_SHOWN = 15


def mask(number: str) -> str:
    """Return the first 6 and last 4 characters with ``********`` between; never raises.

    Safe in error paths: any string is accepted (normalised first); one shorter than
    15 characters (the old 15-digit format) is masked entirely, so that a fragment
    never shows most of itself.

    >>> mask('110105 19491231 002x'), mask('1101051949123100'), mask('1101051949')
    ('110105********002X', '110105********3100', '**********')
    """
    number = normalize(number)
    if len(number) < MIN_SHOWN:
        return "*" * len(number)
    return f"{number[:6]}********{number[-4:]}"


def _check_digit(number: str) -> str:
    # Hot path, int() in C instead of a Python loop: WEIGHTS[i] = 2·2^(16-i) mod 11 and
    # 13 ≡ 2 (mod 11), so the first 17 digits read as a base-13 number give Σ/2 mod 11.
    return CHECK_SYMBOLS[(12 - 2 * int(number[:17], 13) % 11) % 11]


def calc_check_digit(first17: str) -> str:
    """Return the check digit (position 18) for the first 17 digits.

    >>> calc_check_digit('11010519491231002')
    'X'
    """
    if len(first17) != 17 or not _DIGITS.issuperset(first17):
        raise ValueError(f"need 17 digits, got {len(first17)} characters")
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_SYMBOLS[(12 - total % 11) % 11]


def _fail(key: str, position: int | None, **fields: object) -> InvalidCitizenID:
    message = MESSAGES[key].format(position=position, **fields)
    return InvalidCitizenID(key.partition("/")[0], message, position)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _first_failure(number: str) -> InvalidCitizenID:
    """Diagnose a number that failed one of the combined checks of :func:`validate`."""
    if len(number) != 18:
        return _fail("length", None, length=len(number))
    for pos, char in enumerate(number[:17], 1):
        if char not in _DIGITS:
            return _fail("charset/digit", pos)
    if number[17] not in CHECK_SYMBOLS:
        return _fail("charset/check", 18)
    if number[:2] not in PROVINCE_PREFIXES:
        return _fail("region", 1, found=number[:2])
    if number[6:10] < MIN_YEAR:
        return _fail("birth_date/year", 7, min_year=MIN_YEAR)
    if number[10:12] not in LAST_DAY:
        return _fail("birth_date/month", 11)
    return _fail("birth_date/day", 13)


def validate(number: str) -> str:
    """Return the normalised number, or raise :class:`InvalidCitizenID` naming the failed rule."""
    number = _normalize(number)
    if (
        len(number) != 18
        or not number.isascii()
        or not number[:17].isdigit()
        or number[17] not in CHECK_SYMBOLS
        or number[:2] not in PROVINCE_PREFIXES
        or number[6:10] < MIN_YEAR
        or number[10:14] not in _MONTH_DAYS
        or (number[10:14] == "0229" and not _is_leap(int(number[6:10])))
    ):
        raise _first_failure(number)
    if number[17] != _check_digit(number):
        raise _fail("check_digit", 18)
    return number


def is_valid(number: str) -> bool:
    """Return whether ``number`` is a valid citizen ID number (see :func:`validate`)."""
    try:
        validate(number)
    except InvalidCitizenID:
        return False
    return True


def is_valid_old(number: str) -> bool:
    """Return whether ``number`` is a valid 15-digit number of the first generation.

    GB 11643-1989: positions 1-6 address code, 7-12 birth date ``YYMMDD`` in 19YY,
    13-15 sequence code, and no check digit; so this checks the province and the date,
    which also many 15-digit registration numbers (注册号) pass. Such numbers were
    replaced by the 18-character ones; they remain in old records. The gateway never
    accepts one as an identifier: only :mod:`gateway.privacy` looks for them, to mask them.

    >>> is_valid_old('110105491231002'), is_valid_old('110105490229002')
    (True, False)
    """
    number = normalize(number)
    if len(number) != 15 or not number.isascii() or not number.isdigit():
        return False
    first17 = f"{number[:6]}19{number[6:]}"
    return is_valid(first17 + _check_digit(first17))
