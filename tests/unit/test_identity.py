"""Unit tests for miaopi_server.rules.identity."""

from __future__ import annotations

import contextlib
import random
from datetime import date

import pytest

from miaopi_server.rules.identity import (
    CreditCode,
    IdentityError,
    ResidentId,
    age_on,
    check_region_code,
    credit_code_check_char,
    parse_credit_code,
    parse_resident_id,
    resident_id_check_char,
)

AS_OF = date(2026, 5, 1)

# Strings that must only ever produce IdentityError, never another exception.
HOSTILE = [
    "",
    " ",
    "４４０６０５１９４００１０１１２３３",  # fullwidth digits
    "٤٤٠٦٠٥١٩٤٠٠١٠١١٢٣٣",  # Arabic-Indic digits
    "44060519400101123³",  # superscript three: isdigit() is True
    "44060519400101123\x00",
    "4406051940010112\ud8003",  # lone surrogate
    "44060519400101123\n",
    "\t" * 18,
    "身" * 18,
    "x" * 18,
    "X" * 18,
    "0" * 18,
    "9" * 18,
    "440605" * 100,
]


class TestResidentId:
    def test_check_char_is_the_standard_weighted_sum(self):
        """GB 11643 spells the check as a weighted sum; the parser reads the digits in base 13
        instead (same value mod 11). Compared on random and extreme bodies."""
        weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        rng = random.Random(11643)
        bodies = ["0" * 17, "9" * 17] + [
            "".join(rng.choice("0123456789") for _ in range(17)) for _ in range(5000)
        ]
        for body in bodies:
            total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
            assert resident_id_check_char(body) == "10X98765432"[total % 11], body

    @pytest.mark.parametrize(
        ("number", "birth", "male"),
        [
            ("11010519491231002X", date(1949, 12, 31), False),
            ("440605194001011233", date(1940, 1, 1), True),
            ("44060519440301236X", date(1944, 3, 1), False),
            ("440605196402294368", date(1964, 2, 29), False),
        ],
    )
    def test_valid_examples_decode(self, number: str, birth: date, male: bool) -> None:
        """Published example numbers parse into region, birth date and sex."""
        assert parse_resident_id(number, AS_OF) == ResidentId(
            number=number, region=number[:6], birth_date=birth, male=male
        )

    @pytest.mark.parametrize(
        ("number", "fragment"),
        [
            ("", "应为18位"),
            ("44060519400101123", "应为18位"),
            ("4406051940010112334", "应为18位"),
            ("44060519400101123 ", "应为数字或大写字母X"),
            ("4406051940010112A3", "第17位“A”不是数字"),
            ("４40605194001011233", "第1位“４”不是数字"),
            ("4٤0605194001011233", "第2位“٤”不是数字"),
            ("44060519400101123³", "应为数字或大写字母X"),
            ("4406051940 1011233", r"第11位U\+0020不是数字"),
            ("44060519440301236x", "大写字母X"),
            ("440605194902300011", "不是有效日期"),
            ("440605194913010011", "不是有效日期"),
            ("440605194900000011", "不是有效日期"),
            ("440605196502290011", "不是有效日期"),
            ("440605184912310011", "早于1850年"),
            ("440605202605020011", "晚于当前日期"),
            ("440605194001011234", "校验位不符"),
            ("11010519491231002Y", "应为数字或大写字母X"),
        ],
    )
    def test_rejects_with_specific_message(self, number: str, fragment: str) -> None:
        """Each kind of mistake yields its own clerk-readable message."""
        with pytest.raises(IdentityError, match=fragment):
            parse_resident_id(number, AS_OF)

    def test_lowercase_x_message_differs_from_bad_char(self) -> None:
        """A lowercase x gets a distinct hint, not the generic bad-character one."""
        with pytest.raises(IdentityError) as lower:
            parse_resident_id("44060519440301236x", AS_OF)
        with pytest.raises(IdentityError) as other:
            parse_resident_id("44060519440301236Y", AS_OF)
        assert str(lower.value) != str(other.value)

    def test_birth_on_as_of_is_accepted(self) -> None:
        """A child registered on its birth day is not 'born in the future'."""
        prefix = "44060520260501001"
        number = prefix + resident_id_check_char(prefix)
        assert parse_resident_id(number, date(2026, 5, 1)).birth_date == date(2026, 5, 1)
        with pytest.raises(IdentityError, match="晚于当前日期"):
            parse_resident_id(number, date(2026, 4, 30))

    def test_year_1850_is_the_floor(self) -> None:
        """1850-01-01 is the earliest birth date accepted."""
        prefix = "44060518500101001"
        assert parse_resident_id(prefix + resident_id_check_char(prefix), AS_OF)

    @pytest.mark.parametrize(
        ("prefix", "birth"),
        [
            ("110105194912310", date(1949, 12, 31)),
            ("440605196402290", date(1964, 2, 29)),
            ("650102200002290", date(2000, 2, 29)),
            ("820000201001010", date(2010, 1, 1)),
        ],
    )
    def test_every_generated_number_parses(self, prefix: str, birth: date) -> None:
        """All 100 sequence suffixes plus their computed check char parse; odd means male."""
        for seq in range(100):
            first17 = f"{prefix}{seq:02d}"
            number = first17 + resident_id_check_char(first17)
            parsed = parse_resident_id(number, AS_OF)
            assert parsed.birth_date == birth
            assert parsed.male is (seq % 2 == 1)

    def test_every_check_value_is_reachable(self) -> None:
        """Generated numbers cover all 11 check characters, X included."""
        seen = {resident_id_check_char(f"44060519400101{n:03d}") for n in range(1000)}
        assert seen == set("0123456789X")

    @pytest.mark.parametrize(
        ("first17", "check"),
        [("11010519491231002", "X"), ("44060519400101123", "3"), ("44060519640229436", "8")],
    )
    def test_check_char(self, first17: str, check: str) -> None:
        """The MOD 11-2 check character matches the published examples."""
        assert resident_id_check_char(first17) == check

    @pytest.mark.parametrize("first17", ["", "4406051940010112", "4406051940010112A", "١" * 17])
    def test_check_char_rejects_bad_input(self, first17: str) -> None:
        """A wrong-length or non-digit body raises IdentityError."""
        with pytest.raises(IdentityError):
            resident_id_check_char(first17)

    @pytest.mark.parametrize("value", HOSTILE)
    def test_hostile_strings_raise_only_identity_error(self, value: str) -> None:
        """Odd strings are rejected with IdentityError and nothing else."""
        with pytest.raises(IdentityError):
            parse_resident_id(value, AS_OF)

    def test_random_strings_raise_only_identity_error(self) -> None:
        """Random near-miss strings either parse or raise IdentityError."""
        rng = random.Random(11643)
        alphabet = "0123456789Xx ４٤²-"
        for _ in range(2000):
            value = "".join(rng.choice(alphabet) for _ in range(rng.choice((17, 18, 18, 19))))
            with contextlib.suppress(IdentityError):
                parse_resident_id(value, AS_OF)


