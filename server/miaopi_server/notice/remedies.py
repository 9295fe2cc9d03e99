"""The remedies notice printed on a refusal (行政许可法 Art. 38: a refusal states the right to
administrative review or litigation).

The decision's `remedies` (when the rule set configures them) name the bodies and the time
limits; without them the statutory text is printed with the bodies left general. This is the
one place that reads `remedies`: adapt it here if its shape changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REVIEW_DAYS = 60  # 行政复议法 Art. 20
LITIGATION_MONTHS = 6  # 行政诉讼法 Art. 46


def remedies_notice(decision: Mapping[str, Any]) -> str:
    """The sentence telling the applicant how to challenge the decision."""
    given = decision.get("remedies")
    remedies: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    text = remedies.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    days = _number(remedies.get("review_days"), REVIEW_DAYS)
    months = _number(remedies.get("litigation_months"), LITIGATION_MONTHS)
    review_body = _text(remedies.get("review_body"))
    court = _text(remedies.get("court"))
    to_review = f"向{review_body}" if review_body else "依法"
    to_court = f"向{court}" if court else "依法向人民法院"
    return (
        f"申请人如对本决定不服，可以自知道该决定之日起{days}日内{to_review}申请行政复议，"
        f"或者自知道该决定之日起{months}个月内{to_court}提起行政诉讼。"
    )


def _number(value: Any, default: int) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:  # proto3 JSON int64
        return int(value)
    return default


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
