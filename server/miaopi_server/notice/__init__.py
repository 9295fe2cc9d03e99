"""The printable decision notice (受理通知书 / 不予批准决定书 / 一次性告知书 / 准予批准通知书):
presentation of a recorded decision for the applicant, as an A4 HTML page and a PDF that
carries the decision and its receipt, with an e-seal block and a QR code.

It works on the recorded decision as JSON (what GetDecision returns), not on domain objects,
so the web console and the `miaopi` CLI (through miaopi_server.offline) render the same notice.

    content     what the notice says (outcome -> kind, masked applicant, reasons, seal, QR)
    masking     ID numbers and names as printed
    remedies    the remedies notice on a refusal
    qr          the QR code (segno)
    html        render_notice_html, NOTICE_CSS
    pdf         render_notice_pdf (reportlab + pypdf attachment)
    attachment  reading a notice PDF back (its attached decision, its printed text)

Nothing is imported here: rendering HTML or reading an attachment does not load reportlab.
"""
