"""The printable decision notice: real server, real records, real PDFs read back by pypdf and by
poppler (pdftotext, pdftoppm), the QR code decoded by zbar, the receipt checked by
`miaopi verify-receipt notice.pdf`."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdf
import pytest
from structlog.testing import capture_logs

from miaopi_client import Client
from miaopi_client.cli import main
from miaopi_server.notice.attachment import printed_text
from miaopi_server.notice.content import ATTACHMENT_NAME, NoticeInputError, notice_of
from miaopi_server.notice.html import NOTICE_CSS, render_notice_html
from miaopi_server.notice.masking import mask_id_number, mask_name
from miaopi_server.notice.pdf import render_notice_pdf
from miaopi_server.notice.remedies import remedies_notice
from tests.support import resident_id

CODE = "GF00012000"
NAME = "陈建国"
ALL_MATERIALS = ["id_card", "hukou_book", "bank_account"]
# kind -> (birth date, materials): the senior allowance decided as of 2026-11-20.
CASES = {
    "approve": ("1946-11-20", ALL_MATERIALS),  # 80: APPROVE
    "inform": ("1946-11-20", ["id_card"]),  # materials missing: REJECT, 一次性告知
    "refuse": ("1956-11-21", ALL_MATERIALS),  # a day short of 70: REJECT
    "accept": ("1920-11-20", ALL_MATERIALS),  # 106: MANUAL_REVIEW
}
TITLES = {
    "approve": "准予批准通知书",
    "inform": "一次性告知书",
    "refuse": "不予批准决定书",
    "accept": "受理通知书",
}
OUTCOMES = {"approve": "APPROVE", "inform": "REJECT", "refuse": "REJECT", "accept": "MANUAL_REVIEW"}
TOOLS = ("pdftoppm", "pdftotext", "zbarimg")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def flat(text: str) -> str:
    return "".join(text.split())


def id_number(kind: str) -> str:
    return resident_id(CASES[kind][0])


class Printed:
    """One decision's notice, written by `miaopi notice ID --pdf --html` from the server."""

    def __init__(self, kind: str, record: dict[str, Any], html: str, pdf: Path) -> None:
        self.kind, self.record, self.html, self.pdf = kind, record, html, pdf
        self.decision = record["decision"]
        self.pdf_text = printed_text(pdf.read_bytes())  # pypdf, whitespace removed
        done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"],
                              capture_output=True, check=True)  # fmt: skip
        self.poppler_text = flat(done.stdout.decode("utf-8"))


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, f"{missing} missing: `make test` installs poppler-utils and zbar-tools"


@pytest.fixture(scope="module")
def client(live_server: Any) -> Iterator[Client]:
    with Client(live_server.target) as c:
        yield c


@pytest.fixture(scope="module")
def pem(client: Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "seal.pub.pem"
    path.write_text(client.seal_key()["public_key_pem"], encoding="ascii")
    return path


@pytest.fixture(scope="module")
def notices(
    tools: None, live_server: Any, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Printed]:
    out = tmp_path_factory.mktemp("notices")
    printed = {}
    for kind, (birth, materials) in CASES.items():
        facts = {
            "applicant": {"name": NAME, "id_number": resident_id(birth), "hukou_region": "440605"},
            "application": {"date": "2026-11-20"},
        }
        decision = client.decide(CODE, facts, materials, window_id="w-notice")
        assert decision["outcome"] == OUTCOMES[kind], kind
        pdf, html = out / f"{kind}.pdf", out / f"{kind}.html"
        code, _, err = run("--target", live_server.target, "notice", decision["decision_id"],
                           "--pdf", str(pdf), "--html", str(html))  # fmt: skip
        assert code == 0, err
        assert f"notice written to {pdf}" in err
        record = client.get_decision(decision["decision_id"], include_case=True)
        printed[kind] = Printed(kind, record, html.read_text(encoding="utf-8"), pdf)
    return printed


def qr_codes(pdf: Path, work: Path) -> list[str]:
    """Every QR code zbar finds on the pages pdftoppm rasterises (200 dpi)."""
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(pdf), str(work / "page")], check=True)
    found = []
    for page in sorted(work.glob("page*.png")):
        done = subprocess.run(["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable",
                               str(page)], capture_output=True)  # fmt: skip
        found += [line for line in done.stdout.decode("utf-8").splitlines() if line]
    return found


KINDS = sorted(CASES)


