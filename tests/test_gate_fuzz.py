"""Fuzz harness for rule files, against the isolated check (the rule-set gate).

A seeded generator writes rule sets: forms of every field type (up to 300 fields), names the
engine reserves (`sid`, `_m`, `_p`, `_always`) and CJK names, conditions over the condition
language (comparisons, `in` lists, `contains` / `starts with`, quantifiers, presence,
and / or / not), `or` chains and `in` lists up to past the engine's node table, named lists,
output tables of up to 80 cases, up to 70 materials, up to 300 rules, several items.

Property, for every set: the gate returns a verdict within its deadline (plus start-up
margin) and never raises or takes the caller down; a refusal carries located diagnostics; a
set that passes loads in this process and decides fresh generated cases without an engine
error (what would be INTERNAL).

`make test` runs a few fixed seeds (seconds); `make fuzz` runs for MIAOPI_FUZZ_SECONDS
(default 300) from MIAOPI_FUZZ_SEED (default: the time) and keeps every failing set under
build/fuzz/ with its seed, to replay with `python -m miaopi_server.ops.gate_check DIR`.
"""

from __future__ import annotations

import collections
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.errors import CaseInvalid
from miaopi_server.ops.gate import GatePolicy, Verdict, check
from miaopi_server.rules.samples import sample_cases
from tests.support import ROOT

FUZZ_SECONDS = float(os.environ.get("MIAOPI_FUZZ_SECONDS", "0"))
KEEP = ROOT / "build" / "fuzz"
MARGIN = 10.0  # interpreter start-up and a loaded machine, on top of the deadline

TYPES = ("string", "integer", "number", "boolean", "date", "enum", "string_list",
         "region_code", "resident_id", "credit_code")  # fmt: skip
SUBJECTS = ("a", "b", "申请人", "application")
RESERVED = ("sid", "_m", "_p", "_always", "id")
WORDS = ("南海区", "店", "中国", "x", "A店", "服务", "理发服务", "食品销售", "佛山市南海区")
NUMBERS = ("0", "1", "-3", "2.5", "70", "100", "0.0001", "99999999999")
MISTAKES = (0.0, 0.0, 0.03)  # per set: how often a piece is deliberately wrong
BIG = (64, 65, 254, 256, 300, 511, 600)  # around the engine's limits
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: big sets are written fast


