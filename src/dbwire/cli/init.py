"""`dbwire init`: a commented dbwire.toml to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbwire.cli.inspect import EXIT_CONFIG, Output

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
) -> None:
    """Write a commented dbwire.toml to start from (never overwrites without --force)."""
    output = Output()
    if path.exists() and not force:
        output.error(f"{path} exists; pass --force to overwrite it")
        raise typer.Exit(EXIT_CONFIG)
    path.write_text(TEMPLATE, encoding="utf-8")
    output.line(f"wrote {path}: edit the url, then run: dbwire check")
