"""Each seed's own example code runs on dbwire.compat with only its import lines changed.

The seed code is kept in strings, as close to the seed documents as possible, and run
with exec(); where a seed elides something ("# ... use the connection"), the test
fills it in right after. SQLAlchemy 2 needs text() where a seed passes raw SQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbwire
from dbwire.compat import (
    PG,
    DatabaseConnection,
    DatabaseManager,
    Manager,
    NotConnectedError,
)
from dbwire.errors import ConfigError, DbwireError, ReadOnlyError


def run(source: str, **names: Any) -> dict[str, Any]:
    """exec() a seed snippet in a fresh namespace holding names; return the namespace."""
    namespace: dict[str, Any] = {"__name__": "seed_example", **names}
    exec(compile(textwrap.dedent(source), "seed_example.py", "exec"), namespace)
    return namespace


def _count(url: str, table: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- seed 000 (dma)

SEED_000_GET_ENGINE = """
from dbwire.compat import SourceInfo, get_engine   # was: from dma.lib.db.base import ...

src_info = SourceInfo(
    db_type="POSTGRES",
    username="user",
    password="password",
    hostname="localhost",
    port=5432,
)

engine = get_engine(src_info, database="mydb")
"""

SEED_000_LOCAL = """
from dbwire.compat import get_duckdb_connection   # was: from dma.lib.db.local import ...

with get_duckdb_connection() as local_db:
    # ... use the local_db connection
    answer = local_db.execute("SELECT 42").fetchone()
"""


def test_seed_000_get_engine_reaches_the_server(pg_url: str) -> None:
    url = make_url(pg_url)
    source = (
        SEED_000_GET_ENGINE.replace('"user"', repr(url.username))
        .replace('"password"', repr(url.password))
        .replace('"localhost"', repr(url.host))
        .replace("5432", str(url.port))
        .replace('"mydb"', repr(url.database))
    )
    engine = run(source)["engine"]
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == url.database
    finally:
        engine.dispose()


def test_seed_000_local_db_in_memory() -> None:
    assert run(SEED_000_LOCAL)["answer"] == (42,)


def test_seed_000_dma_keywords_put_temp_files_in_working_path(tmp_path: Path) -> None:
    work, export = tmp_path / "work", tmp_path / "export"
    source = """
    from dbwire.compat import get_duckdb_connection

    with get_duckdb_connection(working_path=work, export_path=export) as db:
        temp = db.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        db.execute("CREATE TABLE kept AS SELECT 7 AS v")

    with get_duckdb_connection(working_path=work, memory_limit="64MB") as db:
        # An in-memory table larger than memory_limit is offloaded to the temp directory.
        db.execute("CREATE TABLE big AS SELECT range AS i, md5(range::varchar) AS s "
                   "FROM range(3000000)")
        spilled = sorted(os.listdir(work))
    """
    ns = run(source, work=work, export=export, os=os)
    assert ns["temp"] == str(work)
    assert ns["spilled"], "no temporary file was written to working_path"
    assert (export / "assessment.db").is_file()
    # The store was closed on exit and the file holds what was written.
    with dbwire.get_duckdb_connection(export) as again:
        assert again.execute("SELECT v FROM kept").fetchone() == (7,)


def test_seed_000_positional_export_path_and_conflicting_temp(tmp_path: Path) -> None:
    from dbwire.compat import get_duckdb_connection

    with get_duckdb_connection(tmp_path / "out") as db:
        db.execute("CREATE TABLE t AS SELECT 1 AS v")
    assert (tmp_path / "out" / "assessment.db").is_file()
    with (
        pytest.raises(ConfigError, match="working_path and temp_directory"),
        get_duckdb_connection(working_path=tmp_path / "a", temp_directory=tmp_path / "b"),
    ):
        pass


# --------------------------------------------------------------------------- seed 001 (dm-dbcore)

SEED_001_CONNECTION_MODULE = """
from contextlib import contextmanager
from sqlalchemy.engine import URL
from dbwire.compat import DatabaseConnection, session_scope as _session_scope

# ... config loading and pgpass password lookup ...

database_connection_url = URL.create(
    "postgresql+psycopg",
    username=db_config["user"],
    password=db_config["password"] or None,
    host=db_config["host"],
    port=db_config["port"],
    database=db_config["database"],
)

database_connection_string = database_connection_url.render_as_string(
    hide_password=False
)

try:
    db = DatabaseConnection()
except AssertionError:
    db = DatabaseConnection(
        database_connection_string=database_connection_string,
        cache_name="project_metadata_cache.pickle",
    )

