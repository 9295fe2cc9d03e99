"""Fixtures shared across the suite: the shipped catalog on the real durable_rules engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from miaopi_server.catalog import Catalog, load_catalog
from miaopi_server.decide import Decision

from tests.support import RULESETS

TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="session")
def catalog() -> Iterator[Catalog]:
    cat = load_catalog(RULESETS)
    yield cat
    cat.close()


@pytest.fixture()
def decide(catalog: Catalog):  # type: ignore[no-untyped-def]
    def run(code: str, facts: dict[str, Any], materials: list[str]) -> Decision:
        return catalog.decide(code, facts, materials, TODAY)

    return run
