"""The notice as one printable A4 HTML page: no script, no external resource, every value
escaped. By default its style sheet is inlined, so a saved file prints as it is; a web page
whose content security policy forbids inline styles passes `stylesheet_href` and serves
NOTICE_CSS itself."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from miaopi_server.notice.content import ATTACHMENT_NAME, Notice, notice_of
from miaopi_server.notice.qr import qr_svg

NOTICE_CSS = """
@page { size: A4; margin: 18mm 20mm; }
body { font-family: "Noto Serif CJK SC", "Source Han Serif SC", "SimSun", "Songti SC", serif;
  color: #000; background: #fff; max-width: 170mm; margin: 0 auto; padding: 8mm 0;
  line-height: 1.7; font-size: 11pt; }
header { text-align: center; }
.authority { font-size: 14pt; letter-spacing: 0.1em; margin: 0; }
h1 { font-size: 20pt; letter-spacing: 0.2em; margin: 2mm 0 4mm; }
.number { font-size: 10pt; margin: 0 0 4mm; }
h2 { font-size: 12pt; margin: 5mm 0 1mm; border-bottom: 1px solid #000; }
table.facts { border-collapse: collapse; width: 100%; }
table.facts th, table.facts td { border: 1px solid #555; padding: 1mm 2mm; text-align: left;
  vertical-align: top; }
table.facts th { width: 32%; font-weight: normal; background: #f3f3f3; }
.hash { font-family: monospace; font-size: 8.5pt; word-break: break-all; }
ol, ul { margin: 1mm 0; padding-left: 7mm; }
.basis { color: #333; }
.remedies { border: 1px solid #000; padding: 2mm 3mm; }
.sealed { display: flex; gap: 8mm; align-items: flex-start; margin-top: 6mm;
  page-break-inside: avoid; break-inside: avoid; }
.sealed figure { margin: 0; text-align: center; font-size: 8.5pt; }
.seal-text { font-size: 9pt; flex: 1; }
footer { margin-top: 5mm; font-size: 8.5pt; color: #333; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; } }
"""


def render_notice_html(record: Mapping[str, Any], stylesheet_href: str | None = None) -> str:
    """The printable notice for a recorded decision ({"decision", "case"?, "item"?})."""
    n = notice_of(record)
    style = (
        f'<link rel="stylesheet" href="{escape(stylesheet_href)}">'
        if stylesheet_href
        else f"<style>{NOTICE_CSS}</style>"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(n.title)} {escape(n.decision_id)}</title>",
        style,
        "</head><body><main>",
        "<header>",
        f'<p class="authority">{escape(n.authority)}</p>' if n.authority else "",
        f"<h1>{escape(n.title)}</h1>",
        f'<p class="number">决定编号：{escape(n.decision_id)}</p>',
        "</header>",
        _facts_table(n),
        f"<p>{escape(n.summary)}</p>",
        _reasons(n),
        _list("需补正的全部材料（一次性告知）", n.missing, "missing"),
        _list("容缺后补材料（请在规定期限内补交）", n.pending, "pending"),
        _remedies(n),
        _record_table(n),
        _sealed(n),
        "<footer>本通知书以 PDF 形式出具时附有决定及其回执原件（附件 ",
        f"{ATTACHMENT_NAME}），",
        "可用 <code>miaopi verify-receipt 通知书.pdf</code> 离线核验电子印章。</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _row(label: str, value: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<tr><th scope="row">{escape(label)}</th><td{attr}>{escape(value)}</td></tr>'


def _facts_table(n: Notice) -> str:
    item = f"{n.item_name}（{n.item_code}）" if n.item_name else n.item_code
    rows = [_row("申请事项", item)]
    rows += [_row(label, value) for label, value in n.applicant]
    rows.append(_row("申请日期", n.as_of_date))
    rows.append(_row("办理结果", n.outcome_label))
    if n.review_due:
        rows.append(_row("审核期限", f"{n.review_due} 前作出决定"))
    return '<table class="facts" aria-label="申请信息">' + "".join(rows) + "</table>"


def _reasons(n: Notice) -> str:
    if not n.reasons:
        return ""
    items = []
    for r in n.reasons:
        basis = f'<br><span class="basis">依据：{escape(r.citation)}</span>' if r.citation else ""
        items.append(f"<li>{escape(r.message)}{basis}</li>")
    return "<section><h2>理由及依据</h2><ol>" + "".join(items) + "</ol></section>"


def _list(title: str, names: tuple[str, ...], cls: str) -> str:
    if not names:
        return ""
    items = "".join(f"<li>{escape(name)}</li>" for name in names)
    return f'<section class="{cls}"><h2>{escape(title)}</h2><ol>{items}</ol></section>'


def _remedies(n: Notice) -> str:
    if not n.remedies:
        return ""
    return f'<section><h2>救济途径</h2><p class="remedies">{escape(n.remedies)}</p></section>'


def _record_table(n: Notice) -> str:
    rows = [
        _row("决定编号", n.decision_id, "hash"),
        _row("决定时间", n.decided_at),
        _row("规则版本", n.ruleset_version),
        _row("规则摘要", n.ruleset_digest, "hash"),
        _row("记录哈希", n.seal.record_hash, "hash"),
    ]
    return (
        '<section><h2>决定记录</h2><table class="facts" aria-label="决定记录">'
        + "".join(rows)
        + "</table></section>"
    )


def _sealed(n: Notice) -> str:
    qr = qr_svg(n.qr_payload, "核验二维码：决定编号、记录哈希、签章引用")
    return (
        '<section class="sealed" aria-label="电子印章与核验二维码">'
        f"<figure>{qr}<figcaption>扫码核验</figcaption></figure>"
        f"<figure>{seal_svg(n.authority)}<figcaption>电子印章</figcaption></figure>"
        '<div class="seal-text">'
        "<p>本决定已加盖电子印章（《中华人民共和国电子签名法》第十三条）。</p>"
        f'<p>签章密钥：<span class="hash">{escape(n.seal.key_id)}</span></p>'
        f'<p>签章引用：<span class="hash">{escape(n.seal.described)}</span></p>'
        f"<p>出具时间：{escape(n.decided_at)}</p></div></section>"
    )


def seal_svg(authority: str) -> str:
    """A round red seal: the authority's name along the upper arc, a star in the middle."""
    name = escape(authority or "秒批电子印章")
    return (
        '<svg width="120" height="120" viewBox="0 0 120 120" role="img" aria-label="电子印章">'
        '<defs><path id="seal-arc" d="M 20 64 A 40 40 0 1 1 100 64"/></defs>'
        '<circle cx="60" cy="60" r="55" fill="none" stroke="#c00" stroke-width="4"/>'
        '<text fill="#c00" font-size="11"><textPath href="#seal-arc" startOffset="50%" '
        f'text-anchor="middle">{name}</textPath></text>'
        '<polygon fill="#c00" points="60,40 65.9,53.8 80.9,55.2 69.5,65.1 72.9,79.8 60,72 '
        '47.1,79.8 50.5,65.1 39.1,55.2 54.1,53.8"/>'
        '<text x="60" y="98" fill="#c00" font-size="10" text-anchor="middle">电子签章</text>'
        "</svg>"
    )
