"""Commands of the local DuckDB store: sql (cross-database SQL) and collect."""

from __future__ import annotations

import enum
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
    TimeRemainingColumn,
)
from rich.text import Text

from dbwire.cli.inspect import (
    ConfigOption,
    DebugOption,
    Format,
    Output,
    _handled,
    _load,
    _require_databases,
)
from dbwire.cli.sqltext import _WORD, split
from dbwire.config import Config
from dbwire.database import Database, connect
from dbwire.errors import DbwireError
from dbwire.store.collect import CollectProgress, choose_method
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


_HELP = """\
Statements end with ';' and run in DuckDB, every configured database under its name
(attached when a statement first names it): SELECT * FROM main_db.public.users;
  .tables          tables of the attached databases (and which are not attached yet)
  \\d NAME          columns of a table (DESCRIBE NAME)
  .attach NAME     attach a database now;   .databases   configured and attached
  .help            this text;   .quit, \\q or Ctrl-D   leave;   Ctrl-C   cancel the line
"""


class _LazyStore:
    """A store that attaches a configured database when a statement first names it."""

    def __init__(self, output: Output, config: Config, store: LocalStore, writable: bool) -> None:
        self.output, self.config, self.store, self.writable = output, config, store, writable
        self.databases: list[Database] = []
        self.failed: set[str] = set()
        reserved = store.execute(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        ).fetchall()
        self.reserved = {str(row[0]).lower() for row in reserved}

    def attach(self, name: str) -> bool:
        """Attach `name` unless it is attached or failed already; one short line if it fails."""
        if name in self.store.attached or name in self.failed:
            return name in self.store.attached
        try:
            db = connect(self.config.database(name))
            self.databases.append(db)
            self.output.learn(db.known_secrets())
            self.store.attach(db, alias=name, readonly=not self.writable)
            return True
        except DbwireError as exc:
            self.failed.add(name)
            reason = self.output.clean(str(exc)).split(". Fix:")[0]
            reason = " ".join(reason.split())
            if len(reason) > 160:
                reason = reason[:157] + "..."
            sys.stderr.write(f"warning: {name!r} not attached: {reason}\n")
            return False

    def prepare(self, sql: str) -> str:
        """Attach the databases `sql` names, and quote those whose names DuckDB reserves
        (`primary.public.t` becomes `"primary".public.t`)."""
        names = {n.lower(): n for n in self.config.databases}
        out: list[str] = []
        for statement in split(sql, "duckdb"):
            for span in statement.spans:
                text = span.text
                if span.kind == "string" and "s3://" in text:
                    self._attach_buckets(text)
                if span.kind == "ident":
                    word = text[1:-1]
                    if word in self.config.databases:
                        self.attach(word)
                elif span.kind == "code":
                    for word in set(_WORD.findall(text)):
                        if word.lower() in names:
                            self.attach(names[word.lower()])
                            if word.lower() in self.reserved:
                                text = re.sub(
                                    rf"(?<![\w.\"]){re.escape(word)}(?=\s*\.)", f'"{word}"', text
                                )
                out.append(text)
            out.append(";")
        return "".join(out)

    def _attach_buckets(self, literal: str) -> None:
        """An s3:// path reads through the secret of the S3 database of its bucket."""
        for name, cfg in self.config.databases.items():
            shown = str(cfg.display_url or "")
            if shown.startswith("s3://"):
                bucket = shown[len("s3://") :].split("/", 1)[0]
                if f"s3://{bucket}/" in literal or literal.endswith(f"s3://{bucket}'"):
                    self.attach(name)

    def close(self) -> None:
        for db in self.databases:
            db.close()


@contextmanager
def _lazy_store(
    output: Output, config: Config, path: Path | None, *, writable: bool, only: list[str]
) -> Iterator[_LazyStore]:
    with get_duckdb_connection(path) as store:
        lazy = _LazyStore(output, config, store, writable)
        try:
            for name in only:
                config.database(name)  # an unknown name is a usage error (exit 2)
                lazy.attach(name)
            yield lazy
        finally:
            lazy.close()


def _print_result(output: Output, store: LocalStore, sql: str, fmt: Format) -> None:
    for statement in split(sql, "duckdb"):
        cursor = store.execute(statement.text)
        if cursor.description is None:
            output.err.print(Text("OK"))
            continue
        output.rows([str(d[0]) for d in cursor.description], cursor.fetchall(), fmt)


def _dot_command(output: Output, lazy: _LazyStore, line: str, fmt: Format) -> bool:
    """Run a prompt command (.tables, \\d NAME ...); False if `line` is SQL."""
    word, _, rest = line.strip().rstrip(";").partition(" ")
    rest = rest.strip()
    command = word.lower()
    if command in (".help", "\\?", "help", "\\h"):
        sys.stderr.write(_HELP)
    elif command == ".tables" or command == "\\dt":
        _print_result(
            output,
            lazy.store,
            "SELECT database, schema, name FROM (SHOW ALL TABLES) ORDER BY ALL",
            fmt,
        )
        waiting = sorted(set(lazy.config.databases) - set(lazy.store.attached))
        if waiting:
            output.err.print(Text(f"not attached yet: {', '.join(waiting)} (.attach NAME)"))
    elif command == "\\d" and rest:
        _print_result(output, lazy.store, f"DESCRIBE {lazy.prepare(rest).rstrip(';')}", fmt)
    elif command == ".attach" and rest:
        if lazy.attach(rest):
            output.err.print(Text(f"attached {rest}"))
    elif command == ".databases":
        for name in lazy.config.databases:
            state = "attached" if name in lazy.store.attached else "not attached"
            output.line(f"{name}: {state}")
    else:
        return False
    return True