engine = db.engine
metadata = db.metadata
Session = db.Session

def get_session():
    return db.Session()

@contextmanager
def session_scope():
    with _session_scope(db) as session:
        yield session
"""

SEED_001_APP = """
session = Session()
star_count = session.query(Star).count()
print(f"rows: {star_count}")
"""


class _Base(DeclarativeBase):
    pass


class Star(_Base):
    __tablename__ = "compat_star"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


@pytest.fixture
def no_connection() -> Iterator[None]:
    DatabaseConnection._current = None
    yield
    current = DatabaseConnection._current
    if current is not None:
        current.close()
    DatabaseConnection._current = None


@pytest.fixture
def stars(pg_url: str) -> Iterator[str]:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    _Base.metadata.drop_all(engine)
    _Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO compat_star (id, name) VALUES (1, 'a'), (2, 'b')"))
    yield pg_url
    _Base.metadata.drop_all(engine)
    engine.dispose()


def test_seed_001_connection_module_and_app(
    stars: str,
    no_connection: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = make_url(stars)
    monkeypatch.chdir(tmp_path)
    # No password in the module: dbwire finds it in ~/.pgpass, as the elided lookup did.
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{url.host}:{url.port}:{url.database}:{url.username}:{url.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    db_config = {
        "user": url.username,
        "password": "",
        "host": url.host,
        "port": url.port,
        "database": url.database,
    }
    with pytest.raises(AssertionError):
        DatabaseConnection()
    module = run(SEED_001_CONNECTION_MODULE, db_config=db_config)
    assert "compat_star" in module["metadata"].tables
    assert (tmp_path / "project_metadata_cache.pickle").is_file()

    app = run(SEED_001_APP, Session=module["Session"], Star=Star)
    assert capsys.readouterr().out == "rows: 2\n"
    app["session"].close()  # the seed's app leaves its session open

    # A second connection module reuses the process's connection and engine.
    second = run(SEED_001_CONNECTION_MODULE, db_config=db_config)
    assert second["db"] is module["db"]
    assert second["engine"] is module["engine"]

    # session_scope(): committed on success, rolled back on error.
    session_scope = module["session_scope"]
    with session_scope() as session:
        session.add(Star(id=3, name="c"))
    with pytest.raises(RuntimeError), session_scope() as session:
        session.add(Star(id=4, name="d"))
        session.flush()
        raise RuntimeError("boom")
    assert _count(stars, "compat_star") == 3
    get_session = module["get_session"]
    with get_session() as s:
        assert s.get(Star, 3) is not None and s.get(Star, 4) is None

    # Closed: DatabaseConnection() refuses again, and AssertionError is a DbwireError.
    module["db"].close()
    with pytest.raises(NotConnectedError) as caught:
        DatabaseConnection()
    assert isinstance(caught.value, DbwireError)
    assert "database_connection_string" in str(caught.value)
    assert str(url.password) not in str(caught.value)


def test_seed_001_metadata_cache_serves_a_new_connection(
    stars: str, no_connection: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = make_url(stars).set(drivername="postgresql+psycopg")
    conn_string = url.render_as_string(hide_password=False)
    first = DatabaseConnection(database_connection_string=conn_string, cache_name="c.pickle")
    assert "compat_star" in first.metadata.tables
    first.close()
    # A new table is not seen: the second connection loads the cached reflection.
    with create_engine(conn_string).begin() as c:
        c.execute(text("CREATE TABLE compat_later (v int)"))
    try:
        second = DatabaseConnection(database_connection_string=conn_string, cache_name="c.pickle")
        assert second is not first and DatabaseConnection() is second
        assert "compat_star" in second.metadata.tables
        assert "compat_later" not in second.metadata.tables
    finally:
        with create_engine(conn_string).begin() as c:
            c.execute(text("DROP TABLE compat_later"))


# --------------------------------------------------------------------------- seed 002 (workers)

SEED_002_APP = """
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session
from sqlalchemy.ext.asyncio import AsyncSession
from dbwire.compat import DatabaseManager   # was: from app.db import DatabaseManager

db_manager = DatabaseManager.get_instance()
db_manager.init_worker()

router = APIRouter()

@router.get("/items")
def list_items(db: Session = Depends(db_manager.get_db)):
    # Use db session
    return {"count": db.execute(text("SELECT count(*) FROM compat_items")).scalar_one()}

@router.post("/items")
def add_item(name: str, db: Session = Depends(db_manager.get_db)):
    db.execute(text("INSERT INTO compat_items (name) VALUES (:n)"), {"n": name})
    if name == "bad":
        raise ValueError("refused after the insert")
    return {"added": name}

