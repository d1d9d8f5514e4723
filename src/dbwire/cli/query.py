"""`dbwire query`: statements run in order like psql, each result streamed as it arrives."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from sqlalchemy import Connection

from dbwire.cli.inspect import (
    EXIT_CONFIG,
    ConfigOption,
    DebugOption,
    Format,
    Output,
    _handled,
    _opened,
    new_table,
)
from dbwire.cli.results import text_value, write_csv, write_json
from dbwire.cli.sqltext import Statement, command_tag, parse_params, split

# Rows fetched per round trip: the memory bound of a streamed result is about one batch.
BATCH = 2000
# A table is laid out whole, so it shows this many rows unless --limit says otherwise.
TABLE_ROWS = 1000


def register(app: typer.Typer) -> None:
    """Add `dbwire query` to the app."""
    app.command("query")(query)


def read_sql(output: Output, sql: str | None, file: Path | None) -> str:
    """The SQL from the argument, `-f FILE`, or stdin (`-` or a pipe)."""
    if sql is not None and file is not None:
        output.error("give the SQL as an argument or with -f FILE, not both")
        raise typer.Exit(EXIT_CONFIG)
    if file is not None and str(file) != "-":
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            output.error(f"cannot read the SQL file {str(file)!r}: {exc.__class__.__name__}")
            raise typer.Exit(EXIT_CONFIG) from None
    if sql is not None and sql != "-":
        return sql
    if sql is None and file is None and sys.stdin.isatty():
        output.error("no SQL given: pass it as an argument, with -f FILE, or on stdin (-)")
        raise typer.Exit(EXIT_CONFIG)
    return sys.stdin.read()


def query(
    name: Annotated[str, typer.Argument(help="The database.")],
    sql: Annotated[
        str | None,
        typer.Argument(help="SQL, one or more statements separated by ';' ('-': stdin)."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the SQL from this file ('-': stdin).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Bind :name: --param name=value (a string) or name:=JSON (id:=42, ok:=true).",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=0, help=f"Rows per result (table default: {TABLE_ROWS})."),
    ] = None,
    output_format: Annotated[
        Format, typer.Option("--format", "-F", help="table, json (bytes as base64) or csv.")
    ] = Format.table,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Run SQL statements in order and print each result (each write is committed).

    `:name` is a bind parameter only when --param gives it; elsewhere, and always inside
    literals and comments, the text is sent as written. CSV and JSON stream any number of
    rows; writes print psql's command tag (INSERT 0 1, UPDATE 3, CREATE TABLE).
    """
    output = Output()
    fmt = Format.json if as_json else output_format
    with _handled(output, debug, name):
        params = parse_params(param or [], name)
        text = read_sql(output, sql, file)
        with _opened(output, config, name) as db:
            statements = split(text, db.backend.name)
            if not statements:
                output.error("no SQL statement given")
                raise typer.Exit(EXIT_CONFIG)
            if not db.backend.has_engine:  # s3: DuckDB SQL run by the backend, not streamed
                for statement in statements:
                    columns, rows = db.execute_query(statement.text, params or None)
                    output.rows(columns, [[row[c] for c in columns] for row in rows], fmt)
                return
            with db.connect() as conn:
                for statement in statements:
                    _run(output, conn, statement, params, fmt, limit)
                    conn.commit()


def _run(
    output: Output,
    conn: Connection,
    statement: Statement,
    params: dict[str, Any],
    fmt: Format,
    limit: int | None,
) -> None:
    used = statement.binds() & params.keys()
    options: dict[str, Any] = (
        {"stream_results": True, "yield_per": BATCH} if statement.streamable else {}
    )
    if used:
        sql, values = statement.for_driver(
            {k: params[k] for k in used}, conn.dialect.paramstyle or "named"
        )
        result = conn.exec_driver_sql(
            sql, values if isinstance(values, dict) else tuple(values), execution_options=options
        )
    else:
        # No parameters: the text goes to the driver untouched (`%`, `:x` and all).
        options["no_parameters"] = True
        result = conn.exec_driver_sql(statement.text, execution_options=options)
    # Options go with the call: Connection.execution_options() would change the connection.
    if not result.returns_rows:
        tag = command_tag(statement, result.rowcount)
        if fmt is Format.table:
            output.line(tag)
        else:  # machine-readable stdout stays data only
            output.err.print(Text(tag))
        return
    columns = [str(c) for c in result.keys()]  # noqa: SIM118 - a Result, not a dict
    if fmt is Format.table:
        shown = TABLE_ROWS if limit is None else limit
        rows = list(islice(result, shown))
        more = result.fetchone() is not None
        result.close()
        _table(output, columns, rows, more)
        return

    def batches() -> Iterator[Sequence[Sequence[Any]]]:
        left = limit
        for partition in result.partitions(BATCH):
            if left is not None:
                partition = partition[:left]
                left -= len(partition)
            yield partition
            if left is not None and left <= 0:
                break
        result.close()

    def write(chunk: str) -> None:
        sys.stdout.write(output.clean(chunk))

    (write_json if fmt is Format.json else write_csv)(write, columns, batches())
    sys.stdout.flush()


def _table(output: Output, columns: list[str], rows: Sequence[Sequence[Any]], more: bool) -> None:
    table = new_table(show_lines=False)
    for column in columns:
        table.add_column(output.clean(column), overflow="fold")
    for row in rows:
        table.add_row(*(Text("NULL") if v is None else output.cell(text_value(v)) for v in row))
    output.table(table)
    note = f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    if more:
        note = f"(first {len(rows)} rows shown; --limit N, or --format csv streams all)"
    output.err.print(Text(note))
