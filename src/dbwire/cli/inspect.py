"""Commands that read the configuration and the databases: list, check, wait, url, query, schema."""

from __future__ import annotations

import csv
import difflib
import enum
import io
import json
import os
import re
import sys
import tomllib
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import inspect as sa_inspect

from dbwire.backends.base import ConnectParams
from dbwire.cli.results import json_value, text_value
from dbwire.config import Config, DatabaseConfig, load_config
from dbwire.database import Database
from dbwire.errors import (
    ConfigError,
    DbwireError,
    UnknownBackendError,
    UnknownDatabaseError,
    describe,
    scrub,
)
from dbwire.health import HealthResult, check_many
from dbwire.manager import Manager
from dbwire.url import MASK, is_secret_key, libpq_url, mask_text, mask_url

if TYPE_CHECKING:
    from rich.table import Table


def new_table(**options: Any) -> Table:
    """A rich Table; rich.table is imported here, on first use, so a command that prints
    no table (collect) does not load it."""
    from rich.table import Table

    return Table(**options)


# Exit codes, like pg_isready: 0 all is well, 1 a database is not, 2 bad config or usage.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
_CONFIG_ERRORS = (ConfigError, UnknownDatabaseError, UnknownBackendError)
# The name a database given as a URL on the command line goes by.
URL_NAME = "url"


def target(name: str, config: Path | None) -> tuple[str, Path | str | None]:
    """(database name, config source) of a NAME argument that may be a URL instead."""
    if "://" in name:
        return URL_NAME, name
    return name, config


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $DBWIRE_CONFIG, ./dbwire.toml, \\[tool.dbwire] in "
        "./pyproject.toml, $DATABASE_URL).",
        dir_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the data as JSON.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]


class Output:
    """Everything the commands print passes through here, so no known password gets out."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        # Piped output (CI logs, grep) gets wide tables instead of rich's 80 columns.
        width = None if sys.stdout.isatty() else 160
        self.out = Console(highlight=False, soft_wrap=False, width=width)
        self.err = Console(stderr=True, highlight=False, width=width)

    def learn(self, secrets: Iterable[str | None]) -> None:
        """Remember passwords to mask wherever they would appear."""
        self.secrets.update(s for s in secrets if s)

    def learn_config(self, config: Config) -> None:
        """Remember every password written in the configuration."""
        for db_config in config.databases.values():
            self.learn(_config_secrets(db_config))

    def clean(self, text: str) -> str:
        """Text with known passwords and URL passwords masked."""
        # Longest first, so a password containing another one is masked whole.
        ordered: list[str] = sorted(self.secrets, key=len, reverse=True)
        return mask_text(scrub(text, ordered))

    def cell(self, value: object) -> Text:
        """A table cell: cleaned, and never read as rich markup."""
        return Text("" if value is None else self.clean(str(value)))

    def line(self, text: str, *, clean: bool = True) -> None:
        """Print one plain line on stdout."""
        sys.stdout.write((self.clean(text) if clean else text) + "\n")

    def json(self, data: Any) -> None:
        """Print data as JSON on stdout."""
        self.line(json.dumps(data, indent=2, default=str))

    def table(self, table: Table) -> None:
        """Print a rich table on stdout (its cells were cleaned when added)."""
        self.out.print(table)

    def rows(self, columns: list[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
        """Print a result as a table, JSON objects or CSV (`dbwire query`, `dbwire sql`)."""
        if fmt == "json":
            self.json(
                [{c: json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
            )
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([text_value(v) for v in row] for row in rows)
            self.line(buffer.getvalue().rstrip("\n"))
        else:
            table = new_table(show_lines=False)
            for column in columns:
                table.add_column(self.clean(column), overflow="fold")
            for row in rows:
                table.add_row(*(Text("NULL") if v is None else self.cell(v) for v in row))
            self.table(table)
            self.err.print(Text(f"({len(rows)} row{'' if len(rows) == 1 else 's'})"))

    def error(self, message: str) -> None:
        """Print one error line on stderr, never wrapped."""
        line = " ".join(cli_remedy(self.clean(message)).split())
        sys.stderr.write(f"error: {line}\n")


_NAMED = re.compile(r"database '([^']+)'")


def cli_remedy(message: str, name: str | None = None) -> str:
    """A library hint turned into its command-line form (`db.wait()` is `dbwire wait NAME`)."""
    if "db.wait()" not in message:
        return message
    found = _NAMED.search(message)
    name = name or (found.group(1) if found else "NAME")
    return message.replace("db.wait()", f"dbwire wait {name}")


def _config_secrets(db_config: DatabaseConfig) -> list[str | None]:
    return list(db_config.secret_values())


@contextmanager
def _handled(output: Output, debug: bool, where: str | None = None) -> Iterator[None]:
    """One clean error line instead of a traceback; exit 2 for config errors, else 1.

    `where` names the database a driver error came from.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            output.err.print(Text(output.clean("".join(traceback.format_exc()))))
        # SQLAlchemy's first line names the driver error; the rest is SQL and a link.
        message = describe(exc, output.secrets, limit=2000, first_line=True)
        if where and "://" in where:
            where = URL_NAME  # a URL given as the name: its name is "url", its text is secret
        if where and (not isinstance(exc, DbwireError) or repr(where) not in message):
            message = f"database {where!r}: {message}"
        # A DbwireError says what to fix; only an unexpected error has a traceback worth seeing.
        if not debug and not isinstance(exc, DbwireError):
            message += " (--debug shows the traceback)"
        output.error(message)
        raise typer.Exit(EXIT_CONFIG if isinstance(exc, _CONFIG_ERRORS) else EXIT_FAILED) from None


