"""The s3 backend and S3 in the store, against a local S3 server (moto, on loopback)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pymysql
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import dbwire
from dbwire.cli import app
from dbwire.errors import ConfigError, DbwireError
from dbwire.store.local import get_duckdb_connection
from servers import free_port

KEY_ID = "AKIDLOCALTEST"
SECRET_KEY = f"s3-canary-{uuid.uuid4().hex[:12]}"
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (nothing leaves the machine)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    name = f"lake-{uuid.uuid4().hex[:8]}"
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{s3_endpoint}",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="data/people.csv", Body=b"id,name\n1,ada\n2,bob\n")
    client.put_object(Bucket=name, Key="data/readme.txt", Body=b"not data")
    return name


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, hermetic_duckdb: None) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)


def _options(endpoint: str) -> dict[str, str]:
    return {"endpoint": endpoint, "url_style": "path", "use_ssl": "false", "region": "us-east-1"}


@pytest.fixture
def lake(s3_endpoint: str, bucket: str) -> Iterator[dbwire.Database]:
    db = dbwire.connect(
        f"s3://{bucket}/data",
        name=f"lake_{uuid.uuid4().hex[:6]}",
        user=KEY_ID,
        password=SECRET_KEY,
        options=_options(s3_endpoint),
    )
    yield db
    db.close()


def test_an_s3_database_has_no_sqlalchemy_engine(lake: dbwire.Database) -> None:
    with pytest.raises(DbwireError, match="no SQLAlchemy engine") as caught:
        _ = lake.engine
    assert "execute_query" in str(caught.value)
    assert SECRET_KEY not in repr(lake) and SECRET_KEY not in str(caught.value)


def test_execute_query_and_get_schema(lake: dbwire.Database, bucket: str) -> None:
    columns, rows = lake.execute_query(
        f"SELECT name FROM 's3://{bucket}/data/people.csv' WHERE id = $id", {"id": 2}
    )
    assert columns == ["name"] and rows == [{"name": "bob"}]
    tables = {t.name: t for t in lake.get_schema()}
    assert "readme.txt" not in tables
    people = tables["people.csv"]
    assert people.schema == f"s3://{bucket}/data" and people.kind == "file"
    assert [(c.name, c.type) for c in people.columns] == [("id", "BIGINT"), ("name", "VARCHAR")]


async def test_async_twins_work_too(lake: dbwire.Database, bucket: str) -> None:
    _, rows = await lake.async_execute_query(
        f"SELECT count(*) AS n FROM 's3://{bucket}/data/*.csv'"
    )
    assert rows == [{"n": 2}]
    assert any(t.name == "people.csv" for t in await lake.async_get_schema())


def test_attach_reads_and_writes_parquet_csv_json(lake: dbwire.Database, bucket: str) -> None:
    base = f"s3://{bucket}/data/out-{uuid.uuid4().hex[:6]}"
    with get_duckdb_connection(config=OFFLINE) as store:
        store.attach(lake)
        store.attach(lake)  # idempotent
        for fmt in ("parquet", "csv", "json"):
            store.execute(
                f"COPY (SELECT range AS id, 'n' || range AS name FROM range(100)) "
                f"TO '{base}.{fmt}' (FORMAT {fmt})"
            )
            row = store.execute(f"SELECT count(*), max(id) FROM '{base}.{fmt}'").fetchone()
            assert row == (100, 99), fmt
        secrets = store.execute(
            "SELECT name, scope, secret_string FROM duckdb_secrets()"
        ).fetchall()
        assert len(secrets) == 1
        name, scope, shown = secrets[0]
        assert scope == [f"s3://{bucket}"]  # scoped to the bucket
        assert "secret=redacted" in shown and SECRET_KEY not in shown
        assert store.execute(
            "SELECT name FROM which_secret($path, 's3')", {"path": f"{base}.parquet"}
        ).fetchone() == (name,)
        assert store.detach(lake.name)
        assert store.execute("SELECT count(*) FROM duckdb_secrets()").fetchone() == (0,)


def test_collect_from_s3_by_key_or_query(lake: dbwire.Database, bucket: str) -> None:
    with get_duckdb_connection(config=OFFLINE) as store:
        assert store.collect(lake, "people.csv", table="people") == 2
        query = f"SELECT name FROM 's3://{bucket}/data/people.csv' WHERE id = 1"
        assert store.collect(lake, query, table="ada", mode="append") == 1
        assert store.execute("SELECT name FROM ada").fetchall() == [("ada",)]


def test_the_aws_credential_chain(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, bucket: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    # chain=env: only the environment, so no lookup of an instance role over the network.
    db = dbwire.connect(
        f"s3://{bucket}/data", name="chain", options={**_options(s3_endpoint), "chain": "env"}
    )
    try:
        _, rows = db.execute_query(f"SELECT count(*) AS n FROM 's3://{bucket}/data/people.csv'")
        assert rows == [{"n": 2}]
    finally:
        db.close()


def test_bad_s3_settings_say_what_to_fix(s3_endpoint: str) -> None:
    half = dbwire.connect("s3://b/p", name="half", user="only-a-key-id")
    try:
        with pytest.raises(ConfigError, match="secret access key"):
            half.execute_query("SELECT 1")
        # A malformed option is refused when the Database is built, before any request.
        with pytest.raises(ConfigError, match="use_ssl='maybe' is not valid: expected true"):
            dbwire.connect("s3://b/p", name="badbool", options={"use_ssl": "maybe"})
    finally:
        half.close()


# -- one statement across PostgreSQL, MariaDB and S3 ------------------------------------------
def _pg(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def _my(url: str, sql: str) -> None:
    u = make_url(url)
    conn = pymysql.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
    )
    try:
        with conn.cursor() as cur:
            for statement in sql.split(";"):
                if statement.strip():
                    cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def three_sources(
    tmp_path: Path, pg_url: str, mysql_url: str, s3_endpoint: str, bucket: str
) -> Iterator[tuple[Path, str]]:
    """A config with a PostgreSQL, a MariaDB and an S3 database, each holding join data."""
    tag = uuid.uuid4().hex[:6]
    _pg(
        pg_url,
        f"CREATE TABLE customers_{tag} (id INT PRIMARY KEY, name TEXT); "
        f"INSERT INTO customers_{tag} VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')",
    )
    _my(
        mysql_url,
        f"CREATE TABLE orders_{tag} (id INT PRIMARY KEY, customer_id INT, amount INT); "
        f"INSERT INTO orders_{tag} VALUES (10, 1, 5), (11, 2, 7), (12, 2, 1)",
    )
    with get_duckdb_connection(config=OFFLINE) as store:
        store.load_extension("httpfs")
        store.execute(
            "CREATE SECRET w (TYPE s3, KEY_ID $k, SECRET $s, ENDPOINT $e, URL_STYLE 'path', "
            "USE_SSL false, REGION 'us-east-1')",
            {"k": KEY_ID, "s": SECRET_KEY, "e": s3_endpoint},
        )
        store.execute(
            "COPY (SELECT * FROM (VALUES (1, 'north'), (2, 'south')) v(customer_id, region)) "
            f"TO 's3://{bucket}/join/regions_{tag}.parquet' (FORMAT parquet)"
        )
    config = tmp_path / "dbwire.toml"
    config.write_text(
        f"""