class TestAgeOn:
    @pytest.mark.parametrize(
        ("birth", "as_of", "age"),
        [
            (date(1956, 11, 20), date(2026, 11, 19), 69),
            (date(1956, 11, 20), date(2026, 11, 20), 70),
            (date(1956, 11, 20), date(2026, 11, 21), 70),
            (date(1956, 11, 20), date(1956, 11, 20), 0),
            (date(1956, 11, 20), date(1957, 11, 19), 0),
            (date(1956, 12, 31), date(2027, 1, 1), 70),
            # 29 Feb births: 1 March in common years, 29 Feb in leap years.
            (date(1964, 2, 29), date(2026, 2, 28), 61),
            (date(1964, 2, 29), date(2026, 3, 1), 62),
            (date(1964, 2, 29), date(2028, 2, 28), 63),
            (date(1964, 2, 29), date(2028, 2, 29), 64),
            (date(1964, 2, 29), date(2028, 3, 1), 64),
        ],
    )
    def test_completed_years(self, birth: date, as_of: date, age: int) -> None:
        """Age is counted in completed years and the birthday itself counts."""
        assert age_on(birth, as_of) == age

    def test_as_of_before_birth_is_an_error(self) -> None:
        """Asking for an age before birth is a programming error."""
        with pytest.raises(ValueError):
            age_on(date(2000, 1, 2), date(2000, 1, 1))


class TestCreditCode:
    @pytest.mark.parametrize("code", ["91350100M000100Y43", "92440605MA00000A0G"])
    def test_valid_examples(self, code: str) -> None:
        """Published example codes parse with a good checksum and their kind prefix."""
        assert parse_credit_code(code) == CreditCode(code=code, kind=code[:2], checksum_ok=True)

    @pytest.mark.parametrize("code", ["91350100M000100Y43", "92440605MA00000A0G"])
    def test_check_char_matches_examples(self, code: str) -> None:
        """The MOD 31 check character reproduces the last character of valid codes."""
        assert credit_code_check_char(code[:17]) == code[17]

    @pytest.mark.parametrize("code", ["91350100M000100Y40", "92440605MA00000A0H"])
    def test_checksum_mismatch_is_not_an_error(self, code: str) -> None:
        """A wrong last character only clears checksum_ok (pilot codes exist)."""
        assert parse_credit_code(code) == CreditCode(code=code, kind=code[:2], checksum_ok=False)

    @pytest.mark.parametrize(
        ("code", "fragment"),
        [
            ("", "应为18位"),
            ("91350100M000100Y4", "应为18位"),
            ("91350100M000100Y430", "应为18位"),
            ("91350100I000100Y43", "第9位“I”"),
            ("91350100M0O0100Y43", "第11位“O”"),
            ("Z1350100M000100Y43", "第1位“Z”"),
            ("91350100M000100S43", "第16位“S”"),
            ("91350100M000100Y4V", "第18位“V”"),
            ("91350100m000100Y43", "第9位“m”"),
            ("92440605ma00000a0g", "第9位“m”"),
            ("９1350100M000100Y43", "第1位“９”"),
            ("91350100M000100Y4 ", r"第18位U\+0020"),
        ],
    )
    def test_rejects_with_position(self, code: str, fragment: str) -> None:
        """Bad length or the first disallowed character (with its position) is reported."""
        with pytest.raises(IdentityError, match=fragment):
            parse_credit_code(code)

    def test_check_char_rejects_bad_input(self) -> None:
        """The generator helper validates its input the same way."""
        for bad in ("", "91350100M000100Y", "91350100I000100Y4"):
            with pytest.raises(IdentityError):
                credit_code_check_char(bad)

    def test_generated_codes_round_trip(self) -> None:
        """Codes completed with credit_code_check_char always have checksum_ok."""
        rng = random.Random(32100)
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        for _ in range(500):
            first17 = "".join(rng.choice(alphabet) for _ in range(17))
            assert parse_credit_code(first17 + credit_code_check_char(first17)).checksum_ok

    @pytest.mark.parametrize("value", HOSTILE)
    def test_hostile_strings_raise_only_identity_error(self, value: str) -> None:
        """Odd strings either parse (e.g. eighteen 9s is well-formed) or raise IdentityError."""
        with contextlib.suppress(IdentityError):
            assert parse_credit_code(value).code == value


class TestRegionCode:
    @pytest.mark.parametrize(
        "code", ["440605", "110105", "150000", "460000", "540000", "650102", "710000", "820000"]
    )
    def test_known_provinces_pass(self, code: str) -> None:
        """Six digits with a province-level prefix are accepted."""
        check_region_code(code)

    @pytest.mark.parametrize(
        "code", ["990000", "000000", "160000", "380000", "470000", "550000", "720000", "830000"]
    )
    def test_unknown_province(self, code: str) -> None:
        """A well-formed code with no such province is rejected as unknown."""
        with pytest.raises(IdentityError, match="省级代码"):
            check_region_code(code)

    @pytest.mark.parametrize(
        "code", ["", "44060", "4406050", "44060a", "４４０６０５", "٤٤٠٦٠٥", "44060 ", "+44060"]
    )
    def test_bad_format(self, code: str) -> None:
        """Anything but exactly six ASCII digits is a format error."""
        with pytest.raises(IdentityError, match="应为6位数字"):
            check_region_code(code)
