"""`dbwire init`: a commented dbwire.toml to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbwire.cli.inspect import EXIT_CONFIG, Output
from dbwire.errors import ConfigError

TEMPLATE = """\
# dbwire configuration: one [databases.NAME] table per database.
# Found in this folder or a parent, or named with --config / $DBWIRE_CONFIG.
# Never write a password here: dbwire reads .pgpass, PG* variables, MySQL option
# files, password_file, password_command, password_provider (env, file, command,
# keyring, aws_secrets_manager, rds_iam) and DBWIRE_<NAME>__PASSWORD.

[databases.main]
url = "postgresql://app@localhost:5432/app"   # or mysql://, sqlite:///file.db, duckdb:///file.duckdb
# pool_size = 5            # connections kept open
# connect_timeout = 10     # seconds before a connect gives up
# readonly = false         # true: writes refused by the database and a statement guard
# create_db = false        # true: create the database on first connect if it is missing
# env_prefix = "APP_DB"    # APP_DB_HOST, APP_DB_PASSWORD ... override this table
# password_provider = {type = "aws_secrets_manager", secret_id = "prod/app/db", ttl = 300}

# [databases.cache]
# url = "sqlite:///${CACHE_DIR:-.}/cache.db"   # relative to this file; ${VAR:-default} expands
"""


def register(app: typer.Typer) -> None:
    """Add `dbwire init` to the app."""
    app.command("init")(init)


def init(
    path: Annotated[
        Path, typer.Argument(help="Where to write it (default: ./dbwire.toml).")
    ] = Path("dbwire.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    alembic: Annotated[
        Path | None,
        typer.Option(
            "--alembic",
            help="Also write an Alembic script directory here (env.py runs on dbwire's "
            "connection, no edit needed).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a commented dbwire.toml to start from (never overwrites without --force)."""
    output = Output()
    if path.exists() and not force:
        output.error(f"{path} exists; pass --force to overwrite it")
        raise typer.Exit(EXIT_CONFIG)
    env = _write_alembic(output, alembic) if alembic is not None else None
    path.write_text(TEMPLATE, encoding="utf-8")
    output.line(f"wrote {path}: edit the url, then run: dbwire check")
    if env is not None and alembic is not None:
        output.line(
            f"wrote {env}: add a revision with `alembic -c {alembic / 'alembic.ini'} "
            "revision -m ...`, then run: dbwire migrate main --scripts " + str(alembic)
        )


ALEMBIC_INI = """\
# Alembic settings for `alembic revision`; `dbwire migrate` supplies the connection itself.
[alembic]
script_location = %(here)s
prepend_sys_path = .
"""


def _write_alembic(output: Output, directory: Path) -> Path:
    from dbwire.migrate import write_env_py

    try:
        env = write_env_py(directory)
    except ConfigError as exc:
        output.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None
    ini = directory / "alembic.ini"
    if not ini.exists():
        ini.write_text(ALEMBIC_INI, encoding="utf-8")
    return env
