"""Commands that change a database's schema or rows: migrate, seed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dbwire.cli.inspect import ConfigOption, DebugOption, Output, _handled, _opened
from dbwire.errors import ConfigError
from dbwire.seeding import seed as seed_rows
from dbwire.seeding import seed_file


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("migrate")(migrate)
    app.command("seed")(seed)


def migrate(
    name: Annotated[str, typer.Argument(help="The database.")],
    scripts: Annotated[Path, typer.Option("--scripts", help="The Alembic script directory.")],
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Upgrade a database's schema with Alembic, on dbwire's connection."""
    output = Output()
    with _handled(output, debug, name):
        with _opened(output, config, name) as db:
            db.migrate(scripts, revision)
        output.line(f"{name}: migrated to {revision}")


def seed(
    name: Annotated[str, typer.Argument(help="The database.")],
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A JSON or YAML file of {table: [rows]} (YAML needs PyYAML: dbwire[yaml]).",
            show_default=False,
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="module:Base of the declarative base (or module:attr of a list of classes); "
            "without FILE, every class's seed_list is seeded; the current directory is "
            "importable.",
        ),
    ] = None,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Insert seed rows in foreign-key order, all or nothing, skipping existing primary keys."""
    output = Output()
    with _handled(output, debug, name):
        if file is None and models is None:
            raise ConfigError(
                "dbwire seed: give a FILE of {table: [rows]} or --models module:Base "
                "(whose classes carry seed_list)",
                database=name,
            )
        target = _import_object(models) if models is not None else None
        with _opened(output, config, name) as db:
            report = seed_file(db, str(file), target) if file is not None else seed_rows(db, target)
        output.line(f"{name}: seeded {report.summary()}")


def _import_object(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--models {spec!r}: write it as module:Base, e.g. myapp.models:Base")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the project's own package, as `python -m` would see it
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--models {spec!r}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"--models {spec!r}: {module_name} has no {attribute!r}") from None
