"""Engine versus peers (spec part 2): in-process decisions per second per sample item.

Timed loops (per case; the same generated cases for every engine, in the same process and run):
- miaopi:            catalog.decide(code, facts, materials, today) -> Decision. The full domain
                     path: validation of every field, defaults, derived facts, probes, the
                     durable_rules evaluation, assembly of reasons / materials / outputs /
                     review due date. No gRPC, no audit.
- zen-engine:        ZenEngine.evaluate(code, prepared) + aggregate (peers.py).
- rule-engine:       Rule.matches(prepared) for every row + aggregate.
- zen-engine+prepare: the same as zen-engine but building the prepared context (defaults,
                     derived facts with miaopi's identity functions) inside the timed loop.
`prepared` = peers.prepare(...), built outside the peers' timed loops. Before any timing, every
case's (outcome, monthly amount, set of matched rule ids) from each peer must equal miaopi's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.decision.decide import NO_RULE_MATCHED, Decision
from tests.case_generator import ITEMS, SENIOR, generate

from . import profiles
from .common import RULESETS, TODAY, log, median
from .peers import RuleEnginePeer, ZenPeer, prepare


def miaopi_result(d: Decision) -> tuple[str, Any, frozenset[str]]:
    amount = d.outputs.get("monthly_amount")
    return (
        d.outcome,
        amount,
        frozenset(r.rule_id for r in d.reasons if r.rule_id != NO_RULE_MATCHED),
    )


def _same(a: tuple[str, Any, frozenset[str]], b: tuple[str, Any, frozenset[str]]) -> bool:
    amounts_equal = (a[1] is None and b[1] is None) or (
        a[1] is not None and b[1] is not None and float(a[1]) == float(b[1])
    )
    return a[0] == b[0] and amounts_equal and a[2] == b[2]


def run(n_per_item: int = 3000, rounds: int = 5, slow_rounds: int = 3) -> dict[str, Any]:
    catalog = load_catalog(RULESETS)
    zen, rule_engine = ZenPeer(RULESETS), RuleEnginePeer(RULESETS)
    out: dict[str, Any] = {"cases_per_item": n_per_item, "items": {}}
    try:
        for code in ITEMS:
            cases = generate(code, n_per_item, seed=7)
            prepared = [prepare(code, f, m) for f, m in cases]
            # Agreement on every case before anything is timed.
            expected = [miaopi_result(catalog.decide(code, f, m, TODAY)) for f, m in cases]
            agreement: dict[str, int] = {}
            for peer in (zen, rule_engine):
                bad = [
                    (i, exp, got)
                    for i, (ctx, exp) in enumerate(zip(prepared, expected, strict=True))
                    if not _same(exp, got := peer.decide(code, ctx))
                ]
                if bad:
                    i, exp, got = bad[0]
                    raise AssertionError(
                        f"{peer.name} disagrees with miaopi on {len(bad)} {code} cases; first: "
                        f"case {cases[i]}: miaopi {exp}, {peer.name} {got}"
                    )
                agreement[peer.name] = len(prepared)
            outcomes: dict[str, int] = {}
            for o, _, _ in expected:
                outcomes[o] = outcomes.get(o, 0) + 1

            loops: dict[str, Callable[[], None]] = {
                "miaopi": lambda c=code, cs=cases: _loop(
                    lambda facts, mats: catalog.decide(c, facts, mats, TODAY), cs
                ),
                "zen-engine": lambda c=code, p=prepared: _loop1(lambda x: zen.decide(c, x), p),
                "zen-engine+prepare": lambda c=code, cs=cases: _loop(
                    lambda facts, mats: zen.decide(c, prepare(c, facts, mats)), cs
                ),
                "rule-engine": lambda c=code, p=prepared: _loop1(
                    lambda x: rule_engine.decide(c, x), p
                ),
            }
            rates: dict[str, list[float]] = {k: [] for k in loops}
            ratios: dict[str, list[float]] = {"zen-engine": [], "rule-engine": []}
            names = list(loops)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                this: dict[str, float] = {}
                for name in order:
                    if name == "rule-engine" and r >= slow_rounds:
                        continue
                    t0 = time.perf_counter()
                    loops[name]()
                    this[name] = len(cases) / (time.perf_counter() - t0)
                    rates[name].append(this[name])
                for peer in ratios:
                    if peer in this:
                        ratios[peer].append(this["miaopi"] / this[peer])
            out["items"][code] = {
                "cases": len(cases),
                "outcomes": outcomes,
                "agreement_checked": agreement,
                "decisions_per_second": {
                    k: {"median": median(v), "runs": v} for k, v in rates.items()
                },
                "miaopi_over_peer": {
                    k: {"median": median(v), "runs": v} for k, v in ratios.items()
                },
            }
            log(f"engine {code}: " + ", ".join(f"{k} {median(v):,.0f}/s" for k, v in rates.items()))
        senior_cases = generate(SENIOR, n_per_item, seed=7)
        out["senior_stages"] = _stages(catalog, senior_cases, rounds)
        out["senior_cold"] = _cold(catalog, senior_cases[:400], rounds)
        out["profile_senior"] = profiles.cprofile(
            lambda: _loop(lambda f, m: catalog.decide(SENIOR, f, m, TODAY), senior_cases)
        )
    finally:
        catalog.close()
    return out


def _stages(catalog: Any, cases: list[tuple[Any, Any]], rounds: int) -> dict[str, Any]:
    """Each stage of catalog.decide timed alone on the senior cases (inputs of a stage are
    prepared by running the stages before it, outside the timing): how fast could the
    decision be if the other stages cost nothing?"""
    from miaopi_server.decision.decide import assemble
    from miaopi_server.decision.validate import asked_as_of
    from miaopi_server.rules.compile import engine_fact

    loaded = catalog.select(SENIOR, cases[0][0], TODAY)
    compiled, handle, engine = loaded.compiled, loaded.handle, catalog.engine
    validate = loaded.validator  # the item's compiled validation, as catalog.decide runs it
    asked = [(f, m, asked_as_of(f, TODAY)) for f, m in cases]
    validated = [validate(f, m, a) for f, m, a in asked]
    facts = [engine_fact(compiled, c.values, c.materials) for c in validated]
    fired = [set(engine.evaluate(handle, f)) for f in facts]
    stages: dict[str, Callable[[], None]] = {
        "validate (the item's compiled validation, its generated code first: validation, "
        "defaults, derived facts)": (lambda: _loop3(validate, asked)),
        "engine_fact (engine input, probes)": lambda: _loop1(
            lambda c: engine_fact(compiled, c.values, c.materials), validated
        ),
        "Engine.evaluate (durable_rules: JSON, assert, fired rules, retract by id)": lambda: _loop1(
            lambda f: engine.evaluate(handle, f), facts
        ),
        "assemble (reasons, materials, outputs, due date)": lambda: _loop(
            lambda c, fr: assemble(compiled, c, fr), list(zip(validated, fired, strict=True))
        ),
    }
    rates: dict[str, list[float]] = {k: [] for k in stages}
    for _ in range(rounds):
        for name, fn in stages.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(len(cases) / (time.perf_counter() - t0))
    return {
        k: {"median": median(v), "runs": v, "microseconds_each": 1e6 / median(v)}
        for k, v in rates.items()
    }


# Bigger than a core's L1 and L2 together: touching it between two decisions leaves the next
# one to fetch its code and data again, as it must in the server, where each request's gRPC,
# asyncio, protobuf and audit work runs on the same core in between.
EVICT_BYTES = 16 * 1024 * 1024


def _cold(catalog: Any, cases: list[tuple[Any, Any]], rounds: int) -> dict[str, Any]:
    """catalog.decide per decision, back to back (warm) and with the core's caches evicted
    before each one (cold): the in-process rate is a warm figure, the server's is not."""
    junk = bytearray(EVICT_BYTES)
    zeros = bytes(EVICT_BYTES // 64)
    timed: dict[str, list[float]] = {"warm": [], "cold": []}
    for _ in range(rounds):
        for kind in ("warm", "cold"):
            spent = 0.0
            for f, m in cases:
                if kind == "cold":
                    junk[::64] = zeros  # one write per cache line
                t0 = time.perf_counter()
                catalog.decide(SENIOR, f, m, TODAY)
                spent += time.perf_counter() - t0
            timed[kind].append(spent / len(cases) * 1e6)
    warm, cold = median(timed["warm"]), median(timed["cold"])
    return {
        "evict_bytes": EVICT_BYTES,
        "warm_us": warm,
        "cold_us": cold,
        "cold_over_warm": cold / warm,
        "runs_us": timed,
    }


def _loop(fn: Callable[[Any, Any], Any], cases: list[tuple[Any, Any]]) -> None:
    for f, m in cases:
        fn(f, m)


def _loop3(fn: Callable[[Any, Any, Any], Any], xs: list[tuple[Any, Any, Any]]) -> None:
    for a, b, c in xs:
        fn(a, b, c)


def _loop1(fn: Callable[[Any], Any], xs: list[Any]) -> None:
    for x in xs:
        fn(x)