class TestContent:
    @pytest.mark.parametrize("kind", KINDS)
    def test_title_item_and_masked_applicant(self, notices: dict[str, Printed], kind: str) -> None:
        """Each outcome gets its notice; item, masked applicant and record data are on both the
        HTML page and the PDF (pypdf and pdftotext alike)."""
        n = notices[kind]
        d, receipt = n.decision, n.decision["receipt"]
        number = id_number(kind)
        expected = [
            TITLES[kind],
            "高龄老人津贴申领（GF00012000）",
            "南海区民政局",
            "陈**",
            number[:6] + "********" + number[-4:],
            d["decision_id"],
            receipt["record_hash"],
            d["ruleset"]["version"],
            d["ruleset"]["digest"],
            receipt["key_id"],
        ]
        for text in (n.html, n.pdf_text, n.poppler_text):
            flattened = flat(text)
            assert [e for e in expected if flat(e) not in flattened] == []

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_id_number_and_name_never_appear_whole(
        self, notices: dict[str, Printed], kind: str
    ) -> None:
        n = notices[kind]
        for text in (n.html, n.pdf_text, n.poppler_text):
            assert id_number(kind) not in flat(text)
            assert NAME not in flat(text)

    @pytest.mark.parametrize("kind", KINDS)
    def test_reasons_with_legal_basis_deciding_first(
        self, notices: dict[str, Printed], kind: str
    ) -> None:
        """Every reason and its citation, in Chinese, as extracted; REJECT reasons first."""
        n = notices[kind]
        reasons = n.decision["reasons"]
        assert reasons
        for text in (n.html, n.pdf_text, n.poppler_text):
            flattened = flat(text)
            positions = []
            for r in reasons:
                message, citation = flat(r["message"]), flat(r["legal_basis"]["citation"])
                assert message in flattened and citation in flattened, r["rule_id"]
                positions.append((r["outcome"] != "REJECT", flattened.index(message)))
            by_place = [deciding for deciding, _ in sorted(positions, key=lambda p: p[1])]
            assert by_place == sorted(by_place)

    def test_missing_materials_all_at_once(self, notices: dict[str, Printed]) -> None:
        n = notices["inform"]
        names = [m["name"] for m in n.decision["missing_materials"]]
        assert names == ["户口簿", "本人银行账户信息"]
        for text in (n.html, n.pdf_text, n.poppler_text):
            assert "需补正的全部材料（一次性告知）" in flat(text)
            assert all(name in flat(text) for name in names)
        assert "需补正的全部材料" not in notices["refuse"].poppler_text

    def test_review_due_date_on_manual_review(self, notices: dict[str, Printed]) -> None:
        n = notices["accept"]
        due = n.decision["review_due_date"]
        assert due
        for text in (n.html, n.pdf_text, n.poppler_text):
            assert f"审核期限至{due}" in flat(text) and f"{due}前作出决定" in flat(text)

    @pytest.mark.parametrize("kind", KINDS)
    def test_remedies_on_a_refusal_only(self, notices: dict[str, Printed], kind: str) -> None:
        n = notices[kind]
        refused = OUTCOMES[kind] == "REJECT"
        assert ("remedies" in n.decision) == refused
        for text in (n.html, n.pdf_text, n.poppler_text):  # what the record says it told
            if refused:
                assert flat(n.decision["remedies"]["notice"]) in flat(text)
            else:
                assert "行政复议" not in flat(text)

    def test_decided_at_in_shanghai_time(self, notices: dict[str, Printed]) -> None:
        n = notices["approve"]
        at = dt.datetime.fromisoformat(n.decision["decided_at"].replace("Z", "+00:00"))
        local = (at + dt.timedelta(hours=8)).strftime("%Y年%m月%d日%H:%M:%S（北京时间）")
        assert local in flat(n.html) and local in n.pdf_text and local in n.poppler_text


class TestQrCode:
    @pytest.mark.parametrize("kind", ["approve", "inform"])
    def test_decoded_from_the_rasterised_pdf(
        self, notices: dict[str, Printed], kind: str, tmp_path: Path
    ) -> None:
        """zbar reads one code off the pages pdftoppm renders: decision id, record hash and
        the seal reference (key id, signed tree head), nothing personal."""
        n = notices[kind]
        receipt = n.decision["receipt"]
        head = receipt["tree_head"]
        assert qr_codes(n.pdf, tmp_path) == [
            f"miaopi-notice:v1;decision={n.decision['decision_id']};"
            f"hash={receipt['record_hash']};"
            f"seal={receipt['key_id']}/sth/{head['tree_size']}/{head['root_hash']}"
        ]

    def test_html_carries_the_same_code_as_svg(self, notices: dict[str, Printed]) -> None:
        n = notices["approve"]
        assert "<svg" in n.html and "核验二维码" in n.html
        assert id_number("approve") not in notice_of(n.record).qr_payload


