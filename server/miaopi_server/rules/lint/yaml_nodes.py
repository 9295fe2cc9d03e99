"""Rule files as YAML node trees, so that lint can report on the line and column of a key or a
value (the loader's parsed model no longer knows where things were written)."""

from __future__ import annotations

from pathlib import Path

import yaml

from miaopi_server.rules.loader import yaml_refusal


def compose_file(path: Path) -> yaml.Node | None:
    """The node tree of a YAML file; None when it is unreadable, not YAML, too large or uses
    anchors / aliases (the loader reports those as MP100 / MP110: walking an aliased tree
    here would expand it, a billion-laughs file into billions of nodes)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        if yaml_refusal(raw, text) is not None:
            return None
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def entries(node: yaml.Node | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's (key node, value node) by key text; the first of duplicate keys wins (as
    in the loader). Anything but a mapping has no entries."""
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value not in out:
                out[k.value] = (k, v)
    return out


def position(node: yaml.Node) -> tuple[int, int]:
    """(line, column) where the node starts, 1-based."""
    return node.start_mark.line + 1, node.start_mark.column + 1
