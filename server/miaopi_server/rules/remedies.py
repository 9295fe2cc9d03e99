"""The remedies notice a refusal carries (行政许可法 Art. 38: a written refusal states its
reasons and tells the applicant of the right to 行政复议 or 行政诉讼).

The periods are the law's: 60 days to apply for 行政复议 (行政复议法 Art. 20) and 6 months to
bring 行政诉讼 (行政诉讼法 Art. 46), both counted from when the applicant knew of the decision.
The bodies are configuration: the rule file's `remedies:` or its department's default in the
rules directory's `departments/` files (docs/RULES.md). A notice is built once per item, not
per decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from miaopi_server.rules.model import LegalBasis, RemedyBodies

REVIEW_DAYS = 60  # 行政复议法 Art. 20
LITIGATION_MONTHS = 6  # 行政诉讼法 Art. 46
# Said when the rule file names no body (lint reports that as MP360): the rights still stand.
ANY_REVIEW_BODY = "有管辖权的行政复议机关"
ANY_COURT = "有管辖权的人民法院"
BASIS = (
    LegalBasis("licensing_law_38", "中华人民共和国行政许可法", "第三十八条"),
    LegalBasis("administrative_review_law_20", "中华人民共和国行政复议法", "第二十条"),
    LegalBasis("administrative_litigation_law_46", "中华人民共和国行政诉讼法", "第四十六条"),
)


@dataclass(frozen=True)
class Remedies:
    """The notice as a citizen reads it, and its parts as data (a window prints `notice`, or
    composes its own from the bodies and periods)."""

    review_body: str
    review_days: int
    court: str
    litigation_months: int
    notice: str
    basis: tuple[LegalBasis, ...] = BASIS


def remedies_notice(bodies: RemedyBodies) -> Remedies:
    review_body = bodies.review_body or ANY_REVIEW_BODY
    court = bodies.court or ANY_COURT
    notice = (
        f"申请人如不服本决定，可以自知道该决定之日起{REVIEW_DAYS}日内向{review_body}申请行政复议，"
        f"或者自知道该决定之日起{LITIGATION_MONTHS}个月内向{court}提起行政诉讼。"
    )
    return Remedies(bodies.review_body, REVIEW_DAYS, bodies.court, LITIGATION_MONTHS, notice)