class TestVerifyReceipt:
    @pytest.mark.parametrize("kind", KINDS)
    def test_notice_pdf_verifies_offline(
        self, notices: dict[str, Printed], pem: Path, kind: str
    ) -> None:
        n = notices[kind]
        code, out, _ = run("verify-receipt", str(n.pdf), "--key", str(pem))
        seq = int(n.decision["receipt"]["seq"])
        lines = out.splitlines()
        assert code == 0 and lines[0] == (
            f"receipt OK: seq {seq} sealed by {n.decision['receipt']['key_id']}"
        )
        # what the seal covers, since the pages are not sealed (text can be hidden on a page)
        title = notice_of({"decision": n.decision}).title
        assert lines[1].startswith(f"sealed: {title}（") and n.decision["decision_id"] in lines[1]
        assert lines[2].startswith("the printed pages are not sealed")

    def test_a_trusted_copy_is_printed_from_the_attachment(
        self, notices: dict[str, Printed], pem: Path, tmp_path: Path
    ) -> None:
        """Pages of a refusal over a genuine approval's attachment would still verify if the
        approval's title, id and hash were hidden on them: the copy printed from the
        attachment shows what was sealed."""
        approve, refuse = notices["approve"], notices["refuse"]
        swapped = rebuild(refuse.pdf, {"decision": approve.decision}, tmp_path / "swap.pdf")
        copy_pdf = tmp_path / "copy.pdf"
        code, _, _ = run("notice", "--from", str(swapped), "--pdf", str(copy_pdf))
        assert code == 0
        assert flat(notice_of({"decision": approve.decision}).title) in flat(
            printed_text(copy_pdf.read_bytes())
        )
        code, out, _ = run("verify-receipt", str(copy_pdf), "--key", str(pem))
        assert code == 0 and out.startswith("receipt OK")

    def test_notice_pdf_verifies_with_the_servers_key(
        self, notices: dict[str, Printed], live_server: Any
    ) -> None:
        code, out, _ = run("verify-receipt", str(notices["refuse"].pdf), "--target",
                           live_server.target)  # fmt: skip
        assert code == 0 and out.startswith("receipt OK")

    def test_attachment_is_the_recorded_decision(self, notices: dict[str, Printed]) -> None:
        n = notices["inform"]
        attached = pypdf.PdfReader(n.pdf).attachments[ATTACHMENT_NAME]
        assert json.loads(attached[0]) == {"decision": n.decision}

    def test_tampered_attachment_fails(
        self, notices: dict[str, Printed], pem: Path, tmp_path: Path
    ) -> None:
        """Changing the attached decision (a reason's words) breaks its seal: exit 1."""
        n = notices["refuse"]
        changed = copy.deepcopy(n.decision)
        changed["reasons"][0]["message"] = "符合条件"
        tampered = rebuild(n.pdf, {"decision": changed}, tmp_path / "tampered.pdf")
        code, out, _ = run("verify-receipt", str(tampered), "--key", str(pem))
        seq = int(n.decision["receipt"]["seq"])
        assert code == 1
        assert out.strip() == (
            f"receipt FAILED (seq {seq}): record hash mismatch: the decision was changed"
        )

    def test_pages_of_another_decision_fail(
        self, notices: dict[str, Printed], pem: Path, tmp_path: Path
    ) -> None:
        """A genuine approval attached under the pages of a refusal: the seal holds, but the
        page does not show that decision, so the notice fails."""
        approve, refuse = notices["approve"], notices["refuse"]
        swapped = rebuild(refuse.pdf, {"decision": approve.decision}, tmp_path / "swap.pdf")
        code, out, _ = run("verify-receipt", str(swapped), "--key", str(pem))
        assert code == 1
        assert "the printed notice does not show the attached decision's title" in out

    def test_pdf_without_the_attachment_is_bad_input(
        self, notices: dict[str, Printed], pem: Path, tmp_path: Path
    ) -> None:
        bare = rebuild(notices["approve"].pdf, None, tmp_path / "bare.pdf")
        code, out, err = run("verify-receipt", str(bare), "--key", str(pem))
        assert (code, out) == (2, "")
        assert f"no decision attached (the notice embeds {ATTACHMENT_NAME})" in err


