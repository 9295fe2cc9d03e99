"""The wheel: built from the project, installed into a fresh venv, it must work without the
source tree (package data such as the rule-file JSON Schema and the generated proto modules
ship inside it).

Nothing is downloaded: the wheel is built without build isolation (setuptools comes with the
dev install) and installed with --no-deps --no-index. The fresh venv sees the dependencies
already installed for this interpreter through a .pth file naming its site-packages; a plain
path line adds only that directory, not the .pth files in it, so the project's own editable
install stays invisible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from miaopi_server.rules.schema import rulefile_schema
from tests.support import ROOT

pytestmark = pytest.mark.slow

# Left out of the copy the wheel is built from: local state and earlier build output (a stale
# build/lib would end up in the wheel and could hide a file the build no longer picks up).
_ROOT_SKIPPED = {".git", ".venv", "build", "var", ".hypothesis", ".pytest_cache", ".ruff_cache"}
_SCHEMA_IN_WHEEL = "miaopi_server/rules/rulefile.schema.json"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    outside: Path  # a working directory outside the repository

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONNOUSERSITE"] = "1"
        return _run([str(self.venv / "bin" / program), *args], cwd=self.outside, env=env)


def _run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _check(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _copy_project(dest: Path) -> Path:
    def skipped(folder: str, names: list[str]) -> set[str]:
        at_root = Path(folder) == ROOT
        return {
            n
            for n in names
            if n == "__pycache__" or n.endswith(".egg-info") or (at_root and n in _ROOT_SKIPPED)
        }

    shutil.copytree(ROOT, dest, symlinks=True, ignore=skipped)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    source = _copy_project(tmp / "source")
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _check(
        _run(
            [
                *pip,
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                str(dist),
                ".",
            ],
            cwd=source,
        ),
        "pip wheel",
    )
    wheels = sorted(dist.glob("miaopi-*.whl"))
    assert len(wheels) == 1, f"expected one miaopi wheel in {dist}, found {wheels}"

    venv = tmp / "venv"
    _check(_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp), "venv")
    python = str(venv / "bin" / "python")
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = Path(_check(_run([python, "-c", purelib], cwd=tmp), "venv purelib").strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "miaopi-test-dependencies.pth").write_text(
        "".join(f"{p}\n" for p in sorted(ours)), encoding="utf-8"
    )
    _check(
        _run(
            [*pip, "--python", python, "install", "--no-deps", "--no-index", str(wheels[0])],
            cwd=tmp,
        ),
        "pip install",
    )
    outside = tmp / "elsewhere"
    outside.mkdir()
    return Installed(wheels[0], venv, site_packages, outside)


def test_wheel_holds_proto_contract_generated_code_and_schema(installed: Installed) -> None:
    proto = ROOT / "proto"
    # The .proto, its generated _pb2 / _pb2_grpc modules and stubs, the package __init__ files.
    contract = {
        p.relative_to(proto).as_posix()
        for p in proto.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {"miaopi/v1/approval.proto", "miaopi/v1/approval_pb2_grpc.py"} <= contract
    code = {
        p.relative_to(ROOT / side).as_posix()
        for side, package in (("server", "miaopi_server"), ("clients", "miaopi_client"))
        for p in (ROOT / side / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert "miaopi_server/rules/lint/run.py" in code
    console = ROOT / "server" / "miaopi_server" / "edge" / "console"
    pages = {  # the web console's templates, stylesheet and script
        p.relative_to(ROOT / "server").as_posix()
        for p in (*console.glob("templates/*"), *console.glob("static/*"))
    }
    assert "miaopi_server/edge/console/static/console.js" in pages
    with zipfile.ZipFile(installed.wheel) as wheel:
        missing = (contract | code | pages | {_SCHEMA_IN_WHEEL}) - set(wheel.namelist())
        assert not missing, f"missing from {installed.wheel.name}: {sorted(missing)}"
        schema_bytes = wheel.read(_SCHEMA_IN_WHEEL)
    assert schema_bytes == (ROOT / "server" / _SCHEMA_IN_WHEEL).read_bytes()


def test_installed_package_is_the_wheel_not_the_source_tree(installed: Installed) -> None:
    script = (
        "import miaopi.v1.approval_pb2 as pb, miaopi_client, miaopi_server, "
        "miaopi_server.rules.schema as s; "
        "print(miaopi_server.__file__); print(miaopi_client.__file__); print(pb.__file__); "
        "print(s.rulefile_schema()['$id'])"
    )
    *files, schema_id = _check(installed.run("python", "-c", script), "import").splitlines()
    assert len(files) == 3
    for f in map(Path, files):
        assert f.is_relative_to(installed.site_packages), f"{f} is not from the wheel's venv"
    assert schema_id == rulefile_schema()["$id"]


def test_installed_cli_lints_the_shipped_rulesets(installed: Installed) -> None:
    proc = installed.run("miaopi", "rules", "lint", str(ROOT / "rulesets"))
    out = _check(proc, "miaopi rules lint")
    assert out.splitlines()[-1].startswith("0 errors, "), out