class Maker:
    """One generated rule set; `big` leans towards sizes past the engine's limits."""

    def __init__(self, rng: random.Random, big: bool):
        self.rng = rng
        self.big = big
        self.mistakes = rng.choice(MISTAKES)  # most sets are meant to reach the engine

    def size(self, small: int) -> int:
        if self.big and self.rng.random() < 0.5:
            return self.rng.choice(BIG)
        return self.rng.randint(0, small)

    def wrong(self) -> bool:
        return self.rng.random() < self.mistakes

    def name(self, i: int) -> str:
        roll = self.rng.random()
        if self.wrong():
            return "$x"
        if roll < 0.05:
            return self.rng.choice(RESERVED)
        if roll < 0.1:
            return f"字段{i}"
        if roll < 0.12:
            return "f" * self.rng.choice((60, 300)) + str(i)
        return f"f{i}"

    def form(self) -> dict[str, dict[str, Any]]:
        count = max(1, self.size(6) if not self.big else self.rng.choice((3, 30, 260, 300)))
        fields: dict[str, dict[str, Any]] = {}
        for i in range(count):
            subject = self.rng.choice(SUBJECTS) if self.rng.random() > 0.05 else "_always"
            path = f"{subject}.{self.name(i)}"
            kind = self.rng.choice(TYPES)
            spec: dict[str, Any] = {"type": kind, "label": f"字段{i}"}
            required = self.rng.random() < 0.3
            if required:
                spec["required"] = True
            if kind == "enum":
                spec["values"] = {f"v{j}": f"值{j}" for j in range(self.rng.randint(1, 4))}
            if kind in ("integer", "number") and self.rng.random() < 0.3:
                spec["min"], spec["max"] = 0, self.rng.choice((10, 200, 10**9))
            if kind == "boolean" and (not required or self.wrong()) and self.rng.random() < 0.5:
                spec["default"] = False
            fields[path] = spec
        fields["application.date"] = {"type": "date", "label": "申请日期"}
        return fields

    def const(self, kind: str, fields: dict[str, dict[str, Any]], path: str) -> str:
        if kind in ("integer", "number"):
            return self.rng.choice(("1e-05", "1e20")) if self.wrong() else self.rng.choice(NUMBERS)
        if kind == "date":
            day = "2026-02-29" if self.wrong() else self.rng.choice(("2024-01-01", "2025-06-30"))
            return f'"{day}"'
        if kind == "enum":
            values = list(fields[path].get("values", {"v0": ""}))
            return f'"{"nope" if self.wrong() else self.rng.choice(values)}"'
        if kind == "boolean":
            return self.rng.choice(("true", "false"))
        return f'"{self.rng.choice(WORDS)}"'

    def values(self, kind: str, fields: dict[str, dict[str, Any]], path: str, n: int) -> str:
        if kind in ("integer", "number"):
            return "[" + ", ".join(str(i) for i in range(n)) + "]"
        if kind == "enum" and not self.wrong():
            values = list(fields[path].get("values", {"v0": ""}))
            return "[" + ", ".join(f'"{values[i % len(values)]}"' for i in range(n)) + "]"
        return "[" + ", ".join(f'"w{i}"' for i in range(n)) + "]"

    def leaf(self, fields: dict[str, dict[str, Any]], lists: list[str]) -> str:
        path = self.rng.choice(list(fields))
        kind = fields[path]["type"]
        roll = self.rng.random()
        if roll < 0.08:
            return f"{path} is {self.rng.choice(('missing', 'present', 'not missing'))}"
        if kind == "boolean":
            return self.rng.choice((path, f"not {path}", f"{path} == true"))
        if kind == "string_list":
            quant = self.rng.choice(("any", "all", "no"))
            test = self.rng.choice(
                ('== "x"', 'contains "店"', "is hanzi", f"in {self.values(kind, fields, path, 3)}")
                + ((f"in list {self.rng.choice(lists)}", f"not in list {self.rng.choice(lists)}")
                   if lists else ())
            )  # fmt: skip
            return self.rng.choice((f"{path} is empty", f"{quant} {path} {test}"))
        if roll < 0.35 and kind not in ("boolean", "date"):
            n = self.size(5) or 1
            neg = self.rng.choice(("", "not "))
            if lists and kind not in ("integer", "number", "enum") and self.rng.random() < 0.3:
                return f"{path} {neg}in list {self.rng.choice(lists)}"
            return f"{path} {neg}in {self.values(kind, fields, path, n)}"
        if roll < 0.5 and kind in ("string", "region_code", "resident_id", "credit_code"):
            mode = self.rng.choice(("contains", "starts with", "ends with"))
            return self.rng.choice((f"{path} {mode} any of [\"南海\", \"店\"]",
                                    f"{path} is hanzi", f"{path} is not hanzi"))  # fmt: skip
        ordered = kind in ("integer", "number", "date") or self.wrong()
        op = self.rng.choice(("==", "!=", "<", ">=") if ordered else ("==", "!="))
        return f"{path} {op} {self.const(kind, fields, path)}"

    def condition(self, fields: dict[str, dict[str, Any]], lists: list[str], depth: int) -> str:
        if self.big and depth == 2 and self.rng.random() < 0.15:
            return " or ".join(self.leaf(fields, lists) for _ in range(self.rng.choice(BIG)))
        if depth == 0 or self.rng.random() < 0.4:
            return self.leaf(fields, lists)
        kind = self.rng.randrange(3)
        if kind == 0:
            return f"not ({self.condition(fields, lists, depth - 1)})"
        joiner = " and " if kind == 1 else " or "
        parts = [self.condition(fields, lists, depth - 1) for _ in range(self.rng.randint(2, 3))]
        return "(" + joiner.join(parts) + ")"

    def item(self, code: str) -> dict[str, Any]:
        fields = self.form()
        list_size = self.rng.choice((3, 40, 700, 20_000)) if self.big else 3
        lists = {
            f"L{i}": {"label": f"清单{i}", "values": [f"w{j}" for j in range(list_size)]}
            for i in range(self.rng.randint(0, 2))
        }
        names = list(lists)
        rules = []
        shared = self.condition(fields, names, 2)
        for i in range(max(1, self.size(5))):
            same = self.big and self.rng.random() < 0.5
            rule: dict[str, Any] = {
                "id": f"r{i}",
                "when": shared if same else self.condition(fields, names, 2),
                "outcome": self.rng.choice(("APPROVE", "REJECT", "MANUAL_REVIEW")),
                "message": f"规则{i}",
                "basis": "art1",
            }
            if self.rng.random() < 0.2:
                cases: list[dict[str, Any]] = [
                    {"when": self.condition(fields, names, 1), "value": j}
                    for j in range(self.size(3))
                ]
                rule["outputs"] = {"amount": [*cases, {"value": -1}]}
            rules.append(rule)
        materials = [
            {
                "id": f"m{i}",
                "name": f"材料{i}",
                "need": self.rng.choice(("required", "optional", "deferrable")),
                **({"when": self.condition(fields, names, 1)} if self.rng.random() < 0.4 else {}),
            }
            for i in range(self.size(3))
        ]
        doc: dict[str, Any] = {
            "schema": "miaopi/rulefile/v1",
            "item": {
                "code": code,
                "name": "模糊测试事项",
                "type": "行政给付",
                "department": "测试局",
                "time_limit": {"statutory_working_days": 5, "promised_working_days": 2},
            },
            "version": "1",
            "legal_basis": {"art1": {"law": "测试办法", "article": "第一条"}},
            "form": fields,
            "rules": rules,
        }
        if lists:
            doc["lists"] = lists
        if materials:
            doc["materials"] = materials
            doc["materials_basis"] = "art1"
        return doc


