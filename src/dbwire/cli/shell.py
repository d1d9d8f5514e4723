"""`dbwire shell NAME`: the database's own client, with the password kept out of argv.

psql gets it in PGPASSWORD, mariadb/mysql in a 0600 option file that is removed when the
client ends; `ps` shows neither. SQLite and DuckDB have no password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from dbwire.backends.base import ConnectParams
from dbwire.cli.inspect import ConfigOption, DebugOption, Output, _handled, _opened
from dbwire.database import Database
from dbwire.errors import MissingDependencyError
from dbwire.url import is_secret_key

_CLIENTS = {
    "postgresql": ("psql",),
    "mysql": ("mariadb", "mysql"),
    "sqlite": ("sqlite3",),
    "duckdb": ("duckdb",),
}


def register(app: typer.Typer) -> None:
    """Add `dbwire shell` to the app."""
    app.command("shell")(shell)


def _client(db: Database) -> str:
    names = _CLIENTS.get(db.backend.dialect_name, ())
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    wanted = " or ".join(names) or "a command-line client"
    raise MissingDependencyError(
        f"database {db.name!r}: dbwire shell needs {wanted} on PATH for the "
        f"{db.backend.name} backend. Fix: install it, or use dbwire query / dbwire sql"
    )


def _libpq_value(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "._-/:" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _postgres(client: str, params: ConnectParams) -> tuple[list[str], dict[str, str]]:
    fields: dict[str, object] = {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "dbname": params.database,
    }
    fields.update({k: v for k, v in params.options.items() if not is_secret_key(k)})
    conninfo = " ".join(f"{k}={_libpq_value(v)}" for k, v in fields.items() if v is not None)
    env = {"PGPASSWORD": params.password_value() or ""} if params.password_value() else {}
    return [client, conninfo], env


def _mysql_file(params: ConnectParams, folder: str) -> Path:
    lines = ["[client]"]
    if params.host:
        lines += [f"host={params.host}", "protocol=tcp"]
    if params.port:
        lines.append(f"port={params.port}")
    if params.user:
        lines.append(f"user={params.user}")
    password = params.password_value()
    if password is not None:
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'password="{escaped}"')
    if params.database:
        lines.append(f"database={params.database}")
    path = Path(folder) / "client.cnf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def shell(
    name: Annotated[str, typer.Argument(help="The database (or a URL).")],
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Open psql, mariadb, sqlite3 or duckdb on a database, logged in with dbwire's
    resolved credentials (password by environment or a 0600 file, never on the command line)."""
    output = Output()
    with _handled(output, debug, name), tempfile.TemporaryDirectory(prefix="dbwire-") as tmp:
        with _opened(output, config, name) as db:
            client = _client(db)
            kind = db.backend.dialect_name
            env = dict(os.environ)
            if kind == "postgresql":
                argv, extra = _postgres(client, db.connect_params())
                env.update(extra)
            elif kind == "mysql":
                cnf = _mysql_file(db.connect_params(), tmp)
                argv = [client, f"--defaults-extra-file={cnf}"]
            else:
                argv = [client, db.backend.base_url().database or ":memory:"]
        code = subprocess.call(argv, env=env)
    raise typer.Exit(code)
