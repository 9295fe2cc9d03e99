"""Property-based tests (hypothesis): arbitrary rule text and arbitrary JSON facts never crash
the process, never execute code, and either compile/validate or give a located error."""

from __future__ import annotations

import contextlib
import datetime as dt
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miaopi_server.errors import CaseInvalid, ItemNotFound
from miaopi_server.lang.compiler import Compares, FieldSpec, compile_condition
from miaopi_server.lang.parser import KEYWORDS, ExprSyntaxError, parse
from miaopi_server.lang.probes import ProbeTable
from miaopi_server.rules.loader import load_rule_file

FIELDS = {
    "a.n": FieldSpec("a.n", "integer", False, compares=Compares.NUMBER),
    "a.s": FieldSpec("a.s", "string", False, compares=Compares.TEXT),
    "a.b": FieldSpec("a.b", "boolean", True, compares=Compares.BOOLEAN),
    "a.l": FieldSpec("a.l", "string_list", True, compares=Compares.TEXT_LIST),
    "a.d": FieldSpec("a.d", "date", True, compares=Compares.DATE),
}
TOKENS = [
    *sorted(KEYWORDS),
    "a.n",
    "a.s",
    "a.b",
    "a.l",
    "a.d",
    "x.y",
    "==",
    "!=",
    "<",
    ">=",
    "(",
    ")",
    "[",
    "]",
    ",",
    "1",
    "2.5",
    '"中国"',
    "'x'",
    '"2024-01-01"',
    "list",
    "words",
    "=",
    "__import__",
    "os",
]
rule_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join),
)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rule_text)
def test_conditions_parse_or_fail_located(text):
    """Any text parses and compiles, or fails with a code and an offset inside the text."""
    try:
        tree = parse(text)
    except ExprSyntaxError as exc:
        assert exc.code.startswith("MP2") and 0 <= exc.pos <= len(text)
        return
    compiled = compile_condition(tree, FIELDS, {"words": ("x",)}, ProbeTable())
    for e in compiled.errors:
        assert e.code.startswith(("MP2", "MP3")) and 0 <= e.pos <= len(text)
    assert isinstance(compiled.condition, dict)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
subjects = st.sampled_from(
    [
        "applicant",
        "application",
        "household",
        "disability",
        "operator",
        "business",
        "premises",
        "enterprise",
        "warehouse",
        "zzz",
    ]
)
facts_strategy = st.dictionaries(
    subjects,
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "id_number",
                    "hukou_region",
                    "date",
                    "status",
                    "grade",
                    "scope",
                    "area_sqm",
                    "uscc",
                    "outsourced",
                    "by_agent",
                    "x",
                ]
            ),
            json_values,
            max_size=6,
        ),
    ),
    max_size=5,
)


@SETTINGS
@given(
    st.sampled_from(["GF00012000", "GF00034001", "XK00051000", "BA00027000", "", "??"]),
    facts_strategy,
    st.lists(st.text(max_size=20), max_size=4) | json_values,
)
def test_arbitrary_facts_decide_or_name_bad_fields(catalog, code, facts, materials):
    """Arbitrary JSON facts and materials give a decision or errors naming fields."""
    try:
        d = catalog.decide(code, facts, materials, dt.date(2026, 11, 23))
    except CaseInvalid as exc:
        assert exc.violations and all(v.field and v.description for v in exc.violations)
        return
    except ItemNotFound:
        return
    assert d.outcome in ("APPROVE", "REJECT", "MANUAL_REVIEW")


RULE_FILE = textwrap.dedent("""\
    item: {{code: P1, name: 测试, type: 行政给付, department: 局,
           time_limit: {{statutory_working_days: 1, promised_working_days: 1}}}}
    version: "1"
    legal_basis: {{b: {{law: 法}}}}
    form:
      a.n: {{type: integer}}
      a.s: {{type: string}}
    rules:
      - {{id: r, outcome: APPROVE, message: m, basis: b, when: {when}}}
    """)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rule_text)
def test_rule_files_with_arbitrary_conditions_load_or_report(tmp_path, text):
    """A rule file with any condition text loads or reports located diagnostics."""
    path = tmp_path / "p.yaml"
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    path.write_text(RULE_FILE.format(when=quoted), encoding="utf-8")
    item, diags = load_rule_file(path, tmp_path, {})
    for d in diags:
        assert d.line >= 1 and d.column >= 1 and d.code.startswith("MP")
    assert item is not None or diags


def test_no_code_is_executed(tmp_path):
    """Text that would run code if evaluated is only ever parsed."""
    marker = Path(tmp_path / "pwned")
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"a.s == \"{{open('{marker}', 'w')}}\"",
        "exec('1')",
        "a.n.__class__",
    ]
    for text in payloads:
        with contextlib.suppress(ExprSyntaxError):
            compile_condition(parse(text), FIELDS, {}, ProbeTable())
    assert not marker.exists()