def write_set(root: Path, seed: int, big: bool) -> None:
    rng = random.Random(seed)
    maker = Maker(rng, big)
    root.mkdir(parents=True)
    for i in range(rng.randint(1, 3)):
        doc = maker.item(f"FZ{seed % 10_000:04d}{i}")
        text = yaml.dump(doc, Dumper=DUMPER, allow_unicode=True, sort_keys=False, width=10**9)
        (root / f"item{i}.yaml").write_text(text, encoding="utf-8")


def holds(root: Path, seed: int, policy: GatePolicy) -> Verdict:
    """Check the set under `root` and assert the property; return the verdict."""
    started = time.monotonic()
    verdict = check(root, policy, seed=str(seed))
    took = time.monotonic() - started
    assert took < policy.deadline + MARGIN, f"seed {seed}: the gate took {took:.1f} s"
    if not verdict.passed:
        errors = [d for d in verdict.diagnostics if d.severity == "error"]
        assert errors, f"seed {seed}: refused without an error"
        for d in errors:
            assert re.fullmatch(r"MP\d{3}", d.code) and d.file and d.message, (seed, d)
        return verdict
    assert all(d.severity == "warning" for d in verdict.diagnostics), seed
    catalog = load_catalog(root)  # what the server does with a set that passed
    try:
        for versions in catalog.versions.values():
            for loaded in versions:
                item = loaded.item
                for facts, materials in sample_cases(item, 10, random.Random(f"x{seed}")):
                    try:
                        catalog.decide(item.code, facts, materials, item.starts)
                    except CaseInvalid:
                        continue
    finally:
        catalog.close()
    return verdict


def run_seed(tmp: Path, seed: int, big: bool, policy: GatePolicy) -> Verdict:
    root = tmp / f"set-{seed}" / "rules"
    write_set(root, seed, big)
    try:
        return holds(root, seed, policy)
    except BaseException:
        kept = KEEP / f"seed-{seed}{'-big' if big else ''}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(root, kept)
        raise
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


# Small sets that pass and are refused (statically, MP193); big ones that pass and one that
# runs into the deadline (MP191). About 6 s in all.
QUICK = [(seed, False) for seed in (1, 2, 3, 4, 5, 6)] + [(13, True), (16, True), (18, True)]


@pytest.mark.parametrize(("seed", "big"), QUICK)
def test_gate_gives_a_verdict(tmp_path, seed, big):
    """A few generated sets, small and past the limits: a verdict each, quickly."""
    run_seed(tmp_path, seed, big, GatePolicy(deadline=3, cases=10))


@pytest.mark.skipif(not FUZZ_SECONDS, reason="`make fuzz` runs this (MIAOPI_FUZZ_SECONDS)")
def test_fuzz_for_a_while(tmp_path):
    start_seed = int(os.environ.get("MIAOPI_FUZZ_SEED", str(int(time.time()))))
    policy = GatePolicy(deadline=10, cases=20)
    outcomes: collections.Counter[str] = collections.Counter()
    until = time.monotonic() + FUZZ_SECONDS
    seed = start_seed
    while time.monotonic() < until:
        big = seed % 3 == 0
        verdict = run_seed(tmp_path, seed, big, policy)
        codes = sorted({d.code for d in verdict.diagnostics if d.severity == "error"})
        outcomes["passed" if verdict.passed else "+".join(codes[:3])] += 1
        seed += 1
    print(f"\nfuzz: seeds {start_seed}..{seed - 1}: {dict(outcomes.most_common())}")
