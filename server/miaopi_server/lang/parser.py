"""Parser of the rule-condition language that rule authors write.

    expr      := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | predicate
    predicate := "(" expr ")"
               | ("any" | "all" | "no") PATH test      -- test applies to each element
               | side [test]                            -- a bare PATH is a boolean fact
    test      := CMP side | ["not"] "in" set
               | "is" ["not"] ("missing" | "present" | "empty" | "hanzi")
               | ("contains" | "starts" "with" | "ends" "with") words
    words     := STRING | "any" "of" set
    set       := "[" literal ("," literal)* "]" | "list" NAME
    side      := "days" "between" term "and" term     -- a number of days (lang/dates.py)
               | term
    term      := operand (("+" | "-") INTEGER UNIT)*  -- a date moved by a period
    UNIT      := "day" | "days" | "month" | "months" | "year" | "years"
    operand   := PATH | STRING | NUMBER | "true" | "false"
    CMP       := "==" | "!=" | "<" | "<=" | ">" | ">="

A computed value (an output's or a derived fact's `compute`) is one `side`: `parse_value`.

Nothing here evaluates anything: the tree is compiled to durable_rules conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from miaopi_server.lang import ast
from miaopi_server.lang.dates import UNITS

KEYWORDS = frozenset(
    "and or not in is missing present empty hanzi any all no list of contains starts ends "
    "with true false".split()
)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<baredate>\d{4}-\d{1,2}-\d{1,2}(?![\w.]))
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|“[^”\n]*”)
  | (?P<op>==|!=|<=|>=|<|>|=|\(|\)|\[|\]|,|\+|-)
  | (?P<name>[^\W\d][\w]*(?:\.[^\W\d][\w]*)*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "'": "'", "\\": "\\"}


# The largest magnitude a number may have, in a condition or in a case: exact as a double and
# far below the 64-bit integers the engine clamps to (above 2**63 it compares wrongly).
MAX_NUMBER = 10**15


class ExprSyntaxError(Exception):
    """A condition that does not parse; `pos` is the character offset of the problem."""

    def __init__(self, code: str, message: str, pos: int):
        super().__init__(message)
        self.code = code
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, op, name, keyword, end
    text: str
    pos: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ExprSyntaxError("MP201", f"无法识别的字符 {source[pos]!r}", pos)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "name" and text in KEYWORDS:
            kind = "keyword"
        if kind == "op" and text == "=":
            raise ExprSyntaxError("MP202", "比较相等请写 ==（单个 = 不是比较）", pos)
        if kind == "baredate":
            # Unquoted, 1933-01-01 would read as the number 1933 minus 1 minus 1.
            raise ExprSyntaxError("MP209", f'日期请加引号，写作 "{text}"', pos)
        if kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


def _unquote(text: str, pos: int) -> str:
    if text.startswith("“"):
        return text[1:-1]
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise ExprSyntaxError("MP203", f"字符串中不支持的转义 \\{nxt}", pos + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# Parentheses and `not` nested deeper than this are refused where the limit is passed (MP208):
# real conditions nest a few levels, and every stage after the parser walks the tree
# recursively, so an unbounded depth would end in a RecursionError that names no line.
MAX_NESTING = 32


class _Parser:
    def __init__(self, source: str):
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprSyntaxError("MP208", f"括号或 not 嵌套过深（不超过 {MAX_NESTING} 层）", pos)

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("keyword", "op") and self.tok.text in texts

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.error(f"此处应为 {what}")
        return self.take()

    def error(self, message: str, code: str = "MP204") -> ExprSyntaxError:
        found = self.tok.text or "条件结尾"
        return ExprSyntaxError(code, f"{message}，却遇到 {found!r}", self.tok.pos)

    # -- grammar
    def parse(self) -> ast.Expr:
        if self.tok.kind == "end":
            raise ExprSyntaxError("MP205", "条件为空", 0)
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.error("条件已结束；多个条件请用 and / or 连接")
        return node

    def parse_or(self) -> ast.Expr:
        pos = self.tok.pos
        items = [self.parse_and()]
        while self.at("or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else ast.Or(tuple(items), pos)

    def parse_and(self) -> ast.Expr:
        pos = self.tok.pos
        items = [self.parse_not()]
        while self.at("and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else ast.And(tuple(items), pos)

    def parse_not(self) -> ast.Expr:
        if self.at("not"):
            pos = self.take().pos
            self.nest(pos)
            node = ast.Not(self.parse_not(), pos)
            self.depth -= 1
            return node
        return self.parse_predicate()

    def parse_predicate(self) -> ast.Expr:
        if self.at("("):
            self.nest(self.take().pos)
            node = self.parse_or()
            self.expect(")", "右括号 )")
            self.depth -= 1
            return node
        if self.at("any", "all", "no"):
            kw = self.take()
            subject = self.parse_path("列表字段")
            elem = ast.Element(subject.pos)
            test = self.parse_test(elem)
            if test is None:
                raise self.error("any / all / no 后面的字段需要一个检验，例如 in list 名称")
            if isinstance(test, ast.Presence | ast.Emptiness | ast.Truthy):
                raise ExprSyntaxError(
                    "MP206", "列表元素不能检验 missing / present / empty", test.pos
                )
            return ast.Quantified(kw.text, subject, test, kw.pos)  # type: ignore[arg-type]
        operand = self.parse_side()
        if isinstance(operand, ast.Path):
            test = self.parse_test(operand)
            return test if test is not None else ast.Truthy(operand, operand.pos)
        if self.tok.kind == "op" and self.tok.text in ast.FLIPPED_OP:
            return self.parse_test(operand)  # type: ignore[return-value]
        if isinstance(operand, ast.Const):
            raise self.error("常量后面应为比较运算符")
        raise self.error("日期加减或 days between 后面应为比较运算符")

    def parse_test(self, subject: ast.Side) -> ast.Expr | None:
        pos = self.tok.pos
        if self.tok.kind == "op" and self.tok.text in ast.FLIPPED_OP:
            op = self.take().text
            right = self.parse_side()
            return ast.Compare(subject, op, right, pos)  # type: ignore[arg-type]
        if not isinstance(subject, ast.Path | ast.Element):
            return None
        if self.at("in"):
            self.take()
            return ast.Member(subject, self.parse_set(), False, pos)
        if self.at("not") and self.peek().text == "in":
            self.take()
            self.take()
            return ast.Member(subject, self.parse_set(), True, pos)
        if self.at("is"):
            self.take()
            negated = False
            if self.at("not"):
                self.take()
                negated = True
            word = self.tok.text if self.tok.kind == "keyword" else ""
            if word not in ("missing", "present", "empty", "hanzi"):
                raise self.error("is 后面应为 missing、present、empty 或 hanzi")
            self.take()
            if word == "hanzi":
                node: ast.Expr = ast.Hanzi(subject, pos)
                return ast.Not(node, pos) if negated else node
            if isinstance(subject, ast.Element):
                raise ExprSyntaxError("MP206", "列表元素不能检验 missing / present / empty", pos)
            if word == "empty":
                return ast.Emptiness(subject, not negated, pos)
            return ast.Presence(subject, (word == "missing") != negated, pos)
        if self.at("contains"):
            self.take()
            return ast.StringTest(subject, "contains", self.parse_words(), pos)
        if self.at("starts", "ends"):
            mode = self.take().text
            self.expect("with", "with")
            return ast.StringTest(subject, mode, self.parse_words(), pos)  # type: ignore[arg-type]
        return None

    def parse_words(self) -> ast.ValueSet:
        if self.tok.kind == "string":
            t = self.take()
            return ast.ListLiteral((ast.Const(_unquote(t.text, t.pos), t.pos),), t.pos)
        if self.at("any"):
            self.take()
            self.expect("of", "of")
            return self.parse_set()
        raise self.error('此处应为 "文字" 或 any of [...]')

    def parse_set(self) -> ast.ValueSet:
        pos = self.tok.pos
        if self.at("list"):
            self.take()
            if self.tok.kind != "name" or "." in self.tok.text:
                raise self.error("list 后面应为清单名称")
            return ast.ListRef(self.take().text, pos)
        self.expect("[", "[ 或 list 名称")
        items: list[ast.Const] = []
        while True:
            operand = self.parse_operand()
            if not isinstance(operand, ast.Const):
                raise ExprSyntaxError("MP207", "列表中只能写常量", operand.pos)
            items.append(operand)
            if self.at(","):
                self.take()
                continue
            self.expect("]", "] 或 ,")
            return ast.ListLiteral(tuple(items), pos)

    def parse_side(self) -> ast.Operand | ast.Arith:
        """One side of a comparison: an operand, a date moved by periods, or days between."""
        if self.tok.kind == "name" and self.tok.text == "days" and self.peek().text == "between":
            pos = self.take().pos
            self.take()
            first = self.parse_term()
            self.expect("and", "and（days between 日期 and 日期）")
            return ast.DaysBetween(first, self.parse_term(), pos)
        operand = self.parse_operand()
        return operand if isinstance(operand, ast.Element) else self.parse_shifts(operand)

    def parse_term(self) -> ast.DateTerm:
        operand = self.parse_operand()
        assert not isinstance(operand, ast.Element)  # parse_operand never makes one
        return self.parse_shifts(operand)

    def parse_shifts(self, term: ast.DateTerm) -> ast.DateTerm:
        """`term (+|-) N unit ...`; `-1 year` written without a space is a negative number."""
        while True:
            t = self.tok
            if t.kind == "op" and t.text in ("+", "-"):
                sign = 1 if t.text == "+" else -1
                self.take()
                if self.tok.kind != "number" or self.tok.text.startswith("-"):
                    raise self.error("+ / - 后面应为天数、月数或年数，例如 1 year、30 days")
                number = self.take()
            elif t.kind == "number" and t.text.startswith("-") and self.peek().text in UNITS:
                sign, number = 1, self.take()
            else:
                return term
            if not re.fullmatch(r"-?\d+", number.text):
                raise ExprSyntaxError("MP204", "期间须为整数，例如 30 days", number.pos)
            if self.tok.kind != "name" or self.tok.text not in UNITS:
                raise self.error("数字后面应为单位 days、months 或 years")
            unit = UNITS[self.take().text]
            term = ast.Shift(term, sign * _bounded_int(number), unit, t.pos)

    def parse_path(self, what: str) -> ast.Path:
        if self.tok.kind != "name":
            raise self.error(f"此处应为{what}")
        t = self.take()
        return ast.Path(t.text, t.pos)

    def parse_operand(self) -> ast.Operand:
        t = self.tok
        if t.kind == "name":
            return self.parse_path("字段")
        if t.kind == "string":
            self.take()
            return ast.Const(_unquote(t.text, t.pos), t.pos)
        if t.kind == "number":
            self.take()
            if "." not in t.text:
                return ast.Const(_bounded_int(t), t.pos)
            value = float(t.text)
            if not abs(value) <= MAX_NUMBER:
                raise _out_of_range(t)
            return ast.Const(value, t.pos)
        if self.at("true", "false"):
            self.take()
            return ast.Const(t.text == "true", t.pos)
        raise self.error("此处应为字段、文字、数字或 true / false")


def _out_of_range(t: Token) -> ExprSyntaxError:
    return ExprSyntaxError("MP210", "数字超出范围（绝对值不超过 10^15）", t.pos)


def _bounded_int(t: Token) -> int:
    """A whole number token's value, within ±MAX_NUMBER (a literal or a period). Its length is
    checked first: int() refuses more than 4,300 digits (a ValueError, reported as MP199)."""
    if len(t.text.lstrip("-").lstrip("0")) > len(str(MAX_NUMBER)):
        raise _out_of_range(t)
    value = int(t.text)
    if abs(value) > MAX_NUMBER:
        raise _out_of_range(t)
    return value


def parse(source: str) -> ast.Expr:
    """Parse one condition; raises ExprSyntaxError located by character offset."""
    return _Parser(source).parse()


def parse_value(source: str) -> ast.Side:
    """Parse a computed value (`application.date + 1 year`, `days between a and b`, a field or
    a literal); raises ExprSyntaxError located by character offset."""
    p = _Parser(source)
    if p.tok.kind == "end":
        raise ExprSyntaxError("MP205", "计算式为空", 0)
    side = p.parse_side()
    if p.tok.kind != "end":
        raise p.error("计算式已结束（计算式不是条件：不能写比较、and / or）")
    return side
