"""Commands that read the configuration and the databases: list, check, wait, url, query, schema."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