@router.get("/async-items")
async def list_async(db: AsyncSession = Depends(db_manager.get_async_db)):
    result = await db.execute(text("SELECT count(*) FROM compat_items"))
    return {"count": result.scalar_one()}

@router.post("/async-items")
async def add_async(name: str, db: AsyncSession = Depends(db_manager.get_async_db)):
    await db.execute(text("INSERT INTO compat_items (name) VALUES (:n)"), {"n": name})
    return {"added": name}

app = FastAPI()
app.include_router(router)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def app_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        ddl = "CREATE TABLE compat_items (id INTEGER PRIMARY KEY, name TEXT)"
    else:
        url = request.getfixturevalue("pg_url")
        ddl = "CREATE TABLE compat_items (id serial PRIMARY KEY, name text)"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS compat_items"))
        conn.execute(text(ddl))
    for key in list(os.environ):
        if key.startswith(("DBWIRE_", "PG")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    DatabaseManager._instance = None
    yield url
    instance = DatabaseManager._instance
    if instance is not None:
        instance.manager.close_all()
    DatabaseManager._instance = None
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE compat_items"))
    engine.dispose()


def test_seed_002_fastapi_dependencies_sync_and_async(app_url: str) -> None:
    from fastapi.testclient import TestClient

    ns = run(SEED_002_APP)
    with TestClient(ns["app"], raise_server_exceptions=False) as client:
        assert client.get("/items").json() == {"count": 0}
        assert client.post("/items", params={"name": "a"}).json() == {"added": "a"}
        # auto_commit is not a request parameter: a client cannot switch it off.
        assert (
            client.post("/items", params={"name": "b", "auto_commit": "false"}).status_code == 200
        )
        # The endpoint raised after its insert: rolled back, the data is unchanged.
        assert client.post("/items", params={"name": "bad"}).status_code == 500
        assert client.get("/items").json() == {"count": 2}
        assert client.post("/async-items", params={"name": "c"}).json() == {"added": "c"}
        assert client.get("/async-items").json() == {"count": 3}
    assert _count(app_url, "compat_items") == 3
    schema = ns["app"].openapi()
    params = schema["paths"]["/items"]["get"].get("parameters", [])
    assert all(p["name"] != "auto_commit" for p in params)


def test_seed_002_manager_is_one_instance_and_closes_workers(app_url: str) -> None:
    seen: list[DatabaseManager] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        seen.append(DatabaseManager.get_instance())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in seen}) == 1
    manager = seen[0]
    assert manager.db is dbwire.connect("default", config=None)

    # Direct use of the seed's generator with auto_commit=False: nothing is committed.
    gen = manager.get_db(auto_commit=False)
    session = next(gen)
    session.execute(text("INSERT INTO compat_items (name) VALUES ('x')"))
    gen.close()
    assert _count(app_url, "compat_items") == 0

    manager.init_worker()
    with manager.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert manager.db.get_pool_status().checked_in == 1

    async def worker() -> None:
        async with manager.db.async_session() as s:
            await s.execute(text("INSERT INTO compat_items (name) VALUES ('y')"))
        await manager.close_worker()  # the seed's close_worker is awaited

    asyncio.run(worker())
    assert manager.db.get_pool_status().checked_in == 0
    manager.close_worker()  # and may be called from sync code as well
    assert _count(app_url, "compat_items") == 1
    # The Database stays usable after a worker closed its pools.
    assert manager.db.execute_query("SELECT count(*) AS n FROM compat_items")[1] == [{"n": 1}]


# --------------------------------------------------------------------------- seed 003 (appinfra)

SEED_003_PG = """
from dbwire.compat import PG   # was: from appinfra.pg import PG

# Initialize PostgreSQL connection
pg = PG(logger, config, query_lg_level="debug")

# Connect and execute queries
conn = pg.connect()
session = pg.session()

# Health monitoring
health = pg.health_check()
pool_status = pg.get_pool_status()
"""

SEED_003_BASIC = """
from dbwire.compat import Manager   # was: from appinfra.db import Manager
import logging                      # was: from appinfra.log import LoggerFactory, LogConfig

# Setup logging
logger = logging.getLogger("app")   # was: LoggerFactory.create_root(LogConfig.from_params("info"))

# Database configuration
db_config = {
    "dbs": {
        "primary": {"url": "postgresql://localhost/mydb"}
    }
}

# Initialize manager
manager = Manager(logger, db_config)
manager.setup()

# Use database
db = manager.db("primary")
conn = db.connect()
# ... use connection
conn.close()
"""

