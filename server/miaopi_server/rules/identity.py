"""Validators for the identity numbers a window clerk keys in.

Every parser accepts any ``str`` and raises only :class:`IdentityError`, whose
message is a plain Chinese sentence the clerk can read back to the applicant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "CreditCode",
    "IdentityError",
    "ResidentId",
    "age_on",
    "check_region_code",
    "credit_code_check_char",
    "parse_credit_code",
    "parse_resident_id",
    "resident_id_check_char",
]

# Explicit alphabet: str.isdigit() also accepts fullwidth '４', Arabic-Indic '٤', '²'...
_DIGITS = "0123456789"

# GB 11643-1999 / ISO 7064 MOD 11-2.
_RID_CHECK = "10X98765432"
_MIN_BIRTH_YEAR = 1850

# GB 32100-2015: 31 symbols; I, O, Z, S, V are left out because they read like 1, 0, 2, 5, U.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# GB/T 2260 province-level prefixes (71 Taiwan, 81 Hong Kong, 82 Macao included).
_PROVINCES = frozenset(
    (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
    )
)


class IdentityError(ValueError):
    """A number the clerk typed is not acceptable; str(err) is shown to them as is."""


@dataclass(frozen=True)
class ResidentId:
    number: str
    region: str
    birth_date: date
    male: bool


@dataclass(frozen=True)
class CreditCode:
    code: str
    kind: str
    checksum_ok: bool


def _show(ch: str) -> str:
    # Whitespace, control chars and lone surrogates would be invisible or garbled on screen.
    if ch.isprintable() and not ch.isspace():
        return f"“{ch}”"
    return f"U+{ord(ch):04X}"


_RID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # the common, well-formed case: skip the scans
_RID_BODY = re.compile(r"[0-9]{17}")
_USCC_SHAPE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{18}")


def _first_not_in(value: str, alphabet: str | dict[str, int]) -> int | None:
    return next((i for i, ch in enumerate(value) if ch not in alphabet), None)


def resident_id_check_char(first17: str) -> str:
    """Check character (0-9 or X) for the first 17 digits of a resident ID number."""
    if len(first17) != 17:
        raise IdentityError("公民身份号码本体码应为17位数字")
    bad = None if _RID_BODY.fullmatch(first17) else _first_not_in(first17, _DIGITS)
    if bad is not None:
        raise IdentityError(f"公民身份号码第{bad + 1}位{_show(first17[bad])}不是数字")
    # The weights are 2^(17-i) mod 11 and 13 = 2 (mod 11), so the weighted sum is twice the
    # digits read in base 13, mod 11: one int() instead of a loop over 17 digits (the loop
    # was a third of validating a valid senior-allowance case). Only ASCII digits reach here.
    return _RID_CHECK[int(first17, 13) * 2 % 11]


def parse_resident_id(value: str, as_of: date) -> ResidentId:
    """Validate an 18-character resident ID number and decode its fields."""
    if len(value) != 18:
        raise IdentityError(f"公民身份号码应为18位，实际为{len(value)}位")
    body, check = value[:17], value[17]
    if not _RID_SHAPE.fullmatch(value):
        bad = _first_not_in(body, _DIGITS)
        if bad is not None:
            raise IdentityError(f"公民身份号码第{bad + 1}位{_show(body[bad])}不是数字")
        if check == "x":
            # The standard prints X in upper case; a lowercase x breaks exact-match lookups.
            raise IdentityError("公民身份号码末位校验码请使用大写字母X")
        raise IdentityError(f"公民身份号码第18位{_show(check)}应为数字或大写字母X")
    try:
        birth = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        raise IdentityError(f"公民身份号码中的出生日期{body[6:14]}不是有效日期") from None
    if birth.year < _MIN_BIRTH_YEAR:
        raise IdentityError(f"公民身份号码中的出生年份{birth.year}早于{_MIN_BIRTH_YEAR}年")
    if birth > as_of:
        raise IdentityError(f"公民身份号码中的出生日期{body[6:14]}晚于当前日期")
    if resident_id_check_char(body) != check:
        raise IdentityError("公民身份号码校验位不符，请核对号码是否录入有误")
    return ResidentId(
        number=value,
        region=body[:6],
        birth_date=birth,
        male=int(body[16]) % 2 == 1,  # last digit of the sequence code: odd for men
    )


def age_on(birth: date, as_of: date) -> int:
    """Completed years (周岁) on as_of; the birthday itself counts.

    Comparing (month, day) tuples makes a 29 Feb birthday fall due on 1 March in
    common years and on 29 Feb in leap years, with no special case.
    """
    if as_of < birth:
        raise ValueError("as_of is before the birth date")
    before_birthday = (as_of.month, as_of.day) < (birth.month, birth.day)
    return as_of.year - birth.year - before_birthday


def credit_code_check_char(first17: str) -> str:
    """Check character for the first 17 characters of a unified social credit code."""
    if len(first17) != 17:
        raise IdentityError("统一社会信用代码本体码应为17位")
    _check_uscc_chars(first17)
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _check_uscc_chars(value: str) -> None:
    bad = _first_not_in(value, _USCC_VALUE)
    if bad is not None:
        raise IdentityError(
            f"统一社会信用代码第{bad + 1}位{_show(value[bad])}不是允许的字符"
            "（只能是数字和除I、O、Z、S、V以外的大写字母）"
        )


def parse_credit_code(value: str) -> CreditCode:
    """Validate the format of an 18-character unified social credit code.

    A wrong check character is reported via checksum_ok, not raised: some codes
    issued during the 2015 pilot do not satisfy it and are still legally valid.
    """
    if len(value) != 18:
        raise IdentityError(f"统一社会信用代码应为18位，实际为{len(value)}位")
    if not _USCC_SHAPE.fullmatch(value):
        _check_uscc_chars(value)
    return CreditCode(
        code=value,
        kind=value[:2],  # registration authority + organisation category
        checksum_ok=credit_code_check_char(value[:17]) == value[17],
    )


def check_region_code(value: str) -> None:
    """Raise unless value is a 6-digit GB/T 2260 code with a known province prefix."""
    if len(value) != 6 or _first_not_in(value, _DIGITS) is not None:
        raise IdentityError("行政区划代码应为6位数字")
    if int(value[:2]) not in _PROVINCES:
        raise IdentityError(f"行政区划代码{value}的前两位{value[:2]}不是有效的省级代码")
