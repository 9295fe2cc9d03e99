"""Connection options in the same position for every command: before the command, after it,
or after a nested one (`audit verify`, `review list`, `rules show` ...). And the README's
remote replay, against a server wired like `make run` (development credentials, registry)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from miaopi_client.cli import build_parser, main
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import EXAMPLES, REGISTRY, RULESETS

CONNECTION = ("--target", "--timeout", "--token", "--token-file", "--dev-tokens", "--tls-ca",
              "--tls-cert", "--tls-key")  # fmt: skip


def _leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [
        leaf for name, child in subs[0].choices.items() for leaf in _leaves(child, (*path, name))
    ]


def _parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    p = build_parser()
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return p


def test_every_command_takes_every_connection_option() -> None:
    leaves = _leaves(build_parser())
    assert ("audit", "verify") in leaves and ("review", "list") in leaves and ("kpi",) in leaves
    assert ("rules", "show") in leaves and ("rules", "lint") in leaves and ("alerts",) in leaves
    missing = {
        " ".join(path): [o for o in CONNECTION if o not in _parser_at(path)._option_string_actions]
        for path in leaves
    }
    assert {k: v for k, v in missing.items() if v} == {}


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server as `make run` starts one: the shipped rules, the registry, development
    credentials written under var/ (no --credentials, authentication on)."""
    work = tmp_path_factory.mktemp("make-run")
    settings = Settings(
        listen="127.0.0.1:0", rulesets=RULESETS, state_dir=work / "var", registry=REGISTRY
    )
    live = LiveServer(settings, auth=True)
    live.work = work  # type: ignore[attr-defined]
    yield live
    live.stop()


def test_readme_replay_against_make_run(
    make_run: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The README's `miaopi replay <examples.jsonl> --target 127.0.0.1:50051`, from the
    directory `make run` serves from (the CLI finds var/dev-tokens.json there)."""
    monkeypatch.chdir(make_run.work)
    monkeypatch.delenv("MIAOPI_TOKEN", raising=False)
    monkeypatch.delenv("MIAOPI_TARGET", raising=False)
    assert main(["replay", str(EXAMPLES), "--target", make_run.target]) == 0
    assert "13 通过 passed, 0 失败 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["items"],
        ["status"],
        ["audit", "verify"],
        ["audit", "key"],
        ["review", "list"],
        ["alerts"],
        ["kpi", "--month", "2026-11"],
    ],
)
def test_connection_options_before_or_after(
    make_run: Any, command: list[str], tmp_path: Path, capsys: Any
) -> None:
    """The same command with the connection options before it and after it: same answer.
    The token comes from a file (--token-file) in both positions."""
    tokens = json.loads((make_run.work / "var" / "dev-tokens.json").read_text(encoding="utf-8"))
    role = {"items": "window", "status": "admin", "audit": "admin"}.get(command[0], "supervisor")
    token_file = tmp_path / "token"
    token_file.write_text(tokens[role] + "\n", encoding="utf-8")
    conn = ["--target", make_run.target, "--token-file", str(token_file)]
    assert main([*conn, *command]) == 0
    before = capsys.readouterr().out
    assert main([*command, *conn]) == 0
    after = capsys.readouterr().out
    if command[0] != "status":  # status prints the times it was asked at
        assert before == after
    else:
        assert before.splitlines()[0] == after.splitlines()[0]


def test_offline_source_and_target_exclude_each_other(capsys: Any) -> None:
    assert main(["--target", "127.0.0.1:1", "audit", "verify", "--db", "x.sqlite3"]) == 2
    assert "give --target or --db, not both" in capsys.readouterr().err
    assert main(["replay", str(EXAMPLES), "--rulesets", str(RULESETS), "--target", "h:1"]) == 2
    assert "give --target or --rulesets, not both" in capsys.readouterr().err


def test_window_id_before_or_after(
    make_run: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """--window-id goes where the connection options go; for the commands that send cases."""
    monkeypatch.chdir(make_run.work)
    conn = ["--target", make_run.target]
    assert main([*conn, "--window-id", "DEV-WINDOW-01", "replay", str(EXAMPLES)]) == 0
    assert main(["replay", str(EXAMPLES), "--window-id", "DEV-WINDOW-01", *conn]) == 0
    capsys.readouterr()
    # Another window than the authenticated one is refused, in either position.
    assert main([*conn, "--window-id", "W-OTHER", "replay", str(EXAMPLES)]) == 1
    assert main(["replay", str(EXAMPLES), *conn, "--window-id", "W-OTHER"]) == 1
    assert capsys.readouterr().err.count("PERMISSION_DENIED") == 2
    assert main(["--window-id", "W-1", "items", *conn]) == 2
    assert "--window-id is for decide and replay, not items" in capsys.readouterr().err
