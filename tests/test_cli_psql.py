"""`dbwire query` as psql users expect it: the installed command against real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from servers import DatabaseServer

DBWIRE = Path(sys.executable).parent / "dbwire"


def _config(tmp_path: Path, **urls: str) -> Path:
    path = tmp_path / "dbwire.toml"
    path.write_text("".join(f'[databases.{n}]\nurl = "{u}"\n' for n, u in urls.items()))
    return path


def _dbwire(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(DBWIRE), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


def test_statements_split_sql_aware_and_run_in_order(
    tmp_path: Path, pg_url: str, pg_server: DatabaseServer
) -> None:
    cfg = str(_config(tmp_path, main=pg_url))
    sql = """
        DROP TABLE IF EXISTS "semi;colon";
        CREATE TABLE "semi;colon" (id int, note text);  -- a comment; with a semicolon
        INSERT INTO "semi;colon" VALUES (1, 'a;b'), (2, E'it\\'s; :x');
        /* block; comment */ UPDATE "semi;colon" SET note = note || $tag$;$$;$tag$ WHERE id = 1;
        SELECT id, note, 'ratio :x' AS lit, '{"a":1}'::jsonb AS doc FROM "semi;colon" ORDER BY id;
        DELETE FROM "semi;colon" WHERE id > 5;
    """
    run = _dbwire("query", "main", sql, "-c", cfg)
    assert run.returncode == 0, run.stderr
    tags = [
        line for line in run.stdout.splitlines() if not line.startswith(("┏", "┃", "┡", "│", "└"))
    ]
    assert tags == ["DROP TABLE", "CREATE TABLE", "INSERT 0 2", "UPDATE 1", "DELETE 0"]
    as_json = _dbwire("query", "main", sql, "-c", cfg, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"id": 1, "note": "a;b;$$;", "lit": "ratio :x", "doc": {"a": 1}},
        {"id": 2, "note": "it's; :x", "lit": "ratio :x", "doc": {"a": 1}},
    ]
    assert pg_server.password not in run.stdout + run.stderr + as_json.stderr


@pytest.mark.parametrize("backend", ["pg", "mysql", "sqlite"])
def test_only_given_params_are_bound(
    tmp_path: Path, backend: str, pg_url: str, mysql_url: str
) -> None:
    url = {"pg": pg_url, "mysql": mysql_url, "sqlite": f"sqlite:///{tmp_path}/p.db"}[backend]
    cfg = str(_config(tmp_path, db=url))
    sql = "SELECT :id AS id, ':id' AS lit, '50%' AS pct, ':other' AS other"
    run = _dbwire("query", "db", sql, "-c", cfg, "--param", "id=42", "-F", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "id,lit,pct,other\n42,:id,50%,:other\n"
    bad = _dbwire("query", "db", "SELECT 1", "-c", cfg, "--param", "novalue")
    assert bad.returncode == 2 and "--param 'novalue' is not name=value" in bad.stderr


def test_mysql_backslash_strings_and_hash_comments(tmp_path: Path, mysql_url: str) -> None:
    cfg = str(_config(tmp_path, shop=mysql_url))
    sql = "SELECT 'a\\';b' AS s; # comment; here\nSELECT \"x;y\" AS t"
    run = _dbwire("query", "shop", sql, "-c", cfg, "-F", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "s\na';b\nt\nx;y\n"


def test_json_types_are_iso_and_base64(tmp_path: Path, pg_url: str) -> None:
    cfg = str(_config(tmp_path, main=pg_url))
    sql = (
        "SELECT timestamp '2024-01-02 03:04:05' AS ts, timestamptz '2024-01-02 03:04:05+00' AS tz,"
        " '\\x00ff'::bytea AS raw, interval '1 day 2 hours 3.5 seconds' AS span,"
        " interval '-90 minutes' AS back, 1.50::numeric AS num"
    )
    run = _dbwire("query", "main", sql, "-c", cfg, "--json")
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)
    assert row["ts"] == "2024-01-02T03:04:05"
    assert row["tz"].startswith("2024-01-02T03:04:05")
    assert row["raw"] == "AP8="  # base64 of 00 ff
    assert row["span"] == "P1DT2H3.5S"
    assert row["back"] == "-PT1H30M"
    assert row["num"] == "1.50"
    csv_run = _dbwire("query", "main", "SELECT '\\x00ff'::bytea AS raw", "-c", cfg, "-F", "csv")
    assert csv_run.stdout == "raw\n\\x00ff\n"


def test_sql_from_a_file_and_from_stdin(tmp_path: Path, pg_url: str) -> None:
    cfg = str(_config(tmp_path, main=pg_url))
    script = tmp_path / "q.sql"
    script.write_text("SELECT 1 AS a;\nSELECT 'two' AS b;\n")
    from_file = _dbwire("query", "main", "-f", str(script), "-c", cfg, "-F", "csv")
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == "a\n1\nb\ntwo\n"
    from_dash = _dbwire("query", "main", "-", "-c", cfg, "-F", "csv", stdin=script.read_text())
    assert from_dash.stdout == from_file.stdout
    piped = _dbwire("query", "main", "-c", cfg, "-F", "csv", stdin="SELECT 3 AS c")
    assert piped.stdout == "c\n3\n"
    missing = _dbwire("query", "main", "-f", str(tmp_path / "nope.sql"), "-c", cfg)
    assert missing.returncode == 2 and "cannot read the SQL file" in missing.stderr


def test_a_failing_statement_stops_the_run_with_exit_1(tmp_path: Path, pg_url: str) -> None:
    cfg = str(_config(tmp_path, main=pg_url))
    run = _dbwire(
        "query",
        "main",
        "SELECT 1 AS a; SELECT * FROM nosuch; SELECT 3 AS c",
        "-c",
        cfg,
        "-F",
        "csv",
    )
    assert run.returncode == 1
    assert run.stdout == "a\n1\n"
    assert "nosuch" in run.stderr


def test_table_output_is_limited_and_says_so(tmp_path: Path, pg_url: str) -> None:
    cfg = str(_config(tmp_path, main=pg_url))
    run = _dbwire(
        "query", "main", "SELECT g FROM generate_series(1, 50) g", "-c", cfg, "--limit", "5"
    )
    assert run.returncode == 0, run.stderr
    assert "│ 5 " in run.stdout and "│ 6 " not in run.stdout
    assert "first 5 rows shown" in run.stderr
    csv_run = _dbwire(
        "query",
        "main",
        "SELECT g FROM generate_series(1, 50) g",
        "-c",
        cfg,
        "--limit",
        "7",
        "-F",
        "csv",
    )
    assert csv_run.stdout.splitlines() == ["g", *map(str, range(1, 8))]


MEMORY_BOUND_MB = 200


def test_two_million_rows_stream_as_csv_in_bounded_memory(tmp_path: Path, pg_url: str) -> None:
    """Peak RSS of the dbwire process (measured by a wrapper that waits for it alone)."""
    cfg = str(_config(tmp_path, main=pg_url))
    out = tmp_path / "big.csv"
    sql = "SELECT g AS id, md5(g::text) AS digest FROM generate_series(1, 2000000) g"
    wrapper = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[1], 'w') as out:\n"
        "    code = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(code, peak)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            str(out),
            str(DBWIRE),
            "query",
            "main",
            sql,
            "-c",
            cfg,
            "-F",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    code, peak_kb = map(int, done.stdout.split())
    assert code == 0, done.stderr
    with out.open() as f:
        assert next(f) == "id,digest\n"
        count = sum(1 for _ in f)
    assert count == 2_000_000
    peak_mb = peak_kb / 1024
    print(f"peak RSS of dbwire query, 2M rows as CSV: {peak_mb:.0f} MB")
    assert peak_mb < MEMORY_BOUND_MB
