"""store.collect(): every path, both modes, progress, the CLI, and bounded memory."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import dbwire
from dbwire.cli import app
from dbwire.errors import ConfigError
from dbwire.store.collect import CollectProgress, choose_method
from dbwire.store.local import get_duckdb_connection

REPO = Path(__file__).resolve().parent.parent


# Extensions from one folder per module, never downloaded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("hermetic_duckdb")


def _pg(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    """5,000 rows x 4 columns in a fresh schema: (schema-qualified name)."""
    schema = f"c_{uuid.uuid4().hex[:8]}"
    _pg(
        pg_url,
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.src AS SELECT g AS id, "
        "md5(g::text) AS tag, g * 0.5 AS half, (g % 7 = 0) AS lucky "
        "FROM generate_series(1, 5000) g",
    )
    yield f"{schema}.src"
    _pg(pg_url, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[dbwire.Database]:
    db = dbwire.connect(pg_url, name=f"cpg_{uuid.uuid4().hex[:6]}")
    yield db
    db.close()


def test_collect_from_postgres_query_and_table_in_both_modes(
    pg_db: dbwire.Database, pg_table: str
) -> None:
    assert choose_method(pg_db, pg_table) == "duckdb"
    with get_duckdb_connection() as store:
        n = store.collect(pg_db, f"SELECT * FROM {pg_table} WHERE id <= 1000", table="t")
        assert n == 1000
        assert store.execute(
            "SELECT count(*), sum(id), count(*) FILTER (lucky) FROM t"
        ).fetchone() == (
            1000,
            500500,
            142,
        )
        assert (
            store.collect(
                pg_db, f"SELECT * FROM {pg_table} WHERE id > 4990", table="t", mode="append"
            )
            == 10
        )
        assert store.execute("SELECT count(*) FROM t").fetchone() == (1010,)
        # replace really replaces; a whole table by name; a schema-qualified target
        assert store.collect(pg_db, pg_table, table="stage.copy") == 5000
        assert store.collect(pg_db, pg_table, table="stage.copy") == 5000
        assert store.execute("SELECT count(*) FROM stage.copy").fetchone() == (5000,)
        types = dict(
            store.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'copy'"
            ).fetchall()
        )
        assert (
            types
            == {"id": "INTEGER", "tag": "VARCHAR", "half": "DECIMAL(18,3)", "lucky": "BOOLEAN"}
            or types["lucky"] == "BOOLEAN"
        )
        # the source was attached read-only, once, and reused
        assert list(store.attached.values()) == [pg_db.name]


def test_every_method_gives_the_same_rows(pg_db: dbwire.Database, pg_table: str) -> None:
    query = f"SELECT id, tag, lucky FROM {pg_table} WHERE id % 3 = 0"
    seen: list[CollectProgress] = []
    with get_duckdb_connection() as store:
        counts = {
            method: store.collect(
                pg_db,
                query,
                table=f"via_{method}",
                method=method,
                batch_size=500,
                progress=seen.append,
            )
            for method in ("duckdb", "connectorx", "adbc", "sqlalchemy")
        }
        assert counts == {"duckdb": 1666, "connectorx": 1666, "adbc": 1666, "sqlalchemy": 1666}
        for method in ("connectorx", "adbc", "sqlalchemy"):
            diff = store.execute(
                f"SELECT count(*) FROM (FROM via_duckdb EXCEPT FROM via_{method})"
            ).fetchone()
            assert diff == (0,), method
    batch_reports = [p for p in seen if p.method == "sqlalchemy"]
    assert [p.rows for p in batch_reports] == [500, 1000, 1500, 1666]


def test_a_collect_whose_login_fails_leaves_no_schema_behind(pg_url: str) -> None:
    """The target's schema is created only once the source is attached: a refused login
    is an error and the store is as it was."""
    from urllib.parse import urlsplit

    parts = urlsplit(pg_url)
    wrong = pg_url.replace(f":{parts.password}@", ":not-the-password@")
    db = dbwire.connect(wrong, name="pg_refused")
    try:
        with get_duckdb_connection() as store:
            with pytest.raises(dbwire.DbwireError, match="pg_refused"):
                store.collect(db, "anything", table="fresh_schema.t", method="duckdb")
            found = store.execute(
                "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'fresh_schema'"
            ).fetchone()
            assert found == (0,)
    finally:
        db.close()


def test_a_collect_through_duckdb_resolves_the_login_once(
    pg_db: dbwire.Database, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding the attachment and making it share one resolution (a provider's call, the
    service file and .pgpass read once), also for a second collect on the same attachment."""
    backend_class = type(pg_db.backend)
    resolve = backend_class.resolve_params
    calls: list[int] = []

    def counted(self: object, **options: bool) -> object:
        calls.append(1)
        return resolve(self, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(backend_class, "resolve_params", counted)
    with get_duckdb_connection() as store:
        assert store.collect(pg_db, pg_table, table="once", method="duckdb") == 5000
        assert len(calls) == 1
        assert store.collect(pg_db, pg_table, table="again", method="duckdb") == 5000
        assert len(calls) == 2


def test_every_method_counts_its_rows_without_a_progress_callback(
    pg_db: dbwire.Database, pg_table: str
) -> None:
    """Without progress the Arrow paths leave the counting to DuckDB: the count returned
    is the table's, in replace mode and in append mode."""
    query = f"SELECT id, tag, lucky FROM {pg_table} WHERE id % 3 = 0"
    with get_duckdb_connection() as store:
        for method in ("duckdb", "connectorx", "adbc", "sqlalchemy"):
            target = f"quiet_{method}"
            assert store.collect(pg_db, query, table=target, method=method) == 1666
            appended = store.collect(pg_db, query, table=target, method=method, mode="append")
            assert appended == 1666, method
            assert store.execute(f"SELECT count(*) FROM {target}").fetchone() == (3332,)


def test_collect_from_mariadb_sqlite_and_duckdb(mysql_url: str, tmp_path: Path) -> None:
    my = dbwire.connect(mysql_url, name="cmy")
    table = f"m_{uuid.uuid4().hex[:6]}"
    lite_path = tmp_path / "c.sqlite"
    with sqlite3.connect(lite_path) as conn:
        conn.execute("CREATE TABLE s (id INTEGER, v TEXT)")
        conn.executemany("INSERT INTO s VALUES (?, ?)", [(i, f"v{i}") for i in range(300)])
    lite = dbwire.connect(f"sqlite:///{lite_path}", name="clite")
    try:
        my.execute_query(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))")
        my.execute_query(f"INSERT INTO {table} SELECT seq, concat('v', seq) FROM seq_1_to_2000")
        with get_duckdb_connection(tmp_path / "out") as store:
            assert choose_method(my, table) == "connectorx"
            assert store.collect(my, table, table="my_fast") == 2000
            assert (
                store.collect(
                    my, f"SELECT * FROM {table} WHERE id <= 10", table="my_ext", method="duckdb"
                )
                == 10
            )
            assert store.execute("SELECT max(v) FROM my_ext").fetchone() == ("v9",)
            assert choose_method(lite, "s") == "duckdb"
            assert store.collect(lite, "s", table="lite_t") == 300
            assert choose_method(lite, "SELECT 1") == "sqlalchemy"
            assert store.collect(lite, "SELECT id FROM s WHERE id < 5", table="lite_q") == 5
    finally:
        my.execute_query(f"DROP TABLE {table}")
        my.close()
        lite.close()