def _load(output: Output, config: Path | str | None) -> Config:
    loaded = _load_any(config)
    output.learn_config(loaded)
    return loaded


def _load_any(config: Path | str | None) -> Config:
    if isinstance(config, str):  # a URL given where a name goes (`dbwire check URL`)
        return load_config({"databases": {URL_NAME: {"url": config}}})
    if config is not None and config.exists() and not config.is_file() and not config.is_dir():
        # `-c <(printf ...)`: a pipe can be read once, so read it here; relative paths in it
        # are relative to the working directory (a pipe has no folder of its own).
        try:
            document = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config}: cannot read config: {exc}") from None
        return load_config(document)
    return load_config(config if config is not None else discover_config())


def discover_config(
    start: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file the CLI uses when none is named: $DBWIRE_CONFIG (left to
    load_config), dbwire.toml or [tool.dbwire] in pyproject.toml in this folder or the
    nearest parent, else (without $DATABASE_URL) the user's $XDG_CONFIG_HOME/dbwire/dbwire.toml
    (~/.config/dbwire/dbwire.toml)."""
    env = os.environ if environ is None else environ
    if env.get("DBWIRE_CONFIG"):
        return None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "dbwire.toml"
        if candidate.is_file():
            return candidate
        project = folder / "pyproject.toml"
        if project.is_file() and _has_dbwire_table(project):
            return project
    if env.get("DATABASE_URL"):
        return None
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    user_file = base / "dbwire" / "dbwire.toml"
    return user_file if user_file.is_file() else None


def _has_dbwire_table(project: Path) -> bool:
    try:
        tool = tomllib.loads(project.read_text(encoding="utf-8")).get("tool")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # let load_config report what is wrong with it
    return isinstance(tool, dict) and "dbwire" in tool


def _require_databases(loaded: Config) -> None:
    """No database at all is a configuration error: a gate that checked nothing fails."""
    if not loaded.databases:
        raise ConfigError(
            "no databases configured: no dbwire.toml here or in a parent folder, no "
            "[tool.dbwire] in pyproject.toml, no $DBWIRE_CONFIG, $DATABASE_URL or "
            "~/.config/dbwire/dbwire.toml. Fix: write one (dbwire init), pass --config FILE, "
            "or give a URL"
        )


def _database(output: Output, manager: Manager, name: str) -> Database:
    db = manager.db(name)
    output.learn(db.known_secrets())
    return db


@contextmanager
def _opened(output: Output, config: Path | None, name: str) -> Iterator[Database]:
    """The named database of the config, its secrets known to output, closed afterwards
    (also when the command fails)."""
    name, source = target(name, config)
    manager = Manager(_load(output, source))
    try:
        yield _database(output, manager, name)
    finally:
        manager.close_all()


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _pool_text(pool: dict[str, Any] | None) -> str:
    if not pool:
        return "-"
    if pool.get("checked_out") is None:
        return str(pool.get("pool_class") or "-")
    text = f"{pool['checked_out']} out / {pool['checked_in']} in / size {pool['size']}"
    if pool.get("overflow"):
        text += f" (+{pool['overflow']} overflow)"
    return text


class Format(enum.StrEnum):
    """Output formats of `dbwire query`."""

    table = "table"
    json = "json"
    csv = "csv"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    for command in (list_command, check, wait, url, schema):
        name = "list" if command is list_command else command.__name__
        app.command(name)(command)


def list_command(
    config: ConfigOption = None, as_json: JsonOption = False, debug: DebugOption = False
) -> None:
    """List the configured databases (passwords masked)."""
    output = Output()
    with _handled(output, debug):
        loaded = _load(output, config)
        rows = [
            {
                "name": name,
                "backend": cfg.backend or cfg.scheme,
                "url": cfg.display_url,
                "readonly": cfg.readonly,
            }
            for name, cfg in loaded.databases.items()
        ]
        if as_json:
            output.json({"config": loaded.source, "databases": rows})
            return
        table = new_table(title=f"databases ({loaded.source or 'no config found'})")
        for column in ("name", "backend", "url", "readonly"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                *(output.cell(row[key]) for key in ("name", "backend", "url")),
                output.cell("yes" if row["readonly"] else ""),
            )
        output.table(table)


def check(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Databases to check (default: all), or one URL (like pg_isready -d)."),
    ] = None,
    config: ConfigOption = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds per database (default: its health_timeout)."),
    ] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
    prometheus: Annotated[
        bool,
        typer.Option(
            "--prometheus",
            help="Print the health, pool and timing metrics in Prometheus' text format "
            "(needs dbwire[metrics]).",
        ),
    ] = False,
) -> None:
    """Check databases concurrently: status, latency, pool, error.

    Exit 0 when all are healthy, 1 when any is not, 2 for a config or usage error (no
    database configured included: a gate that checked nothing must not pass).
    """
    output = Output()
    with _handled(output, debug):
        source: Path | str | None = config
        if names and len(names) == 1 and "://" in names[0]:
            names, source = [URL_NAME], names[0]
        manager = Manager(_load(output, source))
        _require_databases(manager.config)
        selected = names or manager.list_databases()
        targets: dict[str, Database | BaseException] = {}
        for name in selected:
            manager.config.database(name)  # UnknownDatabaseError: exit 2
            try:
                targets[name] = _database(output, manager, name)
            except _CONFIG_ERRORS as exc:
                manager.close_all()
                # A config error is exit 2, never an unhealthy row.
                message = str(exc) if repr(name) in str(exc) else f"database {name!r}: {exc}"
                output.error(message)
                raise typer.Exit(EXIT_CONFIG) from None
            except DbwireError as exc:
                targets[name] = exc
        results = check_many(targets, timeout)
        if prometheus:
            manager.record_health(results)
        report = {name: _check_entry(targets[name], result) for name, result in results.items()}
        for name, entry in report.items():
            if entry["error"]:
                entry["error"] = cli_remedy(entry["error"], name)
        metrics = manager.metrics() if prometheus else ""
        manager.close_all()
    if prometheus:
        output.line(metrics.rstrip("\n"))
    elif as_json:
        output.json(report)
    else:
        output.table(_check_table(output, report))
    healthy = all(entry["status"] == "healthy" for entry in report.values())
    raise typer.Exit(EXIT_OK if healthy else EXIT_FAILED)


def _check_entry(db: Database | BaseException, result: HealthResult) -> dict[str, Any]:
    entry = result.as_dict()
    entry["pool"] = None
    entry["readonly"] = None
    if isinstance(db, Database):
        with suppress(DbwireError):
            entry["pool"] = db.get_pool_status().as_dict()
        if db.readonly:
            entry["readonly"] = _readonly_enforcement(db, result)
    return entry


def _readonly_enforcement(db: Database, result: HealthResult) -> str:
    """How a readonly = true database is kept read-only: "privileges" when its login (or
    the file's open mode) cannot write at all, "transaction only" when it could if it
    sent the SQL itself (dbwire's read-only transaction and statement guard hold)."""
    if not result.healthy:
        return "unknown"
    try:
        can_write = db.login_can_write()
    except Exception:  # a probe that fails must not fail the check; say what is known
        return "unknown"
    if can_write is None:
        return "unknown"
    return "transaction only" if can_write else "privileges"


def _check_table(output: Output, report: dict[str, dict[str, Any]]) -> Table:
    table = new_table(title="dbwire check")
    for column in ("database", "status", "latency", "pool", "read-only", "error"):
        table.add_column(column, overflow="fold")
    for name, entry in report.items():
        ok = entry["status"] == "healthy"
        status = Text("healthy" if ok else "UNHEALTHY", style="green" if ok else "bold red")
        readonly = entry["readonly"]
        table.add_row(
            output.cell(name),
            status,
            output.cell(_ms(entry["response_time_ms"])),
            output.cell(_pool_text(entry["pool"])),
            output.cell(f"by {readonly}" if readonly else ""),
            output.cell(cli_remedy(entry["error"] or "", name)),
        )
    return table


def wait(
    name: Annotated[str, typer.Argument(help="The database to wait for.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 30.0,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Wait until a database accepts connections (exit 1 if it does not in time)."""
    output = Output()
    with _handled(output, debug):
        with _opened(output, config, name) as db:
            waited = db.wait(timeout)
        output.line(f"{name}: ready after {waited:.2f}s")


def url(
    name: Annotated[str, typer.Argument(help="The database, or a URL.")],
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each field's value and where it came from.")
    ] = False,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the password in clear.")
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Print the resolved connection URL (password masked unless --show-password)."""
    output = Output()
    with _handled(output, debug):
        name, source = target(name, config)
        loaded = _load(output, source)
        manager = Manager(loaded)
        db = _database(output, manager, name)
        params = db.connect_params()
        password = params.password_value()
        output.learn([password])
        shown_url = _resolved_url(db, params, show_password)
        fields = _explain_rows(db, params, show_password) if explain else []
        manager.close_all()
    if as_json:
        data: dict[str, Any] = {"name": name, "url": shown_url, "config": loaded.source}
        if explain:
            data["fields"] = [{"field": f, "value": v, "source": s} for f, v, s in fields]
        text = json.dumps(data, indent=2, default=str)
        output.line(text, clean=not show_password)
        return
    output.line(shown_url, clean=not show_password)
    if explain:
        table = new_table(title=f"{name} (config: {loaded.source or 'none'})")
        for column in ("field", "value", "source"):
            table.add_column(column, overflow="fold")
        for field, value, source in fields:
            shown = Text(value) if field == "password" and show_password else output.cell(value)
            table.add_row(output.cell(field), shown, output.cell(source))
        output.table(table)


# Password sources psql finds by itself; a URL without the password still reconnects.
_NATIVE_PASSWORD_SOURCES = (".pgpass", "env PG", "service")


def _resolved_url(db: Database, params: ConnectParams, show_password: bool) -> str:
    """The URL a new connection would use, password masked unless show_password."""
    password = params.password_value()
    base = db.backend.base_url()
    if db.backend.dialect_name != "postgresql":
        resolved = base.set(
            host=params.host,
            port=params.port,
            username=params.user,
            database=params.database,
            password=password,
        )
        # The reveal path: only --show-password prints the URL as the engine would use it.
        if show_password:
            return resolved.render_as_string(hide_password=False)
        return mask_url(resolved)
    if password is not None and not show_password:
        native = params.sources.get("password", "").startswith(_NATIVE_PASSWORD_SOURCES)
        # psql reads .pgpass and PGPASSWORD itself: leave such a password out, so the
        # printed URL reconnects as it is; one only dbwire knows is shown as ***.
        password = None if native else MASK
    query = {
        key: (value if isinstance(value, str) else ",".join(value))
        for key, value in base.query.items()
        if key not in ("host", "port") and (show_password or not is_secret_key(key))
    }
    hosts: list[tuple[str, int | None]] = list(params.hosts) or [(params.host or "", params.port)]
    return libpq_url(
        base.drivername.split("+", 1)[0],
        user=params.user,
        password=password,
        hosts=hosts,
        dbname=params.database,
        query=query,
    )


def _explain_rows(
    db: Database, params: ConnectParams, show_password: bool
) -> list[tuple[str, str, str]]:
    """(field, value, source) rows: the resolved connection fields, then the config's."""
    cfg = db.config
    sources = params.sources
    password = params.password_value()
    shown_password = "(none)" if password is None else (password if show_password else MASK)

    def source_of(field: str) -> str:
        found = sources.get(field)
        if found:
            return str(found)
        if getattr(cfg, field, None) is not None:
            return cfg.field_source(field)
        if cfg.url is not None:
            return f"url ({cfg.field_source('url')})"
        return "default"

    rows: list[tuple[str, str, str]] = [
        ("backend", db.backend.name, source_of("backend")),
        ("driver", f"{db.backend.sync_driver} / {db.backend.async_driver or '-'}", "backend"),
    ]
    values: dict[str, object] = {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "database": params.database,
    }
    for field, value in values.items():
        rows.append((field, "" if value is None else str(value), source_of(field)))
    rows.append(("password", shown_password, sources.get("password") or "none"))
    for key, value in params.options.items():
        shown = MASK if is_secret_key(key) and not show_password else str(value)
        rows.append((key, shown, str(sources.get(key, "native source"))))
    skip = {"name", "url", "backend", "host", "port", "user", "password", "database"}
    # Dumped values: options, connect_args and password_command arguments come masked.
    dumped = cfg.model_dump(include=cfg.model_fields_set - skip)
    for field in sorted(cfg.model_fields_set - skip):
        rows.append((field, str(dumped.get(field)), cfg.field_source(field)))
    for key, value in sorted(db.backend.engine_options(is_async=False).items()):
        if (key.startswith("pool_") or key == "max_overflow") and key not in cfg.model_fields_set:
            rows.append((key, str(value), f"{db.backend.name} backend default"))
    return rows


def schema(
    name: Annotated[str, typer.Argument(help="The database.")],
    db_schema: Annotated[
        str | None, typer.Option("--schema", help="Schema to read (default: the default one).")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show tables and their columns, read with SQLAlchemy's inspector."""
    output = Output()
    with _handled(output, debug, name), _opened(output, config, name) as db:
        tables = _read_schema(db, db_schema)
    if as_json:
        output.json(tables)
        return
    if not tables:
        output.line(f"{name}: no tables")
    for table_name, columns in tables.items():
        table = new_table(title=table_name, title_justify="left")
        for column in ("column", "type", "nullable", "default", "key"):
            table.add_column(column, overflow="fold")
        for col in columns:
            table.add_row(
                output.cell(col["name"]),
                output.cell(col["type"]),
                output.cell("yes" if col["nullable"] else "no"),
                output.cell(col["default"] or ""),
                output.cell("PK" if col["primary_key"] else ""),
            )
        output.table(table)


def _read_schema(db: Database, db_schema: str | None) -> dict[str, list[dict[str, Any]]]:
    inspector = sa_inspect(db.engine)
    if db_schema is not None:
        known = inspector.get_schema_names()
        # A misspelt --schema must not look like an empty one: a CI gate would pass on it.
        if db_schema not in known:
            hint = difflib.get_close_matches(db_schema, known, n=1)
            raise ConfigError(
                f"database {db.name!r} has no schema {db_schema!r} (--schema)"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" Its schemas: {', '.join(sorted(known)) or '(none)'}",
                database=db.name,
            )
    tables: dict[str, list[dict[str, Any]]] = {}
    for table_name in sorted(inspector.get_table_names(schema=db_schema)):
        primary = set(
            inspector.get_pk_constraint(table_name, schema=db_schema).get("constrained_columns")
            or []
        )
        tables[table_name] = [
            {
                "name": col["name"],
                "type": str(col["type"]),
                "nullable": bool(col.get("nullable", True)),
                "default": None if col.get("default") is None else str(col.get("default")),
                "primary_key": col["name"] in primary,
            }
            for col in inspector.get_columns(table_name, schema=db_schema)
        ]
    return tables