SEED_003_ADVANCED = """
# Setup multiple databases
config = {
    "dbs": {
        "primary": {
            "url": "postgresql://localhost/primary",
            "pool_size": 10
        },
        "readonly": {
            "url": "postgresql://localhost/readonly",
            "readonly": True,
            "pool_size": 5
        }
    }
}

manager = Manager(logger, config)
manager.setup()

# Health monitoring
health_results = manager.health_check()
for db_name, result in health_results.items():
    if result["status"] == "healthy":
        print(f"✓ {db_name}: {result['response_time_ms']:.2f}ms")
    else:
        print(f"✗ {db_name}: {result['error']}")

# Connection statistics
stats = manager.get_stats()
print(f"Active connections: {stats['successful_setups']}")
print(f"Failed setups: {stats['failed_setups']}")
"""

SEED_003_SESSIONS = """
# Using database sessions
db = manager.db("primary")

# Context manager for automatic cleanup
with db.session() as session:
    result = session.execute(text("SELECT * FROM users"))
    users = result.fetchall()
    # Session automatically closed

# Manual session management
session = db.session()
try:
    result = session.execute(text("INSERT INTO users (name) VALUES ('John')"))
    session.commit()
finally:
    session.close()
"""


@pytest.fixture
def users(pg_url: str) -> Iterator[str]:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS users"))
        conn.execute(text("CREATE TABLE users (name text)"))
        conn.execute(text("INSERT INTO users VALUES ('Ann')"))
    yield pg_url
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE users"))
    engine.dispose()


def test_seed_003_pg(users: str, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("appinfra-test")
    config = {"url": users, "pool_size": 3}
    ns = run(SEED_003_PG, logger=logger, config=config)
    conn, session, pg = ns["conn"], ns["session"], ns["pg"]
    try:
        assert ns["health"]["status"] == "healthy"
        assert ns["health"].error is None
        assert ns["pool_status"].size == 3
        with caplog.at_level(logging.DEBUG):
            assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 1
        # query_lg_level="debug" logs each statement at DEBUG, with its timing.
        assert any(
            r.levelno == logging.DEBUG and "SELECT count(*) FROM users" in r.getMessage()
            for r in caplog.records
        )
        assert pg.get_pool_status().checked_out == 1
        session.execute(text("INSERT INTO users VALUES ('Bob')"))
        session.commit()
    finally:
        conn.close()
        session.close()
    assert pg.get_pool_status().checked_out == 0
    assert _count(users, "users") == 2
    # The Database behind PG is the one dbwire.connect() hands out for that config.
    assert pg.db is dbwire.connect(pg.db.config)
    pg.close()


def test_seed_003_manager_examples(
    users: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(users)
    base = users.rsplit("/", 1)[0]
    # The seed's URLs name localhost databases; point them at the throwaway server.
    basic = SEED_003_BASIC.replace("postgresql://localhost/mydb", f"{base}/{url.database}")
    ns = run(basic)
    assert not ns["manager"].errors
    assert ns["conn"].closed
    manager_basic = ns["manager"]

    advanced = SEED_003_ADVANCED.replace(
        "postgresql://localhost/primary", f"{base}/{url.database}"
    ).replace("postgresql://localhost/readonly", f"{base}/{url.database}")
    ns = run(advanced, Manager=Manager, logger=logging.getLogger("app"))
    out = capsys.readouterr().out
    assert "✓ primary:" in out and "✓ readonly:" in out
    assert "Active connections: 2\nFailed setups: 0\n" in out
    manager = ns["manager"]

    run(SEED_003_SESSIONS, manager=manager, text=text)
    assert _count(users, "users") == 2
    # The read-only database refuses the same insert, and the data is unchanged.
    ro = manager.db("readonly")
    session = ro.session()
    try:
        with pytest.raises(ReadOnlyError):
            session.execute(text("INSERT INTO users (name) VALUES ('Eve')"))
            session.commit()
    finally:
        session.close()
    assert _count(users, "users") == 2
    assert str(url.password) not in repr(manager) + repr(ro)
    manager.close_all()
    manager_basic.close_all()


def test_seed_003_pg_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"logging\.Logger"):
        PG(logging.getLogger("a"), logging.getLogger("b"))
    with pytest.raises(ConfigError):
        PG(logging.getLogger("a"), 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"logging\.Logger"):
        Manager(logging.getLogger("a"), logging.getLogger("b"))
