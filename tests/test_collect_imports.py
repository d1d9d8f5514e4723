"""`dbwire collect` imports and logs in through nothing its method does not use.

Each collect runs in a fresh interpreter, as the bench runs it: DuckDB's postgres
extension and ADBC need neither psycopg nor SQLAlchemy's ORM or asyncio layer, and none
of the fast methods logs in through dbwire's SQLAlchemy engine while it works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dbwire
from servers import DatabaseServer

# Modules a collect might import without needing them, and what each method may use.
WATCHED = ("sqlalchemy.orm", "sqlalchemy.ext.asyncio", "psycopg", "pymysql", "asyncpg", "aiomysql")

_CHILD = """
import json, sys
from sqlalchemy import event
from sqlalchemy.pool import Pool

logins = []
event.listen(Pool, "connect", lambda *args: logins.append(1))  # any SQLAlchemy login
from dbwire.cli import main

watched = json.loads(sys.argv[1])
sys.argv = ["dbwire", "collect", *sys.argv[2:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({
    "code": code,
    "loaded": sorted(m for m in watched if m in sys.modules),
    "sqlalchemy_logins": len(logins),
}))
"""


def _child_env() -> dict[str, str]:
    """This environment without dbwire's, libpq's or DATABASE_URL settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBWIRE_", "PG"))}
    env.pop("DATABASE_URL", None)
    return env


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
) -> Iterator[tuple[Path, str]]:
    """A folder with dbwire.toml naming both servers, and a table of the same name in each."""
    folder = tmp_path_factory.mktemp("collect-imports")
    name = f"imp_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} AS SELECT g AS id, md5(g::text) AS tag "  # type: ignore[arg-type]
            f"FROM generate_series(1, 2000) g"
        )
    my = dbwire.connect(mysql_server.url, name="setup")
    my.execute_query(f"CREATE TABLE {name} (id INT PRIMARY KEY, v DOUBLE)")
    my.execute_query(f"INSERT INTO {name} SELECT seq, seq / 3 FROM seq_1_to_2000")
    (folder / "dbwire.toml").write_text(
        f'[databases.pg]\nurl = "{pg_server.url}"\n\n[databases.my]\nurl = "{mysql_server.url}"\n'
    )
    yield folder, name
    my.execute_query(f"DROP TABLE {name}")
    my.close()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "method", "expected", "allowed"),
    [
        ("pg", None, "duckdb", []),
        ("pg", "adbc", "adbc", []),
        # connectorx retries a refused login for 30 s, so the backend's own driver logs
        # in first (and reads MariaDB's DECIMAL types): that driver, and only that one.
        ("my", None, "connectorx", ["pymysql"]),
        ("pg", "connectorx", "connectorx", ["psycopg"]),
    ],
)
def test_a_collect_imports_only_what_its_method_uses(
    project: tuple[Path, str], name: str, method: str | None, expected: str, allowed: list[str]
) -> None:
    folder, table = project
    args = [name, table, "--into", str(folder / f"{name}-{method}.duckdb"), "-t", "t", "--json"]
    if method:
        args += ["--method", method]
    env = _child_env()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(WATCHED), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary, report = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert report["code"] == 0, proc.stderr
    assert (summary["method"], summary["rows"]) == (expected, 2000)
    assert report["loaded"] == allowed
    assert report["sqlalchemy_logins"] == 0


_API_CHILD = """
import json, sys
import dbwire

url, table, out, method = sys.argv[1:5]
db = dbwire.connect(url, name="api")
with dbwire.get_duckdb_connection(out) as store:
    rows = store.collect(db, table, table="t", method=method or None)
db.close()
watched = ["sqlalchemy", "asyncio", *json.loads(sys.argv[5])]
print(json.dumps({"rows": rows, "loaded": sorted(m for m in watched if m in sys.modules)}))
"""


@pytest.mark.parametrize(
    ("name", "method", "allowed"),
    [
        ("pg", "", []),
        ("pg", "adbc", []),
        ("my", "", ["pymysql"]),
        ("pg", "connectorx", ["asyncio", "psycopg"]),  # psycopg imports asyncio itself
    ],
)
def test_a_collect_through_the_python_api_never_imports_sqlalchemy(
    project: tuple[Path, str],
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
    name: str,
    method: str,
    allowed: list[str],
) -> None:
    """dbwire.connect(url) and store.collect() by DuckDB, ADBC or connectorx: the Database
    builds no engine, so SQLAlchemy (0.13 s and tens of MB) is never imported, nor asyncio
    (15 ms), which only async engines and checks need."""
    folder, table = project
    url = pg_server.url if name == "pg" else mysql_server.url
    out = str(folder / f"api-{name}-{method}.duckdb")
    env = _child_env()
    proc = subprocess.run(
        [sys.executable, "-c", _API_CHILD, url, table, out, method, json.dumps(WATCHED)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report == {"rows": 2000, "loaded": allowed}


def test_the_libpq_version_read_without_psycopg_is_the_one_psycopg_loads() -> None:
    """Credential resolution asks the libpq version without importing psycopg (binary
    wheel on Linux); anything else says None, and the caller imports psycopg."""
    from dbwire.credentials._libpq import bundled_libpq_major

    wheel_layout = psycopg.pq.__impl__ == "binary" and sys.platform.startswith("linux")
    major = psycopg.pq.version() // 10000
    assert bundled_libpq_major() == (major if wheel_layout else None)


def test_the_bundled_libpq_version_is_read_without_loading_libpq() -> None:
    """The wheel's libpq file name carries its major version (libpq.so.5.<major>): a
    collect that never connects through libpq does not map it, nor its TLS libraries."""
    if not (psycopg.pq.__impl__ == "binary" and sys.platform.startswith("linux")):
        pytest.skip("psycopg's binary wheel on Linux only")  # the CI machine has it
    code = (
        "from dbwire.credentials._libpq import bundled_libpq_major\n"
        "major = bundled_libpq_major()\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(major, 'libpq-' in maps, 'libssl' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(psycopg.pq.version() // 10000), "False", "False"]
