"""Commands of the local DuckDB store: sql, collect."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
