"""Commands of the local DuckDB store: sql (cross-database SQL) and collect."""

from __future__ import annotations

import enum
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
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
from dbwire.store.collect import CollectProgress
from dbwire.store.local import LocalStore, get_duckdb_connection

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

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
        str | None,
        typer.Option("--method", help="Force duckdb, connectorx, adbc or sqlalchemy."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object per table on stdout (for scripts)."),
    ] = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Copy a query's result (or a table) from a database into a local DuckDB table.

    On a terminal a progress line shows the method, rows, rows/s and, for a whole table
    whose size the source estimates, the ETA; piped, only the summary line is printed.
    """
    from dbwire.store.collect import choose_method
    from dbwire.store.collect import run as collect_run

    output = Output()
    with _handled(output, debug):
        loaded = _load(output, config)
        db = connect(loaded.database(name))
        output.learn(db.known_secrets())
        started = time.monotonic()
        try:
            planned = method or choose_method(db, query)
            with get_duckdb_connection(into) as store, _progress(output, table, planned) as bar:
                result = collect_run(
                    store,
                    db,
                    query,
                    table=table,
                    mode="append" if mode is Mode.APPEND else "replace",
                    method=method,
                    progress=None if bar is None else bar.report,
                )
                if bar is not None:
                    bar.finish(result.rows, result.method, result.estimate)
                where = store.path
        finally:
            db.close()
        seconds = time.monotonic() - started
    rate = result.rows / seconds if seconds > 0 else None
    if as_json:
        per_s = None if rate is None else round(rate)
        summary = {
            "database": name,
            "table": table,
            "target": f"{where}:{table}",
            "into": str(where),
            "rows": result.rows,
            "seconds": round(seconds, 3),
            "rows_per_s": per_s,
            "rows_per_second": per_s,
            "method": result.method,
            "estimate": result.estimate,
        }
        output.line(json.dumps(summary))
        return
    speed = f", {rate:,.0f} rows/s" if rate else ""
    sys.stderr.write(
        output.clean(
            f"collected {result.rows:,} rows from {name!r} into {where} table {table} in "
            f"{seconds:.1f}s{speed} (method: {result.method})"
        )
        + "\n"
    )


@dataclass
class _Bar:
    """The terminal progress line, fed by CollectProgress reports (from any thread)."""

    progress: Progress
    task: TaskID
    table: str
    method: str
    started: float

    def report(self, update: CollectProgress) -> None:
        self.method = update.method or self.method
        rows, estimate = update.rows, update.estimate
        elapsed = max(update.elapsed, 1e-9)
        parts = [f"collecting {self.table} via {self.method}"]
        if rows is not None:
            parts.append(f"{rows:,} rows")
            if estimate:
                parts[-1] += f" of ~{estimate:,} (estimate)"
            rate = rows / elapsed
            parts.append(f"{rate:,.0f} rows/s")
            if estimate and rate > 0 and rows < estimate:
                parts.append(f"ETA {_clock((estimate - rows) / rate)}")
        elif update.fraction is not None and update.fraction > 0:
            left = elapsed * (1 - update.fraction) / update.fraction
            parts.append(f"{update.fraction:.0%}, ETA {_clock(left)} (DuckDB's estimate)")
        if estimate and rows is not None:
            self.progress.update(self.task, total=estimate, completed=min(rows, estimate))
        elif update.fraction is not None:
            self.progress.update(self.task, total=100, completed=update.fraction * 100)
        self.progress.update(self.task, description=" | ".join(parts))

    def finish(self, rows: int, method: str, estimate: int | None) -> None:
        """The last line: every row in, at the rate measured (and the estimate it had)."""
        elapsed = time.monotonic() - self.started
        self.report(
            CollectProgress(self.table, method, rows=rows, elapsed=elapsed, estimate=estimate)
        )
        self.progress.update(self.task, total=max(rows, 1), completed=max(rows, 1))
        self.progress.refresh()


def _clock(seconds: float) -> str:
    whole = int(max(seconds, 0) + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@contextmanager
def _progress(output: Output, table: str, method: str) -> Iterator[_Bar | None]:
    """A rich progress line on stderr when it is a terminal; None (nothing at all: no
    bar, no blank line in a log) when it is not."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    with Progress(*columns, console=output.err, transient=True) as progress:
        task = progress.add_task(f"collecting {table} via {method}", total=None)
        yield _Bar(progress, task, table, method, time.monotonic())