def rebuild(pdf: Path, attached: Any, out: Path) -> Path:
    """The pages of `pdf` with `attached` (JSON) as the decision attachment, or none."""
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(pdf).pages:
        writer.add_page(page)
    if attached is not None:
        writer.add_attachment(ATTACHMENT_NAME, json.dumps(attached, ensure_ascii=False).encode())
    with out.open("wb") as f:
        writer.write(f)
    return out


class TestCommand:
    def test_offline_from_a_saved_decision(
        self, live_server: Any, client: Client, pem: Path, tmp_path: Path
    ) -> None:
        """`decide --json` saved, then `notice --from` without a server: no applicant block
        (the saved decision holds no case), item by code, and it verifies."""
        facts = {
            "applicant": {
                "name": NAME,
                "id_number": id_number("approve"),
                "hukou_region": "440605",
            },
            "application": {"date": "2026-11-20"},
        }
        saved = tmp_path / "d.json"
        saved.write_text(json.dumps(client.decide(CODE, facts, ALL_MATERIALS), ensure_ascii=False))
        pdf, html = tmp_path / "n.pdf", tmp_path / "n.html"
        code, _, err = run("notice", "--from", str(saved), "--pdf", str(pdf), "--html", str(html))
        assert code == 0, err
        text = printed_text(pdf.read_bytes())
        assert "准予批准通知书" in text and "GF00012000" in text and "申请人" not in text
        assert run("verify-receipt", str(pdf), "--key", str(pem))[0] == 0

    def test_needs_an_output(self, tmp_path: Path) -> None:
        code, _, err = run("notice", "--from", str(tmp_path / "x.json"))
        assert code == 2 and "--pdf FILE and/or --html FILE" in err

    def test_a_decision_without_receipt_is_refused(self, tmp_path: Path) -> None:
        saved = tmp_path / "d.json"
        saved.write_text(json.dumps({"decision_id": "x", "outcome": "APPROVE"}))
        code, _, err = run("notice", "--from", str(saved), "--pdf", str(tmp_path / "n.pdf"))
        assert code == 2
        assert "cannot make a notice: the decision has no receipt" in err
        assert not (tmp_path / "n.pdf").exists()

    def test_unknown_decision_is_not_found(self, live_server: Any, tmp_path: Path) -> None:
        code, _, err = run("--target", live_server.target, "notice", "no-such-id",
                           "--pdf", str(tmp_path / "n.pdf"))  # fmt: skip
        assert code == 3 and "NOT_FOUND" in err


# --- the parts, on records made up for what the shipped rules do not produce ----------------

RECEIPT = {"record_hash": "ab" * 32, "key_id": "ed25519:0011223344556677", "seq": "7",
           "tree_head": {"tree_size": "7", "root_hash": "cd" * 32}}  # fmt: skip


def made_up(**decision: Any) -> dict[str, Any]:
    base = {"decision_id": "d-1", "item_code": "GF00012000", "outcome": "OUTCOME_REJECT",
            "receipt": RECEIPT, "decided_at": "2026-11-23T16:30:00Z"}  # fmt: skip
    return {"decision": {**base, **decision}}


