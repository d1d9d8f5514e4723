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
    revision: Annotated[
        str,
        typer.Argument(
            help="Target revision: head (default), an id, base; below the current one "
            "it downgrades."
        ),
    ] = "head",
    scripts: Annotated[
        Path, typer.Option("--scripts", help="The Alembic script directory.")
    ] = Path("migrations"),
    revision_option: Annotated[
        str | None, typer.Option("--revision", help="Target revision (same as REVISION).")
    ] = None,
    downgrade: Annotated[
        bool, typer.Option("--downgrade", help="Downgrade to REVISION (default -1).")
    ] = False,
    current: Annotated[bool, typer.Option("--current", help="Show the current revision.")] = False,
    history: Annotated[bool, typer.Option("--history", help="List the revisions.")] = False,
    stamp: Annotated[
        bool, typer.Option("--stamp", help="Record REVISION as current without running it.")
    ] = False,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it (offline).")
    ] = False,
    init: Annotated[
        bool,
        typer.Option("--init", help="Write an env.py for dbwire into --scripts, then stop."),
    ] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Migrate a database's schema with Alembic, on dbwire's connection."""
    from dbwire.migrate import current as current_heads
    from dbwire.migrate import downgrade as downgrade_to
    from dbwire.migrate import history as revision_history
    from dbwire.migrate import migrate as migrate_to
    from dbwire.migrate import stamp as stamp_as
    from dbwire.migrate import write_env_py

    output = Output()
    with _handled(output, debug, name):
        target = revision_option or revision
        if sum((downgrade, current, history, stamp, sql, init)) > 1:
            raise ConfigError(
                "dbwire migrate: pick one of --downgrade, --current, --history, --stamp, "
                "--sql, --init",
                database=name,
            )
        if init:
            env = write_env_py(scripts)
            output.line(f"wrote {env}; add revisions with `alembic revision -m ...`")
            return
        with _opened(output, config, name) as db:
            if current:
                heads = current_heads(db, scripts)
                output.line(f"{name}: at {', '.join(heads) if heads else 'base'}")
                return
            if history:
                for line in revision_history(db, scripts):
                    output.line(line)
                return
            if sql:
                result = migrate_to(db, scripts, target, sql=True)
                sys.stdout.write(output.clean(result.sql or ""))
                return
            if stamp:
                result = stamp_as(db, scripts, target)
                output.line(f"{name}: stamped {result.describe(target).split(' ', 1)[1]}")
                return
            if downgrade:
                down_to = "-1" if target == "head" else target
                result = downgrade_to(db, scripts, down_to)
                output.line(f"{name}: {result.describe(down_to)}")
                return
            result = migrate_to(db, scripts, target)
            output.line(f"{name}: {result.describe(target)}")


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
