"""The notice as an A4 PDF, with the decision and its receipt attached.

reportlab lays it out: a well-kept pure-Python library whose built-in CID font STSong-Light
(Adobe's Chinese Simplified font, named in the PDF and supplied by the reader: Acrobat's
Asian font pack, fontconfig's CJK fonts via poppler) needs no font file on the server, so the
notice renders on any host the server runs on. The QR code is drawn as vector squares from
segno's matrix, so it stays sharp at any print resolution. pypdf then attaches the decision
and receipt as an embedded file (ATTACHMENT_NAME), which `miaopi verify-receipt notice.pdf`
checks offline.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import pypdf
from reportlab.graphics.shapes import Circle, Drawing, Group, Polygon, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from miaopi_server.notice.content import ATTACHMENT_NAME, Notice, notice_of
from miaopi_server.notice.qr import qr_modules

FONT = "STSong-Light"
SEAL_RED = colors.Color(0.8, 0, 0)
QR_SIZE = 34 * mm
QR_BORDER = 4  # quiet zone, in modules

pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _style(name: str, size: float, **kw: Any) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=FONT, fontSize=size, leading=size * 1.45,
                          wordWrap="CJK", **kw)  # fmt: skip


BODY = _style("body", 11)
SMALL = _style("small", 9)
HASH = _style("hash", 8.5)
HEADING = _style("heading", 12.5, spaceBefore=3 * mm, spaceAfter=0.5 * mm)
AUTHORITY = _style("authority", 14, alignment=TA_CENTER)
TITLE = _style("title", 20, alignment=TA_CENTER, spaceBefore=2 * mm, spaceAfter=2 * mm)
CENTRED = _style("centred", 10, alignment=TA_CENTER)


def render_notice_pdf(record: Mapping[str, Any]) -> bytes:
    """The notice for a recorded decision ({"decision", "case"?, "item"?}) as PDF bytes, the
    decision and receipt attached as ATTACHMENT_NAME."""
    n = notice_of(record)
    laid_out = io.BytesIO()
    doc = SimpleDocTemplate(
        laid_out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{n.title} {n.decision_id}",
        author=n.authority or "秒批",
        subject=n.item_name or n.item_code,
        invariant=True,  # the same record gives the same layout bytes
    )
    doc.build(_story(n))
    return _attach(laid_out.getvalue(), n.attachment)


def _attach(pdf: bytes, attachment: bytes) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.add_attachment(ATTACHMENT_NAME, attachment)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _story(n: Notice) -> list[Flowable]:
    story: list[Flowable] = []
    if n.authority:
        story.append(_p(n.authority, AUTHORITY))
    story += [_p(n.title, TITLE), _p(f"决定编号：{n.decision_id}", CENTRED), Spacer(1, 4 * mm)]
    item = f"{n.item_name}（{n.item_code}）" if n.item_name else n.item_code
    rows = [("申请事项", item), *n.applicant, ("申请日期", n.as_of_date)]
    rows.append(("办理结果", n.outcome_label))
    if n.review_due:
        rows.append(("审核期限", f"{n.review_due} 前作出决定"))
    story += [_table(rows), Spacer(1, 3 * mm), _p(n.summary)]
    if n.reasons:
        story.append(_p("理由及依据", HEADING))
        for i, r in enumerate(n.reasons, 1):
            basis = f"<br/>依据：{escape(r.citation)}" if r.citation else ""
            story.append(Paragraph(f"{i}. {escape(r.message)}{basis}", BODY))
    story += _numbered("需补正的全部材料（一次性告知）", n.missing)
    story += _numbered("容缺后补材料（请在规定期限内补交）", n.pending)
    if n.remedies:
        story += [_p("救济途径", HEADING), _p(n.remedies)]
    story.append(_p("决定记录", HEADING))
    story.append(
        _table(
            [
                ("决定编号", n.decision_id),
                ("决定时间", n.decided_at),
                ("规则版本", n.ruleset_version),
                ("规则摘要", n.ruleset_digest),
                ("记录哈希", n.seal.record_hash),
            ],
            HASH,
        )
    )
    story.append(Spacer(1, 5 * mm))
    story.append(KeepTogether([_sealed(n)]))
    story.append(Spacer(1, 3 * mm))
    story.append(
        _p(
            f"本通知书附有决定及其回执原件（PDF 附件 {ATTACHMENT_NAME}），"
            "可用 miaopi verify-receipt 通知书.pdf 离线核验电子印章。",
            SMALL,
        )
    )
    return story


def _numbered(title: str, names: tuple[str, ...]) -> list[Flowable]:
    if not names:
        return []
    return [_p(title, HEADING), *(_p(f"{i}. {name}") for i, name in enumerate(names, 1))]


def _table(rows: list[tuple[str, str]], value_style: ParagraphStyle = BODY) -> Table:
    data = [[_p(label), _p(value, value_style)] for label, value in rows]
    table = Table(data, colWidths=[40 * mm, 130 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.Color(0.35, 0.35, 0.35)),
                ("BACKGROUND", (0, 0), (0, -1), colors.Color(0.95, 0.95, 0.95)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _sealed(n: Notice) -> Table:
    text = [
        _p("本决定已加盖电子印章（《中华人民共和国电子签名法》第十三条）。", SMALL),
        _p(f"签章密钥：{n.seal.key_id}", SMALL),
        _p(f"签章引用：{n.seal.described}", SMALL),
        _p(f"出具时间：{n.decided_at}", SMALL),
    ]
    table = Table(
        [[qr_drawing(n.qr_payload), seal_drawing(n.authority), text],
         [_p("扫码核验", CENTRED), _p("电子印章", CENTRED), ""]],
        colWidths=[QR_SIZE + 4 * mm, 40 * mm, 86 * mm],
    )  # fmt: skip
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def qr_drawing(payload: str) -> Drawing:
    """The QR code as vector squares, with its quiet zone."""
    rows = qr_modules(payload)
    count = len(rows) + 2 * QR_BORDER
    module = QR_SIZE / count
    drawing = Drawing(QR_SIZE, QR_SIZE)
    drawing.add(Rect(0, 0, QR_SIZE, QR_SIZE, fillColor=colors.white, strokeColor=None))
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                top = QR_SIZE - (y + QR_BORDER + 1) * module
                left = (x + QR_BORDER) * module
                # a hair wider than a module so neighbours leave no seam when rasterised
                drawing.add(Rect(left, top, module * 1.02, module * 1.02,
                                 fillColor=colors.black, strokeColor=None))  # fmt: skip
    return drawing


def seal_drawing(authority: str) -> Drawing:
    """A round red seal: the authority's name along the upper arc, a star in the middle."""
    size, r = 38 * mm, 18 * mm
    c = size / 2
    d = Drawing(size, size)
    d.add(Circle(c, c, r, strokeColor=SEAL_RED, strokeWidth=2.2, fillColor=None))
    star = []
    for k in range(10):
        radius = 6 * mm if k % 2 == 0 else 2.4 * mm
        a = math.pi / 2 + k * math.pi / 5
        star += [c + radius * math.cos(a), c + radius * math.sin(a)]
    d.add(Polygon(star, fillColor=SEAL_RED, strokeColor=None))
    name = authority or "秒批电子印章"
    span = min(220.0, 18.0 * len(name))  # degrees of arc the name takes
    for i, ch in enumerate(name):
        angle = 90 + span / 2 - (span * (i + 0.5) / len(name))
        g = Group(String(0, 0, ch, fontName=FONT, fontSize=8, fillColor=SEAL_RED,
                         textAnchor="middle"))  # fmt: skip
        rad = math.radians(angle)
        g.translate(c + (r - 4.2 * mm) * math.cos(rad), c + (r - 4.2 * mm) * math.sin(rad))
        g.rotate(angle - 90)
        d.add(g)
    d.add(String(c, c - 11 * mm, "电子签章", fontName=FONT, fontSize=8, fillColor=SEAL_RED,
                 textAnchor="middle"))  # fmt: skip
    return d
