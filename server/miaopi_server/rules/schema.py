"""The rule-file JSON Schema, shipped as package data (docs/rulefile.schema.json links to it
for editors). Loaded through importlib.resources, so it works from any kind of install."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

SCHEMA_FILE = "rulefile.schema.json"


def schema_text() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@functools.cache
def rulefile_schema() -> dict[str, Any]:
    """The parsed schema (draft 2020-12); callers must not mutate it."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema
