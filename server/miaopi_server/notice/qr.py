"""The notice's QR code (segno: pure Python, no image library needed). It carries the decision
id, the record hash and the seal reference, which is enough to look the record up and check
it; the full receipt (inclusion proof, signature) would not fit and travels in the PDF."""

from __future__ import annotations

import segno


def qr_modules(payload: str) -> list[list[bool]]:
    """The code's dark modules, row by row, without the quiet zone."""
    code = segno.make(payload, error="m", micro=False)
    return [[bool(cell) for cell in row] for row in code.matrix]


def qr_svg(payload: str, title: str) -> str:
    """The code as inline SVG markup (no script, no external reference)."""
    code = segno.make(payload, error="m", micro=False)
    svg: str = code.svg_inline(scale=3, border=4, title=title, dark="#000", light="#fff")
    return svg
