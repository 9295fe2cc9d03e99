"""Placeholder: being written."""

from typing import Any


def add_parsers(rsub: Any) -> None:
    """Register this module's `miaopi rules` subcommands."""
