"""Masking of personal data printed on a notice: a notice leaves the office, so it shows only
enough to recognise the applicant (个人信息保护法 Art. 51; GB/T 35273 de-identification)."""

from __future__ import annotations


def mask_id_number(value: str) -> str:
    """First 6 (region) and last 4 characters of an ID number, the rest as '*'; a value too
    short for that is masked whole."""
    v = "".join(value.split())
    if len(v) < 15:  # not a resident ID (15 or 18 characters): nothing is safe to show
        return "*" * len(v)
    return v[:6] + "*" * (len(v) - 10) + v[-4:]


def mask_name(value: str) -> str:
    """The first character of a name, the rest as '*': 张三 -> 张*, 欧阳娜娜 -> 欧***."""
    v = value.strip()
    if len(v) <= 1:
        return "*" * len(v)
    return v[0] + "*" * (len(v) - 1)
