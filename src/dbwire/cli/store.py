"""Commands of the local DuckDB store: sql (cross-database SQL) and collect."""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from dbwire.cli.inspect import ConfigOption, DebugOption, Format, Output, _handled, _load
from dbwire.config import Config
from dbwire.database import Database, connect
from dbwire.errors import DbwireError
from dbwire.store.collect import CollectProgress
from dbwire.store.local import LocalStore, get_duckdb_connection

_QUIT = {".quit", ".exit", "\\q", "quit", "exit"}


class Mode(enum.StrEnum):
    """How `dbwire collect` fills the table."""

    REPLACE = "replace"
    APPEND = "append"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("sql")(sql_command)
    app.command("collect")(collect_command)


@contextmanager
def _store_with_everything(
    output: Output, config: Config, path: Path | None, *, writable: bool
) -> Iterator[LocalStore]:
    """A store with every configured database attached under its name (failures warned)."""
    databases: list[Database] = []
    with get_duckdb_connection(path) as store:
        try:
            for name, db_config in config.databases.items():
                try:
                    db = connect(db_config)
                    databases.append(db)
                    output.learn(db.known_secrets())
                    store.attach(db, alias=name, readonly=not writable)
                except DbwireError as exc:
                    output.err.print(
                        Text(f"warning: {name!r} not attached: {output.clean(str(exc))}")
                    )
            yield store
        finally:
            for db in databases:
                db.close()


def _print_result(output: Output, store: LocalStore, sql: str, fmt: Format) -> None:
    cursor = store.execute(sql)
    if cursor.description is None:
        output.err.print(Text("OK"))
        return
    output.rows([str(d[0]) for d in cursor.description], cursor.fetchall(), fmt)


def _prompt(output: Output, store: LocalStore, fmt: Format) -> None:
    """A minimal SQL prompt: statements end with ';', .quit or end of input leaves."""
    output.err.print(Text(f"attached: {', '.join(sorted(store.attached)) or '(none)'}"))
    buffer: list[str] = []
    while True:
        try:
            line = input("dbwire> " if not buffer else "   ...> ")
        except EOFError:
            break
        if not buffer and line.strip().lower() in _QUIT:
            break
        buffer.append(line)
        statement = "\n".join(buffer).strip()
        if not statement.endswith(";"):
            continue
        buffer = []
        try:
            _print_result(output, store, statement, fmt)
        except Exception as exc:  # a bad statement must not end the session
            output.error(str(exc))


def sql_command(
    sql: Annotated[
        str | None,
        typer.Argument(help="SQL to run (DuckDB dialect); read from stdin when omitted."),
    ] = None,
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="Output format.")
    ] = Format.table,
    store_path: Annotated[
        Path | None,
        typer.Option("--store", help="Open this DuckDB file (or folder) instead of memory."),
    ] = None,
    writable: Annotated[
        bool, typer.Option("--writable", help="Attach the databases read-write.")
    ] = False,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Start a prompt even if stdin is not a tty.")
    ] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Run SQL across every configured database, each attached to DuckDB under its name.

    Example: dbwire sql "SELECT * FROM pg.public.users u JOIN shop.orders o USING (id)"
    """
    output = Output()
    with _handled(output, debug):
        loaded = _load(output, config)
        with _store_with_everything(output, loaded, store_path, writable=writable) as store:
            if sql is None and not interactive and not sys.stdin.isatty():
                sql = sys.stdin.read()
            if sql is not None and sql.strip():
                _print_result(output, store, sql, output_format)
            else:
                _prompt(output, store, output_format)


def collect_command(
    name: Annotated[str, typer.Argument(help="The database to read from.")],
    query: Annotated[str, typer.Argument(help="A query in its dialect, or a table name.")],
    into: Annotated[
        Path, typer.Option("--into", help="The DuckDB file (or folder: assessment.db) to fill.")
    ],
    table: Annotated[str, typer.Option("--table", "-t", help="The local table ([schema.]name).")],
    mode: Annotated[
        Mode, typer.Option("--mode", help="Replace the table, or append to it.")
    ] = Mode.REPLACE,
    method: Annotated[
        str | None, typer.Option("--method", help="Force duckdb, connectorx or sqlalchemy.")
    ] = None,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Copy a query's result (or a table) from a database into a local DuckDB table."""
    output = Output()
    with _handled(output, debug):
        loaded = _load(output, config)
        db = connect(loaded.database(name))
        output.learn(db.known_secrets())
        try:
            with get_duckdb_connection(into) as store, _progress(output, table) as report:
                rows = store.collect(
                    db,
                    query,
                    table=table,
                    mode="append" if mode is Mode.APPEND else "replace",
                    method=method,
                    progress=report,
                )
                where = store.path
        finally:
            db.close()
        output.err.print(Text(f"collected {rows:,} rows from {name!r} into {where} table {table}"))


@contextmanager
def _progress(output: Output, table: str) -> Iterator[Any]:
    """A rich progress bar on stderr, fed by CollectProgress reports (from any thread)."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task(f"collecting {table}", total=None)

        def report(update: CollectProgress) -> None:
            if update.fraction is not None:
                bar.update(task, total=100, completed=update.fraction * 100)
            if update.rows is not None:
                bar.update(task, description=f"collecting {table}: {update.rows:,} rows")

        yield report
