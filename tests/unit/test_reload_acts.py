"""The act file `--workers` share (ops/workers.py): what a SIGHUP to a worker stands for."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from miaopi_server.ops.workers import (
    ACT_FILE,
    SighupActs,
    clear_act,
    current_act,
    new_act,
    write_act,
)


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


def test_a_sighup_stands_for_a_new_act_once(tmp_path: Path) -> None:
    """An act this worker read at an earlier SIGHUP is not the new one (the supervisor could
    not write it, or the worker was signalled directly): that reload is the worker's own."""
    acts = SighupActs(tmp_path)
    assert acts.next() == ""
    first, second = new_act(), new_act()
    write_act(tmp_path, first)
    assert (acts.next(), acts.next()) == (first, "")
    write_act(tmp_path, second)
    assert (acts.next(), acts.next()) == (second, "")
    write_act(tmp_path, first)  # an old act again: read before
    assert acts.next() == ""
    other = SighupActs(tmp_path)  # another worker: each reads each act once
    assert other.next() == first


def test_an_act_that_cannot_be_written_takes_the_old_one_away(tmp_path: Path) -> None:
    """The workers then read none and each records its own reload: never a reload recorded
    under an older act's name. No part file is left behind."""
    old = new_act()
    write_act(tmp_path, old)
    (tmp_path / f"{ACT_FILE}.{os.getpid()}.part").mkdir()  # where the next one is written
    with capture_logs() as logs:
        write_act(tmp_path, new_act())
    assert [e["event"] for e in logs] == ["workers.act_not_written"]
    assert current_act(tmp_path) == ""
    (tmp_path / f"{ACT_FILE}.{os.getpid()}.part").rmdir()
    (tmp_path / ACT_FILE).mkdir()  # the act file's own place taken: the rename fails
    with capture_logs() as logs:
        write_act(tmp_path, new_act())
    assert [e["event"] for e in logs] == ["workers.act_not_written", "workers.act_not_cleared"]
    assert current_act(tmp_path) == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [ACT_FILE]


def test_a_supervisor_starts_with_no_act(tmp_path: Path) -> None:
    write_act(tmp_path, new_act())
    clear_act(tmp_path)
    assert current_act(tmp_path) == "" and not (tmp_path / ACT_FILE).exists()
    clear_act(tmp_path)  # none: nothing to do
