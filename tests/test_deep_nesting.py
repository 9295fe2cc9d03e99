"""Rule files nested very deeply (conditions in parentheses or `not` thousands deep, lists made
by union of lists thousands deep) are refused by a reload with a located diagnostic naming the
file, line and column, never a RecursionError (MP199 at 1:1); the old set keeps serving."""

from __future__ import annotations

import shutil

import grpc
import pytest

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.lang.parser import MAX_NESTING, ExprSyntaxError, parse
from miaopi_server.rules.loader import MAX_LIST_NESTING
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import RULESETS, centenarian_request, rule_file

WHEN_LINE = 15  # the line of `when:` in the files below (RULE_FILE_HEAD is 11 lines)


def condition_file(condition: str) -> str:
    return rule_file(
        f"""\
        form:
          t.x: {{type: integer}}
        rules:
          - id: r1
            when: '{condition}'
            outcome: APPROVE
            message: m
            basis: art1
        """
    )


def union_chain_file(depth: int) -> str:
    """Lists l{depth-1} = union [l{depth-2}] ... l0 = [a], the deepest written first."""
    lists = "".join(f"  l{i}: {{label: x, union: [l{i - 1}]}}\n" for i in range(depth - 1, 0, -1))
    return rule_file(
        """\
        form:
          t.x: {type: string}
        rules:
          - {id: r1, when: 't.x in list l0', outcome: APPROVE, message: m, basis: art1}
        """
    ) + ("lists:\n" + lists + "  l0: {label: x, values: [a]}\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deep")
    root = tmp / "rules"
    shutil.copytree(RULESETS, root)
    live = LiveServer(
        Settings(
            listen="127.0.0.1:0",
            rulesets=root,
            state_dir=tmp / "state",
            grace_seconds=0.2,
            watch_seconds=0,
        )
    )
    live.root = root  # type: ignore[attr-defined]
    yield live
    live.stop()


PARENS = "(" * 5000 + "t.x == 1" + ")" * 5000
NOTS = "not " * 5000 + "t.x == 1"
MIXED = "(not " * 3000 + "t.x == 1" + ")" * 3000
WHEN_COLUMN = 12  # `    when: '` precedes the condition


def reload_with(server, text: str) -> pb.ReloadRulesetsResponse:
    """ReloadRulesets with deep.yaml added; the file is gone again afterwards."""
    path = server.root / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        with grpc.insecure_channel(server.target) as ch:
            return pb_grpc.ApprovalServiceStub(ch).ReloadRulesets(pb.ReloadRulesetsRequest())
    finally:
        path.unlink()


@pytest.mark.parametrize(
    ("condition", "offset"),
    [(PARENS, MAX_NESTING), (NOTS, 4 * MAX_NESTING), (MIXED, 5 * (MAX_NESTING // 2))],
    ids=["parentheses", "not", "mixed"],
)
def test_deep_condition_located(server, condition, offset):
    """Was MP199 "RecursionError" at 1:1; now MP208 at the token that passes the limit."""
    with grpc.insecure_channel(server.target) as ch:
        before = pb_grpc.ApprovalServiceStub(ch).Decide(centenarian_request()).decision
    result = reload_with(server, condition_file(condition))
    assert not result.applied
    assert [d.split("/", 1)[1] for d in result.diagnostics] == [
        f"deep.yaml:{WHEN_LINE}:{WHEN_COLUMN + offset}: error MP208: "
        f"规则 r1 的 when: 括号或 not 嵌套过深（不超过 {MAX_NESTING} 层）"
    ]
    with grpc.insecure_channel(server.target) as ch:
        after = pb_grpc.ApprovalServiceStub(ch).Decide(centenarian_request()).decision
    assert after.ruleset.digest == before.ruleset.digest


def test_deep_list_union_located(server):
    """A union chain 5,000 lists deep (deepest first): every error is MP323 at a `union:`
    reference of the file, none is a RecursionError."""
    text = union_chain_file(5000)
    lines = text.splitlines()
    result = reload_with(server, text)
    assert not result.applied and result.diagnostics
    for d in result.diagnostics:
        where, _, message = d.partition(": error ")
        _, line, col = where.rsplit(":", 2)
        assert where.endswith(f"deep.yaml:{line}:{col}")
        assert message.startswith("MP323: 清单 union 嵌套过深"), d
        assert lines[int(line) - 1][int(col) - 1 :].startswith("l"), d
        assert "union: [" in lines[int(line) - 1]


def test_union_chain_error_names_the_list(server):
    """One list past the limit: one error, at the reference that passes it (l1's, reached
    from l16 through 16 lists); a chain exactly at the limit loads."""
    text = union_chain_file(MAX_LIST_NESTING + 1)
    result = reload_with(server, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("  l1:"))
    assert [d.split("/", 1)[1] for d in result.diagnostics] == [
        f"deep.yaml:{line}:26: error MP323: 清单 union 嵌套过深（不超过 {MAX_LIST_NESTING} 层）"
    ]
    assert reload_with(server, union_chain_file(MAX_LIST_NESTING)).applied
    with grpc.insecure_channel(server.target) as ch:  # back to the shipped set
        assert pb_grpc.ApprovalServiceStub(ch).ReloadRulesets(pb.ReloadRulesetsRequest()).applied


def test_limits_are_exact():
    """MAX_NESTING levels parse; one more is MP208 at the token that passes the limit."""
    parse("(" * MAX_NESTING + "t.x == 1" + ")" * MAX_NESTING)
    parse("not " * MAX_NESTING + "t.x")
    with pytest.raises(ExprSyntaxError) as info:
        parse("(" * (MAX_NESTING + 1) + "t.x == 1" + ")" * (MAX_NESTING + 1))
    assert (info.value.code, info.value.pos) == ("MP208", MAX_NESTING)
    # Depth is nesting, not count: many parenthesised terms side by side are fine.
    parse(" and ".join(["(t.x == 1)"] * 1000))