[databases.pg]
url = "{pg_url}"

[databases.shop]
url = "{mysql_url}"

[databases.lake]
url = "s3://{bucket}/join"
user = "{KEY_ID}"
password = "{SECRET_KEY}"
options = {json.dumps(_options(s3_endpoint)).replace('": ', '" = ')}
"""
    )
    yield config, tag
    _pg(pg_url, f"DROP TABLE customers_{tag}")
    _my(mysql_url, f"DROP TABLE orders_{tag}")


def _join(bucket: str, tag: str) -> str:
    return (
        "SELECT c.name, sum(o.amount) AS total, r.region "
        f"FROM pg.public.customers_{tag} c "
        f"JOIN shop.orders_{tag} o ON o.customer_id = c.id "
        f"JOIN 's3://{bucket}/join/regions_{tag}.parquet' r ON r.customer_id = c.id "
        "GROUP BY ALL ORDER BY c.name"
    )


def test_dbwire_sql_joins_postgres_mariadb_and_s3_offline(
    three_sources: tuple[Path, str],
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
    mysql_url: str,
) -> None:
    config, tag = three_sources
    # A fresh, empty extension folder and no downloads: only the shipped wheels can serve.
    fresh = tmp_path / "fresh-extensions"
    monkeypatch.setenv("DBWIRE_DUCKDB_EXTENSION_DIRECTORY", str(fresh))
    runner = CliRunner()
    result = runner.invoke(
        app, ["sql", _join(bucket, tag), "--format", "json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"name": "ada", "total": 5, "region": "north"},
        {"name": "bob", "total": 8, "region": "south"},
    ]
    assert sorted(p.name for p in fresh.glob("v*/*/*.duckdb_extension")) == [
        "httpfs.duckdb_extension",
        "mysql_scanner.duckdb_extension",
        "postgres_scanner.duckdb_extension",
    ]

    csv_run = runner.invoke(
        app, ["sql", "--format", "csv", "--config", str(config)], input=_join(bucket, tag)
    )
    assert csv_run.exit_code == 0, csv_run.output
    assert csv_run.stdout.splitlines() == ["name,total,region", "ada,5,north", "bob,8,south"]

    table_run = runner.invoke(
        app, ["sql", "-i", "--config", str(config)], input=_join(bucket, tag) + ";\n.quit\n"
    )
    assert table_run.exit_code == 0, table_run.output
    assert "ada" in table_run.stdout and "south" in table_run.stdout

    secrets = [
        SECRET_KEY,
        make_url(pg_url).password or "-",
        make_url(mysql_url).password or "-",
    ]
    failing = runner.invoke(app, ["sql", "SELECT * FROM pg.public.nope", "--config", str(config)])
    assert failing.exit_code == 1
    for run in (result, csv_run, table_run, failing):
        assert not any(s in run.output for s in secrets)


def test_dbwire_sql_warns_about_a_database_it_cannot_attach(tmp_path: Path) -> None:
    config = tmp_path / "dbwire.toml"
    config.write_text(
        '[databases.gone]\nurl = "postgresql://u:Sekrit-pw-42@127.0.0.1:1/x"\n'
        f'[databases.lite]\nurl = "sqlite:///{tmp_path / "l.db"}"\n'
    )
    # Attached only when asked for (--only) or named by a statement; a statement that does
    # not name it never tries.
    result = CliRunner().invoke(
        app, ["sql", "SELECT 1 AS one", "--only", "gone,lite", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "'gone' not attached" in result.output and "Sekrit-pw-42" not in result.output
    quiet = CliRunner().invoke(app, ["sql", "SELECT 1 AS one", "--config", str(config)])
    assert quiet.exit_code == 0 and "gone" not in quiet.output
    assert "one" in result.stdout


def test_health_check_lists_the_bucket(s3_endpoint: str, lake: dbwire.Database) -> None:
    assert lake.health_check().status == "healthy"
    # (moto accepts any key, so a missing bucket stands in for a refused one)
    missing = dbwire.connect(
        f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/data",
        name=f"missing_{uuid.uuid4().hex[:6]}",
        user=KEY_ID,
        password=SECRET_KEY,
        options=_options(s3_endpoint),
    )
    try:
        result = missing.health_check()
        assert result.status == "unhealthy"  # SELECT 1 alone would have said healthy
        assert SECRET_KEY not in (result.error or "")
    finally:
        missing.close()
