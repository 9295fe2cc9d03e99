"""The act file `--workers` share (ops/workers.py): what a SIGHUP to a worker stands for."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from miaopi_server.ops.workers import ACT_FILE, current_act, new_act, write_act


def test_an_act_written_is_the_one_read(tmp_path: Path) -> None:
    assert current_act(tmp_path) == ""  # none yet: the reload is the worker's own
    first, second = new_act(), new_act()
    assert first != second and str(uuid.UUID(first)) == first
    write_act(tmp_path, first)
    assert current_act(tmp_path) == first
    write_act(tmp_path, second)
    assert current_act(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [ACT_FILE]  # no part file left


@pytest.mark.parametrize("content", [b"", b"not-an-act", b"\xff\xfe", b"1" * 4096])
def test_an_unreadable_act_is_none(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ACT_FILE).write_bytes(content)
    assert current_act(tmp_path) == ""


@pytest.mark.parametrize("where", ["gone", "a-file"])
def test_an_act_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path: Path, where: str) -> None:
    """A state directory gone, or a file in its place (root writes anywhere else)."""
    (tmp_path / "a-file").write_text("", encoding="ascii")
    with capture_logs() as logs:
        write_act(tmp_path / where, new_act())
    assert [e["event"] for e in logs] == ["workers.act_not_written"]
    assert current_act(tmp_path / where) == ""