def test_bad_arguments_are_refused_and_names_are_quoted(pg_db: dbwire.Database) -> None:
    with get_duckdb_connection() as store:
        with pytest.raises(ConfigError, match="mode"):
            store.collect(pg_db, "SELECT 1", table="t", mode="merge")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="method"):
            store.collect(pg_db, "SELECT 1", table="t", method="magic")
        evil = 'x"; DROP TABLE keep; --'
        store.execute("CREATE TABLE keep AS SELECT 1 AS i")
        assert store.collect(pg_db, "SELECT 1 AS one", table=evil) == 1
        assert store.execute("SELECT count(*) FROM keep").fetchone() == (1,)
        assert store.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": evil}
        ).fetchone() == (1,)


def test_cli_collect_fills_a_file(pg_url: str, pg_table: str, tmp_path: Path) -> None:
    config = tmp_path / "dbwire.toml"
    config.write_text(f'[databases.main]\nurl = "{pg_url}"\n')
    into = tmp_path / "local" / "x.duckdb"
    result = CliRunner().invoke(
        app,
        [
            "collect",
            "main",
            f"SELECT * FROM {pg_table}",
            "--into",
            str(into),
            "--table",
            "t",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "collected 5,000 rows" in result.output
    assert pg_url.split(":")[2].split("@")[0] not in result.output  # the password
    with get_duckdb_connection(into) as store:
        assert store.execute("SELECT count(*) FROM t").fetchone() == (5000,)


def test_collecting_5m_rows_keeps_memory_bounded(
    pg_server: object, pg_url: str, tmp_path: Path
) -> None:
    """5M rows from PostgreSQL into a file store, in a child process: peak RSS < 1 GB."""
    table = f"big_{uuid.uuid4().hex[:6]}"
    _pg(
        pg_url,
        f"CREATE UNLOGGED TABLE {table} AS SELECT g::bigint AS id, g % 1000 AS k "
        "FROM generate_series(1, 5000000) g",
    )
    script = textwrap.dedent(
        f"""
        import json, resource, sys, time
        import dbwire
        db = dbwire.connect({pg_url!r}, name="big")
        started = time.perf_counter()
        with dbwire.get_duckdb_connection({str(tmp_path / "big.duckdb")!r},
                                          memory_limit="512MB") as store:
            n = store.collect(db, "SELECT * FROM {table}", table="big")
        seconds = time.perf_counter() - started
        # VmHWM, not ru_maxrss: Linux carries the forking parent's peak (this pytest
        # process, which grows over the suite) into a child's ru_maxrss across exec.
        with open("/proc/self/status") as status:
            peak = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
        print(json.dumps({{"rows": n, "seconds": seconds, "peak": peak}}))
        """
    )
    try:
        run = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        import resource

        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(f"5M rows: {report['seconds']:.2f}s, peak RSS {report['peak'] / 2**20:.0f} MiB")
        assert report["rows"] == 5_000_000
        assert report["peak"] < 1_000_000_000
        assert children_peak >= report["peak"] * 0.5  # the kernel saw the same child
    finally:
        _pg(pg_url, f"DROP TABLE {table}")
