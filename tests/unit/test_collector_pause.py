"""Loading pauses the cyclic garbage collector and always puts it back as it was."""

from __future__ import annotations

import gc
import threading

import pytest
from tests.support import RULESETS

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.errors import RuleFileError
from miaopi_server.rules.directory import collector_paused


def test_paused_during_and_restored_after_nested_and_concurrent_pauses():
    assert gc.isenabled()
    seen: list[bool] = []
    inside = threading.Barrier(2)

    def other() -> None:
        with collector_paused():
            inside.wait()
            seen.append(gc.isenabled())
            inside.wait()

    t = threading.Thread(target=other)
    with collector_paused():
        t.start()
        inside.wait()
        with collector_paused():
            seen.append(gc.isenabled())
        inside.wait()
        t.join()
        seen.append(gc.isenabled())  # the other thread's pause ended first
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_left_disabled_when_it_was_disabled():
    gc.disable()
    try:
        load_catalog(RULESETS).close()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_restored_when_loading_fails(tmp_path):
    (tmp_path / "bad.yaml").write_text("code: [", encoding="utf-8")
    with pytest.raises(RuleFileError):
        load_catalog(tmp_path)
    assert gc.isenabled()
