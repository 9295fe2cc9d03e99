"""MP150: every YAML rule file against the JSON Schema (`rules/rulefile.schema.json`), each
violation reported in Chinese on the YAML node it is about.

The schema sees the file as JSON (keys as written, scalars as YAML types them, dates as ISO
text); a violation's JSON path is followed back to the YAML node to get its line and column. A
problem the loader already reported at the same node is not repeated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.rules.lint.yaml_nodes import entries, position
from miaopi_server.rules.schema import rulefile_schema

ITEM_FILE, LIST_FILE, DEPARTMENTS_FILE = "itemFile", "listFile", "departmentsFile"


def schema_problems(
    display: str, tree: yaml.Node, kind: str, already: set[tuple[int, int]]
) -> list[Diagnostic]:
    """MP150 for each schema violation in the file `display` (node tree `tree`; `kind` is
    ITEM_FILE, LIST_FILE or DEPARTMENTS_FILE), except at the (line, column) places in
    `already`."""
    return _schema().check(display, tree, kind, already)


def _to_instance(root: yaml.Node) -> Any:
    """The JSON instance the schema sees: keys as written, scalars as YAML types them, dates
    and timestamps as ISO text (JSON has no date type)."""
    loader = yaml.SafeLoader("")
    active: set[int] = set()

    def scalar(node: yaml.ScalarNode) -> Any:
        try:
            value = loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return node.value  # an unknown tag or an impossible date: the loader reads the text
        if isinstance(value, dt.date):  # datetime is a date too
            return value.isoformat()
        if isinstance(value, bytes):
            return node.value
        return value

    def walk(node: yaml.Node) -> Any:
        if id(node) in active:  # a recursive alias
            return None
        active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return {k: walk(v) for k, (_, v) in entries(node).items()}
            if isinstance(node, yaml.SequenceNode):
                return [walk(v) for v in node.value]
            return scalar(node)  # type: ignore[arg-type]
        finally:
            active.discard(id(node))

    try:
        return walk(root)
    finally:
        loader.dispose()


def _follow(root: yaml.Node, path: Iterable[Any]) -> tuple[yaml.Node | None, yaml.Node]:
    """(key node, value node) at a JSON path; stops at the deepest node that exists."""
    key: yaml.Node | None = None
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            entry = entries(node).get(step)
            if entry is None:
                break
            key, node = entry
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            key, node = None, node.value[step]
        else:
            break
    return key, node


_TYPE_NAMES = {
    "string": "文字",
    "integer": "整数",
    "number": "数字",
    "boolean": "true 或 false",
    "object": "键值映射",
    "array": "列表",
    "null": "空值",
}


def _zh(text: str) -> str:
    """The Chinese half of a bilingual "中文 / English" schema message."""
    return text.split(" / ")[0].strip()


def _where(path: list[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "规则文件"


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "空值"
    if isinstance(value, bool):
        return "布尔值"
    if isinstance(value, int | float):
        return "数字"
    return _TYPE_NAMES.get(type(value).__name__, "其他类型")


@cache
def _schema() -> _Schema:
    return _Schema(rulefile_schema())


class _Schema:
    """The schema's validators for item, shared list and department files, built once."""

    def __init__(self, schema: dict[str, Any]):
        from jsonschema import Draft202012Validator, FormatChecker
        from referencing import Registry, Resource

        base = schema["$id"]
        registry = Registry().with_resource(base, Resource.from_contents(schema))
        checker = FormatChecker(["date"])

        def validator(ref: str) -> Any:
            return Draft202012Validator(
                {"$ref": f"{base}#/$defs/{ref}"}, registry=registry, format_checker=checker
            )

        self.validators = {k: validator(k) for k in (ITEM_FILE, LIST_FILE, DEPARTMENTS_FILE)}

    def check(
        self, display: str, root: yaml.Node, kind: str, already: set[tuple[int, int]]
    ) -> list[Diagnostic]:
        """MP150 for each schema violation, unless the loader reported a problem at the same
        node (its value or its key), which then already explains it."""
        out: dict[tuple[int, int, str], Diagnostic] = {}
        validator = self.validators[kind]
        for error in validator.iter_errors(_to_instance(root)):
            for node, others, message in self._explain(root, error):
                places = {position(node)} | {position(n) for n in others}
                if places & already:
                    continue
                line, column = position(node)
                out.setdefault(
                    (line, column, message),
                    Diagnostic(display, line, column, "MP150", message),
                )
        return list(out.values())

    def _explain(
        self, root: yaml.Node, error: Any
    ) -> Iterator[tuple[yaml.Node, list[yaml.Node], str]]:
        """(node to report at, other nodes meaning the same place, message) per problem."""
        path = list(error.absolute_path)
        key, node = _follow(root, path)
        where = _where(path)
        near = [key] if key is not None else []
        schema = error.schema if isinstance(error.schema, dict) else {}
        schema_path = list(error.schema_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = schema.get("properties", {})
            keys = entries(node)
            for name in error.instance:
                if name not in known and name in keys:
                    allowed = "、".join(sorted(known))
                    yield keys[name][0], [], f"{where} 中未知的键 {name!r}（可用：{allowed}）"
        elif error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    yield node, [], f"{where} 缺少必填项 {name!r}"
        elif len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
            keys = entries(node)
            name = str(error.instance)
            at = keys[name][0] if name in keys else node
            hint = _zh(schema.get("patternErrorMessage", "格式不对"))
            yield at, [], f"{where} 中的键 {name!r}：{hint}"
        else:
            yield node, near, f"{where} {self._problem(error, node)}"

    @staticmethod
    def _problem(error: Any, node: yaml.Node) -> str:
        schema = error.schema if isinstance(error.schema, dict) else {}
        v = error.validator
        if v == "type":
            expected = error.validator_value
            names = [expected] if isinstance(expected, str) else list(expected)
            want = "或".join(_TYPE_NAMES.get(n, n) for n in names)
            if "string" in names and isinstance(node, yaml.ScalarNode) and not node.style:
                got = _yaml_kind(error.instance)
                if error.instance is None:
                    return f"应为{want}，此处为空"
                return (
                    f"应为{want}，但 YAML 把 {node.value} 读作{got} {error.instance!r}，"
                    f'请加引号写成 "{node.value}"'
                )
            return f"应为{want}"
        if v == "enum":
            return f"应为 {'、'.join(map(str, error.validator_value))} 之一"
        if v == "const":
            return f"应为 {error.validator_value}"
        if v == "pattern":
            return _zh(schema.get("patternErrorMessage", f"不符合格式 {error.validator_value}"))
        if v == "format":
            return "应为有效日期 YYYY-MM-DD"
        if v == "minimum":
            return f"不能小于 {error.validator_value}"
        if v == "not" and "errorMessage" in schema:
            return _zh(schema["errorMessage"])
        return f"不符合规则文件格式（{error.message}）"
