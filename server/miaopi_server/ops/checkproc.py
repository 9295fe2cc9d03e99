"""The child processes that check a staged rule set (ops/gate.py's compile check,
ops/casetests.py's `rules test`): started the one way, so both run on the same code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import miaopi_server


def spawn(argv: list[str]) -> subprocess.Popen[str]:
    """`python argv...` with this interpreter and this very copy of the server first on its
    path; no stdin, UTF-8 pipes (a bad byte replaced, never an error), and a session of its
    own, so a terminal's Ctrl-C is for the server, not the check. OSError if it cannot start."""
    root = str(Path(miaopi_server.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path, "NO_COLOR": "1"},
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
