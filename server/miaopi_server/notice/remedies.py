"""The remedies notice printed on a refusal (行政许可法 Art. 38: a refusal states the right to
administrative review or litigation).

A decision recorded since remedies were configured carries `remedies.notice`, the text the
applicant was told: the notice prints exactly that. An older refusal has none; its notice says
the same thing with the bodies left general, in the words of rules/remedies.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miaopi_server.rules.model import RemedyBodies
from miaopi_server.rules.remedies import remedies_notice as notice_for


def remedies_notice(decision: Mapping[str, Any]) -> str:
    """The sentence telling the applicant how to challenge the decision."""
    given = decision.get("remedies")
    remedies: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    recorded = _text(remedies.get("notice"))
    if recorded:
        return recorded
    bodies = RemedyBodies(_text(remedies.get("review_body")), _text(remedies.get("court")))
    return notice_for(bodies).notice


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