class TestParts:
    @pytest.mark.parametrize(
        "given, shown",
        [
            ("440605193510318837", "440605********8837"),
            ("44060519351031883X", "440605********883X"),
            ("440605351031883", "440605*****1883"),  # 15-digit (first generation)
            ("12345", "*****"),
            ("", ""),
        ],
    )
    def test_id_number_mask(self, given: str, shown: str) -> None:
        assert mask_id_number(given) == shown

    @pytest.mark.parametrize(
        "given, shown", [("张三", "张*"), ("欧阳娜娜", "欧***"), ("李", "*"), ("", "")]
    )
    def test_name_mask(self, given: str, shown: str) -> None:
        assert mask_name(given) == shown

    def test_a_data_conflict_is_printed_without_the_values_it_names(self) -> None:
        """A disability certificate number is the ID number plus two digits: the sealed reason
        names both values for the reviewer; the citizen's notice must not print them."""
        conflict = ("数据不一致：残疾证件号码窗口填写 '44060519700505123621'，"
                    "残疾人证信息库（残联）记录 '44060519700505123'，转人工审核")  # fmt: skip
        record = made_up(
            outcome="OUTCOME_MANUAL_REVIEW",
            reasons=[
                {"rule_id": "data:conflict:disability.certificate_number",
                 "outcome": "OUTCOME_MANUAL_REVIEW", "message": conflict},
                {"rule_id": "data:corrected:applicant.hukou_region", "outcome": "OUTCOME_APPROVE",
                 "message": "户籍地：窗口填写 '440604'，人口库记录 '440605'，以共享数据为准"},
            ],
        )  # fmt: skip
        for text in (render_notice_html(record), printed_text(render_notice_pdf(record))):
            assert "4406051970050512" not in flat(text) and "440604" not in flat(text)
            assert "窗口填写的信息与共享数据记录不一致，转人工核验" in flat(text)
            assert "已以共享数据为准" in flat(text)

    def test_remedies_print_the_recorded_notice(self) -> None:
        remedies = {"review_body": "甲", "court": "乙", "notice": "  记录中的告知原文。 "}
        assert remedies_notice({"remedies": remedies}) == "记录中的告知原文。"

    def test_remedies_name_the_bodies_when_the_record_has_no_notice_text(self) -> None:
        remedies = {"review_body": "佛山市南海区人民政府", "court": "佛山市南海区人民法院"}
        assert remedies_notice({"remedies": remedies}) == (
            "申请人如不服本决定，可以自知道该决定之日起60日内向佛山市南海区人民政府申请行政复议，"
            "或者自知道该决定之日起6个月内向佛山市南海区人民法院提起行政诉讼。"
        )

    def test_a_refusal_recorded_before_remedies_gets_the_statutory_notice(self) -> None:
        assert remedies_notice({}) == (
            "申请人如不服本决定，可以自知道该决定之日起60日内向有管辖权的行政复议机关申请行政复议，"
            "或者自知道该决定之日起6个月内向有管辖权的人民法院提起行政诉讼。"
        )

    def test_remedies_in_the_pdf_when_present(self) -> None:
        record = made_up(remedies={"review_body": "南海区人民政府", "court": "南海区人民法院"})
        text = printed_text(render_notice_pdf(record))
        assert "向南海区人民政府申请行政复议" in text and "向南海区人民法院提起行政诉讼" in text

    def test_markup_in_a_reason_is_text(self) -> None:
        """Reason messages are escaped in HTML and printed literally in the PDF (reportlab
        paragraphs would otherwise read them as markup)."""
        record = made_up(reasons=[{"rule_id": "r", "outcome": "OUTCOME_REJECT",
                                   "message": "<b>不符合</b> & <script>x</script>"}])  # fmt: skip
        html = render_notice_html(record)
        assert "<script>x" not in html and "&lt;b&gt;不符合&lt;/b&gt; &amp; &lt;script&gt;" in html
        assert "<b>不符合</b>&<script>x</script>" in printed_text(render_notice_pdf(record))

    def test_a_refusal_for_more_than_materials_still_lists_them(self) -> None:
        """Missing materials alone make an 一次性告知书; with another refusing reason it is a
        不予批准决定书, which still lists every missing material."""
        reasons = [
            {"rule_id": "material:hukou_book", "outcome": "REJECT", "message": "缺少户口簿"},
            {"rule_id": "too_young", "outcome": "REJECT", "message": "未满七十周岁"},
        ]
        missing = [{"id": "hukou_book", "name": "户口簿"}]
        both = notice_of(made_up(reasons=reasons, missing_materials=missing))
        assert (both.kind, both.title, both.missing) == ("refuse", "不予批准决定书", ("户口簿",))
        only = notice_of(made_up(reasons=reasons[:1], missing_materials=missing))
        assert (only.kind, only.title) == ("inform", "一次性告知书")

    def test_decided_at_crosses_midnight_in_shanghai(self) -> None:
        assert notice_of(made_up()).decided_at == "2026年11月24日 00:30:00（北京时间）"

    def test_html_takes_an_external_stylesheet(self) -> None:
        """For a page whose CSP forbids inline styles: a link instead, and nothing inline."""
        html = render_notice_html(made_up(), stylesheet_href="/static/notice.css")
        assert '<link rel="stylesheet" href="/static/notice.css">' in html
        assert "<style" not in html and "style=" not in html and "<script" not in html
        assert "size: A4" in NOTICE_CSS and "<style>" in render_notice_html(made_up())

    @pytest.mark.parametrize(
        "record, problem",
        [
            ({}, "not a recorded decision"),
            ({"decision": {"decision_id": "x", "outcome": "APPROVE"}}, "no receipt"),
            (made_up(outcome="OUTCOME_UNSPECIFIED"), "no known outcome"),
        ],
    )
    def test_what_is_not_a_notice(self, record: dict[str, Any], problem: str) -> None:
        with pytest.raises(NoticeInputError, match=problem):
            notice_of(record)
