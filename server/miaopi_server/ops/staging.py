"""Copies of rule sets under the state directory: the one being checked, and the last good.

A set goes live from a private copy, never from the rules directory itself: the files an
author is editing could change between the gate's check and the load, and the bytes that
serve must be the bytes that passed. Layout, under `<state_dir>/rulesets/`:

    <digest16>/<name>/...   a staged copy (the rule, list and case files of the directory `name`)
    last-good.json          which staged copy last passed the gate and went live, and from where

The copy keeps the directory's name, so file names in diagnostics and decisions are the
same as when the directory itself is read. Several processes (`--workers`) may stage the same
set at once: each copies into a private temporary directory and renames it into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from miaopi_server.errors import Diagnostic, RuleFileError

STAGED_DIR = "rulesets"
LAST_GOOD = "last-good.json"
KEEP_SECONDS = 600.0  # a staged copy is only read while it is checked and loaded
# Case files, as `miaopi rules test` finds them (clients/miaopi_client/authoring_tools.py).
# Only these: another JSONL beside the rules (an export of real decisions) would otherwise
# be run, archived for good and served by GetPublishedRules.
CASES_SUFFIX = ".cases.jsonl"


@dataclass(frozen=True)
class Staged:
    path: Path  # the copy's root, named like the original directory
    digest: str  # set_digest(): over the name and every copied file's relative path and bytes

    def texts(self) -> dict[str, str]:
        """Every file of the copy by "<name>/<relative path>" (the form decisions name their
        rule file in), as text, byte for byte: what the archive keeps. Raises OSError,
        UnicodeDecodeError."""
        return {
            f"{self.path.name}/{p.relative_to(self.path)}": p.read_bytes().decode("utf-8")
            for p in set_files(self.path)
        }


@dataclass(frozen=True)
class LastGood:
    staged: Staged
    source: str  # the rules directory it was copied from (resolved)
    saved_at: str  # ISO 8601, UTC


def set_files(root: Path) -> list[Path]:
    """What a set is: the rule files and shared lists the loader reads, and the case files
    (`*.cases.jsonl`) its own `rules test` runs; nothing else is copied or archived."""
    return sorted(
        p
        for p in root.rglob("*")
        if (p.suffix in (".yaml", ".yml") or p.name.endswith(CASES_SUFFIX)) and p.is_file()
    )


def set_digest(name: str, files: list[tuple[str, bytes]]) -> str:
    """The digest of a set: over its directory name and every file's relative path and bytes,
    in path order. The archive (GetPublishedRules) is keyed by it; anyone holding the files
    can recompute it."""
    h = hashlib.sha256(name.encode() + b"\0")
    for rel, data in sorted(files):
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return "sha256:" + h.hexdigest()


def _surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escaped(rel: Path) -> str:
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def stage(root: Path, state_dir: Path) -> Staged:
    """Copy the rule files under `root` into the state directory; raises OSError."""
    base = state_dir / STAGED_DIR
    base.mkdir(parents=True, exist_ok=True)
    name = root.resolve().name or "rulesets"
    tmp = base / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    files: list[tuple[str, bytes]] = []
    found = set_files(root)
    # A name that is not UTF-8 (a file copied from another system) cannot be digested,
    # archived or named in a decision; it was a UnicodeEncodeError traceback ending the reload
    # with an unlocated message. Every such file is named, its bytes escaped.
    unnamed = [
        Diagnostic(f"{name}/{_escaped(p.relative_to(root))}", 1, 1, "MP100",
                   "文件名不是 UTF-8 编码：请改名")
        for p in found
        if _surrogates(str(p.relative_to(root)))
    ]  # fmt: skip
    if unnamed:
        raise RuleFileError(unnamed)
    try:
        for path in found:
            rel = path.relative_to(root)
            data = path.read_bytes()
            files.append((str(rel), data))
            target = tmp / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (tmp / name).mkdir(parents=True, exist_ok=True)  # an empty set stages too
        digest = set_digest(name, files)
        final = base / digest[7:23]
        try:
            tmp.rename(final)
        except OSError:  # already staged (same bytes): keep that copy, mark it as in use
            if not (final / name).is_dir():
                raise
            os.utime(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Staged(final / name, digest)


def remember_good(state_dir: Path, staged: Staged, source: Path) -> None:
    """Record `staged` as the last set that passed the gate and went live; prune old copies."""
    base = state_dir / STAGED_DIR
    record = {
        "path": str(staged.path.relative_to(base)),
        "digest": staged.digest,
        "source": str(source.resolve()),
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = base / f".{LAST_GOOD}.{os.getpid()}"
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, base / LAST_GOOD)
    _prune(base, keep=staged.path.parent)


def last_good(state_dir: Path, source: Path) -> LastGood | None:
    """The last set that went live from the rules directory `source`, if its copy is intact."""
    base = state_dir / STAGED_DIR
    try:
        record = json.loads((base / LAST_GOOD).read_text(encoding="utf-8"))
        path = base / record["path"]
        if record["source"] != str(source.resolve()) or not path.is_dir():
            return None
        return LastGood(Staged(path, record["digest"]), record["source"], record["saved_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prune(base: Path, keep: Path) -> None:
    """Remove staged copies other than `keep` that no process can still be reading."""
    horizon = time.time() - KEEP_SECONDS
    for entry in base.iterdir():
        if entry == keep or not entry.is_dir():
            continue
        try:
            if entry.stat().st_mtime < horizon:
                shutil.rmtree(entry)
        except OSError:
            continue  # another process pruned it first