def _prompt(output: Output, lazy: _LazyStore, fmt: Format) -> None:
    """The SQL prompt: statements end with ';'; Ctrl-C cancels the line, Ctrl-D leaves."""
    with suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()
    sys.stderr.write(
        f"dbwire sql: databases {', '.join(lazy.config.databases) or '(none)'}; "
        ".help for help, .quit to leave\n"
    )
    buffer: list[str] = []
    while True:
        try:
            line = input("dbwire> " if not buffer else "   ...> ")
        except EOFError:
            sys.stderr.write("\n")
            break
        except KeyboardInterrupt:  # cancel the line being typed, like psql
            sys.stderr.write("^C\n")
            buffer = []
            continue
        if not buffer and line.strip().lower() in _QUIT:
            break
        try:
            if not buffer and _dot_command(output, lazy, line, fmt):
                continue
        except KeyboardInterrupt:
            sys.stderr.write("cancelled\n")
            continue
        except Exception as exc:
            output.error(str(exc))
            continue
        buffer.append(line)
        statement = "\n".join(buffer).strip()
        if not statement.endswith(";"):
            continue
        buffer = []
        try:
            _print_result(output, lazy.store, lazy.prepare(statement), fmt)
        except KeyboardInterrupt:
            lazy.store.interrupt()
            sys.stderr.write("cancelled\n")
        except Exception as exc:  # a bad statement must not end the session
            output.error(_reserved_hint(lazy, str(exc)))


def _reserved_hint(lazy: _LazyStore, message: str) -> str:
    """DuckDB's syntax error, plus the reason when a database's name is a reserved word."""
    reserved = [n for n in lazy.config.databases if n.lower() in lazy.reserved]
    if reserved and "syntax error" in message.lower():
        quoted = ", ".join(f'"{n}"' for n in reserved)
        message += f" ({quoted}: reserved in DuckDB; write it in double quotes)"
    return message


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
    only: Annotated[
        str | None,
        typer.Option("--only", help="Attach these databases (a,b) up front, no others."),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Start a prompt even if stdin is not a tty.")
    ] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Run SQL across the configured databases, each attached to DuckDB under its name
    when a statement names it (a name DuckDB reserves, like primary, is quoted for you).

    Example: dbwire sql "SELECT * FROM pg.public.users u JOIN shop.orders o USING (id)"
    """
    output = Output()
    with _handled(output, debug):
        loaded = _load(output, config)
        _require_databases(loaded)
        chosen = [n.strip() for n in (only or "").split(",") if n.strip()]
        if chosen:
            loaded = loaded.model_copy(
                update={"databases": {n: loaded.database(n) for n in chosen}}
            )
        with _lazy_store(output, loaded, store_path, writable=writable, only=chosen) as lazy:
            if sql is None and not interactive and not sys.stdin.isatty():
                sql = sys.stdin.read()
            if sql is not None and sql.strip():
                try:
                    _print_result(output, lazy.store, lazy.prepare(sql), output_format)
                except DbwireError:
                    raise
                except Exception as exc:
                    raise DbwireError(_reserved_hint(lazy, str(exc))) from None
            else:
                _prompt(output, lazy, output_format)


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout (for scripts).")
    ] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Copy a query's result (or a table) from a database into a local DuckDB table.

    Progress (rows, rows/s, ETA where DuckDB knows the fraction, the method) shows on a
    terminal; piped, only the summary line is printed.
    """
    output = Output()
    seen = _Seen(method=method)
    with _handled(output, debug):
        loaded = _load(output, config)
        db = connect(loaded.database(name))
        output.learn(db.known_secrets())
        started = time.monotonic()
        try:
            with get_duckdb_connection(into) as store, _progress(output, table, seen) as report:
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
        seconds = time.monotonic() - started
        if seen.method is None:  # no progress report came (a small table): say what ran
            seen.method = choose_method(db, query)
    rate = rows / seconds if seconds > 0 else None
    if as_json:
        output.json(
            {
                "database": name,
                "table": table,
                "into": str(where),
                "rows": rows,
                "seconds": round(seconds, 3),
                "rows_per_second": None if rate is None else round(rate),
                "method": seen.method,
            }
        )
        return
    speed = f", {rate:,.0f} rows/s" if rate else ""
    sys.stderr.write(
        output.clean(
            f"collected {rows:,} rows from {name!r} into {where} table {table} in "
            f"{seconds:.1f}s{speed} (method: {seen.method or 'chosen by dbwire'})"
        )
        + "\n"
    )


@dataclass
class _Seen:
    """What the progress reports told: the method dbwire chose."""

    method: str | None = None


@contextmanager
def _progress(output: Output, table: str, seen: _Seen) -> Iterator[Any]:
    """A rich progress display on stderr, fed by CollectProgress reports (from any thread);
    nothing at all when stderr is not a terminal (no bar, no blank line in a log)."""
    if not sys.stderr.isatty():

        def quiet(update: CollectProgress) -> None:
            seen.method = update.method or seen.method

        yield quiet
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task(f"collecting {table}", total=None)

        def report(update: CollectProgress) -> None:
            seen.method = update.method or seen.method
            if update.fraction is not None:
                bar.update(task, total=100, completed=update.fraction * 100)
            text = f"collecting {table} ({update.method})"
            if update.rows is not None:
                text += f": {update.rows:,} rows"
                if update.elapsed > 0:
                    text += f", {update.rows / update.elapsed:,.0f} rows/s"
            bar.update(task, description=text)

        yield report
