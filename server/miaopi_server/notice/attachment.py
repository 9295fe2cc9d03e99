"""Reading a notice PDF back: the decision attached to it, and whether the printed page shows
that decision. `miaopi verify-receipt notice.pdf` checks the attachment's receipt; the page is
bound to it by the decision id, record hash and title printed on it (and in its QR code)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pypdf
from pypdf.errors import PdfReadError

from miaopi_server.notice.content import ATTACHMENT_NAME, NoticeInputError, notice_of

PDF_MAGIC = b"%PDF-"


class NoticeFileError(ValueError):
    """The file is not a notice PDF with one attached decision."""


def is_pdf(data: bytes) -> bool:
    return data.lstrip()[:5] == PDF_MAGIC


def notice_attachment(pdf: bytes) -> bytes:
    """The bytes of the decision attached to a notice PDF."""
    try:
        found = pypdf.PdfReader(io.BytesIO(pdf)).attachments.get(ATTACHMENT_NAME)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise NoticeFileError(f"not a readable PDF: {exc}") from None
    if not found:
        raise NoticeFileError(f"no decision attached (the notice embeds {ATTACHMENT_NAME})")
    if len(found) != 1:  # two attachments of one name: a reader could take either
        raise NoticeFileError(f"{len(found)} attachments named {ATTACHMENT_NAME}: ambiguous")
    return bytes(found[0])


def printed_text(pdf: bytes) -> str:
    """Every page's text, without whitespace (lines wrap anywhere in Chinese text)."""
    try:
        pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
        return "".join("".join((page.extract_text() or "").split()) for page in pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise NoticeFileError(f"not a readable PDF: {exc}") from None


def sealed_summary(saved: Any) -> str:
    """What the sealed attachment says, in the words the page should show: the seal covers the
    attachment only, and text can be hidden on a page (white, or invisible render modes), so a
    reader compares the page with this, or prints a trusted copy from the attachment."""
    record = {"decision": saved} if isinstance(saved, Mapping) and "decision_id" in saved else saved
    try:
        n = notice_of(record)
    except NoticeInputError as exc:
        return str(exc)
    return f"{n.title}（{n.outcome_label}），决定编号 {n.decision_id}"


def printed_mismatch(pdf: bytes, saved: Any) -> str:
    """Why the printed page does not show the attached decision ("" when it does): its title,
    decision id and record hash must all be on the page. `saved` is the decision, or a record
    {"decision": ...}, as verify-receipt reads it."""
    record = {"decision": saved} if isinstance(saved, Mapping) and "decision_id" in saved else saved
    try:
        expected = notice_of(record)
    except NoticeInputError as exc:
        return str(exc)
    text = printed_text(pdf)
    for label, value in (
        ("title", expected.title),
        ("decision id", expected.decision_id),
        ("record hash", expected.seal.record_hash),
    ):
        if "".join(value.split()) not in text:
            return f"the printed notice does not show the attached decision's {label} ({value})"
    return ""
