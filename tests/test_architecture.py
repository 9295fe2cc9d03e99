"""The import direction of docs/ARCHITECTURE.md, enforced on every import of every module of
the server and the client, including imports inside functions."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"miaopi_server": ROOT / "server", "miaopi_client": ROOT / "clients"}

# Lowest first; a module may import its own package and lower layers only.
LAYERS: list[tuple[str, ...]] = [
    ("miaopi_server.errors", "miaopi_server.clock"),
    ("miaopi_server.lang",),
    ("miaopi_server.sources",),
    ("miaopi_server.rules",),
    ("miaopi_server.decision",),
    ("miaopi_server.casework",),
    ("miaopi_server.audit",),
    ("miaopi_server.ops",),
    ("miaopi_server.edge", "miaopi_server.notice"),
    ("miaopi_server.app", "miaopi_server.settings", "miaopi_server.offline"),
    ("miaopi_client",),
]
CLIENT_MAY_IMPORT = {"miaopi_server.offline"}
# Third-party modules (by top-level name) and the only places that may import them.
CONFINED = {
    "durable": ("miaopi_server.decision.engine",),
    "durable_rules_engine": ("miaopi_server.decision.engine",),
    "grpc": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "grpc_status": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "grpc_health": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "grpc_reflection": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "google": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "miaopi": ("miaopi_server.edge", "miaopi_server.app", "miaopi_client"),
    "sqlite3": ("miaopi_server.audit", "miaopi_server.sources.embedded", "miaopi_client"),
    # The shared audit store's driver: only its package (docs/AUDIT.md).
    "psycopg": ("miaopi_server.audit.postgres",),
    "psycopg_pool": ("miaopi_server.audit.postgres",),
    # the decision notice's PDF, QR code and attachment: presentation, in one package
    "reportlab": ("miaopi_server.notice",),
    "segno": ("miaopi_server.notice",),
    "pypdf": ("miaopi_server.notice",),
    "prometheus_client": ("miaopi_server.ops.metrics",),
    # The web console's HTTP server and templates (docs/CONSOLE.md).
    "aiohttp": ("miaopi_server.edge.console",),
    "jinja2": ("miaopi_server.edge.console",),
}
# Connectors do I/O: only the code that runs lookups before a decision may import them, so the
# decision itself cannot fetch anything (it receives what was looked up as data).
CONNECTORS = ("miaopi_server.sources.embedded", "miaopi_server.sources.http")
MAY_CONNECT = (
    "miaopi_server.sources",
    "miaopi_server.ops",
    "miaopi_server.edge",
    "miaopi_server.app",
    "miaopi_server.offline",
)
NO_LOGGING = (
    "miaopi_server.lang",
    "miaopi_server.sources",
    "miaopi_server.rules",
    "miaopi_server.decision",
    "miaopi_server.casework",
    "miaopi_server.audit",
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the absolute name imported (a module, or a module's attribute)
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def modules() -> dict[str, Path]:
    found = {}
    for package, base in SOURCES.items():
        for path in sorted((base / package).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):  # every import, at any depth
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            if prefix == "__future__":
                continue
            # `from pkg import name`: name may be a submodule; count it as pkg.name
            out += [Import(module, f"{prefix}.{a.name}", node.lineno) for a in node.names]
    return out


ALL_IMPORTS = [i for m, p in MODULES.items() for i in imports_of(m, p)]


def layer_of(name: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in layer):
            return index
    return None


def package_of(name: str) -> str:
    """The unit a module may always import within: its stage package, or itself."""
    for layer in LAYERS:
        for p in layer:
            if name == p or name.startswith(p + "."):
                return p
    return name


def within(name: str, places: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in places)


class TestImportDirection:
    def test_every_module_has_a_layer(self):
        """A new module or package must be placed in the layer list (and in ARCHITECTURE.md)."""
        assert [m for m in MODULES if m != "miaopi_server" and layer_of(m) is None] == []

    def test_the_scan_sees_imports_inside_functions(self):
        """Guard for the guard: the lazy imports of the client are found."""
        lazy = [i for i in ALL_IMPORTS if i.module.startswith("miaopi_client")]
        assert any(i.target.startswith("miaopi_server.offline") for i in lazy)
        assert len(ALL_IMPORTS) > 300

    def test_no_import_runs_up_the_layers(self):
        """Lower layers never import higher ones, at module level or inside functions."""
        upward = []
        for i in ALL_IMPORTS:
            src, dst = layer_of(i.module), layer_of(i.target)
            if src is None or dst is None or package_of(i.module) == package_of(i.target):
                continue
            if dst > src:
                upward.append(str(i))
        assert upward == []

    def test_client_uses_only_the_offline_module(self):
        """The client package reaches the server through miaopi_server.offline alone."""
        crossing = [
            str(i)
            for i in ALL_IMPORTS
            if i.module.startswith("miaopi_client")
            and within(i.target, {"miaopi_server"})
            and not within(i.target, CLIENT_MAY_IMPORT)
            and i.target != "miaopi_server.offline"
        ]
        assert crossing == []

    def test_no_private_name_crosses_modules(self):
        """`from x import _name` only within one module's own package-private helpers: never
        across stage packages or from the client into anything."""
        private = [
            str(i)
            for i in ALL_IMPORTS
            if i.target.rsplit(".", 1)[-1].startswith("_")
            and not i.target.rsplit(".", 1)[-1].startswith("__")
            and within(i.target, {"miaopi_server", "miaopi_client"})
        ]
        assert private == []

    @pytest.mark.parametrize("library", sorted(CONFINED))
    def test_third_party_stays_in_its_place(self, library):
        """The engine, gRPC/protobuf and SQLite are imported only where the map says."""
        outside = [
            str(i)
            for i in ALL_IMPORTS
            if i.target.split(".")[0] == library and not within(i.module, CONFINED[library])
        ]
        assert outside == []

    def test_connectors_are_not_reachable_from_the_decision(self):
        """Rules and the decision get looked-up facts as data; they never import a connector."""
        reaching = [
            str(i)
            for i in ALL_IMPORTS
            if within(i.target, CONNECTORS) and not within(i.module, MAY_CONNECT)
        ]
        assert reaching == []

    def test_domain_code_does_not_log(self):
        """lang, rules, decision and audit return what happened; the edges log it."""
        logging = [
            str(i)
            for i in ALL_IMPORTS
            if i.target.split(".")[0] in ("structlog", "logging") and within(i.module, NO_LOGGING)
        ]
        assert logging == []

    def test_offline_module_declares_its_names(self):
        """offline.py re-exports a short, sorted __all__; each name loads from the module its
        type annotations say."""
        from miaopi_server import offline

        assert offline.__all__ == sorted(offline.__all__) == sorted(offline._HOME)
        assert all(hasattr(offline, n) for n in offline.__all__)
        # The type checkers' view (the TYPE_CHECKING imports) names the same modules.
        typed = {
            i.target.rsplit(".", 1)[1]: i.target.rsplit(".", 1)[0]
            for i in ALL_IMPORTS
            if i.module == "miaopi_server.offline" and i.target.startswith("miaopi_server.")
        }
        assert typed == offline._HOME


class TestArchitectureDocument:
    def test_layer_list_matches_the_document(self):
        """The numbered layer list in docs/ARCHITECTURE.md is the one enforced here."""
        text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
        block = text.split("<!-- layers:", 1)[1].split("\n\n", 1)[0]
        documented = [
            tuple(re.findall(r"`(miaopi_\w+(?:\.\w+)*)`", line.split("(", 1)[0]))
            for line in block.splitlines()
            if re.match(r"\d+\. ", line)
        ]
        assert documented == LAYERS

    def test_every_stage_package_is_in_the_document(self):
        """Each package of the server has a row in the document's table."""
        text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
        packages = sorted(
            p.name
            for p in (SOURCES["miaopi_server"] / "miaopi_server").iterdir()
            if (p / "__init__.py").exists()
        )
        assert [p for p in packages if f"`{p}/`" not in text] == []


class TestSuiteIndependence:
    def test_test_modules_do_not_import_each_other(self):
        """Shared test helpers live in tests/support.py or conftest.py, never in a test module;
        and the suite does not depend on the benchmarks."""
        tests = ROOT / "tests"
        crossing = []
        for path in sorted(tests.rglob("*.py")):
            if "bench" in path.relative_to(tests).parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for i in imports_of(module, path):
                parts = i.target.split(".")
                if (
                    parts[0] == "tests"
                    and len(parts) > 1
                    and (parts[1].startswith("test_") or parts[1] in ("bench", "unit"))
                ):
                    crossing.append(str(i))
        assert crossing == []

    def test_suite_reads_nothing_outside_the_repository(self):
        """A clone with no ../shared beside it passes: no test names a path above the repo."""
        outside = [
            str(p.relative_to(ROOT))
            for p in sorted((ROOT / "tests").rglob("*.py"))
            if p != Path(__file__).resolve()
            and re.search(r"[\"']shared[\"']|\.\./shared", p.read_text(encoding="utf-8"))
        ]
        assert outside == []
