"""`service = "NAME"` in a database table: libpq's pg_service.conf section fills in what the
table leaves unset, against a real server; any other backend refuses it by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dbwire
from dbwire.errors import ConfigError
from servers import DatabaseServer

DBWIRE = Path(sys.executable).parent / "dbwire"


def _service_home(tmp_path: Path, server: DatabaseServer) -> dict[str, str]:
    service = tmp_path / "pg_service.conf"
    service.write_text(
        f"[reports]\nhost={server.host}\nport={server.port}\ndbname={server.database}\n"
        f"user={server.user}\n"
    )
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{server.user}:{server.password}\n")
    pgpass.chmod(0o600)
    return {"PGSERVICEFILE": str(service), "PGPASSFILE": str(pgpass), "HOME": str(tmp_path)}


def test_service_field_connects_where_the_service_file_says(
    tmp_path: Path, pg_server: DatabaseServer, pg_url: str
) -> None:
    environ = _service_home(tmp_path, pg_server)
    toml = tmp_path / "dbwire.toml"
    toml.write_text('[databases.reports]\nbackend = "postgresql"\nservice = "reports"\n')
    cfg = dbwire.load_config(toml, environ=environ)
    with dbwire.connect("reports", config=cfg, environ=environ) as db:
        _, rows = db.execute_query("SELECT current_database() AS d, inet_server_port() AS p")
    assert rows == [{"d": pg_server.database, "p": pg_server.port}]

    # The same from the command line, with the system's PG* variables out of the way.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBWIRE_"))}
    env.update(environ, NO_COLOR="1", COLUMNS="200")
    check = subprocess.run(
        [str(DBWIRE), "check", "-c", str(toml)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "healthy" in check.stdout and pg_server.password not in check.stdout + check.stderr


def test_service_field_on_another_backend_is_a_config_error(tmp_path: Path) -> None:
    cfg = dbwire.load_config(
        {"databases": {"m": {"url": "mysql://app@127.0.0.1/app", "service": "reports"}}}
    )
    with pytest.raises(ConfigError, match="only PostgreSQL reads"):
        dbwire.connect("m", config=cfg).execute_query("SELECT 1")
