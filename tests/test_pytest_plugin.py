"""The pytest plugin, run the way its users run it: an inner test project under pytester.

Each inner project gets a dbwire.toml pointing at the real throwaway PostgreSQL server or a
SQLite file, and runs in a subprocess with `-p xdist -n 2`, so the plugin is loaded through
its entry point and both workers use the database at the same time.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from servers import DatabaseServer

pytest_plugins = ["pytester"]

TABLE = "plugin_rows"

# Inner test files. The table name is unique to these tests; A commits rows, B and C (the
# latter in another file, so xdist's load scheduling gives it to the other worker) find none.
COMMITS = f"""
import sqlalchemy as sa

def test_a_commits(db_session):
    db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('a')"))
    db_session.commit()
    # the commit is visible inside the test ...
    assert db_session.execute(sa.text("SELECT count(*) FROM {TABLE}")).scalar_one() == 1

def test_b_sees_nothing(db_session):
    # ... and gone for the next one
    assert db_session.execute(sa.text("SELECT count(*) FROM {TABLE}")).scalar_one() == 0

def test_savepoint_rollback_inside_test(db_session):
    db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('kept')"))
    db_session.commit()
    db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('undone')"))
    db_session.rollback()
    rows = db_session.execute(sa.text("SELECT v FROM {TABLE}")).scalars().all()
    assert rows == ["kept"]
    nested = db_session.begin_nested()
    db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('inner')"))
    nested.rollback()
    assert db_session.execute(sa.text("SELECT count(*) FROM {TABLE}")).scalar_one() == 1
"""

OTHER_WORKER = f"""
import sqlalchemy as sa

def test_c_commits_too(db_session):
    db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('c')"))
    db_session.commit()

def test_d_sees_nothing(db_session):
    assert db_session.execute(sa.text("SELECT count(*) FROM {TABLE}")).scalar_one() == 0

async def test_async_commits(async_db_session):
    await async_db_session.execute(sa.text("INSERT INTO {TABLE} (v) VALUES ('async')"))
    await async_db_session.commit()
    result = await async_db_session.execute(sa.text("SELECT count(*) FROM {TABLE}"))
    assert result.scalar_one() == 1

async def test_async_sees_nothing(async_db_session):
    result = await async_db_session.execute(sa.text("SELECT count(*) FROM {TABLE}"))
    assert result.scalar_one() == 0

def test_factory_names_the_same_database(dbwire_db, dbwire_database):
    assert dbwire_db("app") is dbwire_database
"""


def _inner_project(pytester: pytest.Pytester, url: str, ini_extra: str = "") -> None:
    pytester.makefile(".toml", dbwire=f'[databases.app]\nurl = "{url}"\n')
    pytester.makeini(
        textwrap.dedent(
            f"""
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            dbwire_config = dbwire.toml
            {ini_extra}
            """
        )
    )
    pytester.makepyfile(test_commits=COMMITS, test_other_worker=OTHER_WORKER)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "-p", "no:cacheprovider", *args, timeout=180
    )


def _count(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def pg_table(pg_url: str) -> str:
    """pg_url with an empty plugin_rows table in its database."""
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, v text)"))
    engine.dispose()
    return pg_url


@pytest.mark.postgres
def test_commits_in_db_session_leave_nothing_on_postgresql_under_two_workers(
    pytester: pytest.Pytester, pg_table: str
) -> None:
    _inner_project(pytester, pg_table)
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=8)
    # both workers ran tests: the isolation held across processes, not just in one
    assert "[gw0]" in result.stdout.str() and "[gw1]" in result.stdout.str()
    # and the real table is empty afterwards: every commit was rolled back
    assert _count(pg_table) == 0


def test_commits_in_db_session_leave_nothing_on_sqlite_under_two_workers(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "app.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, v text)"))
    engine.dispose()
    _inner_project(pytester, f"sqlite:///{path}")
    result = _run(pytester)
    result.assert_outcomes(passed=8)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 0
    engine.dispose()


FRESH = """
import os
import sqlalchemy as sa

def test_runs_in_its_workers_clone(dbwire_database, db_session):
    name = db_session.execute(sa.text("SELECT current_database()")).scalar_one()
    assert name == "plugin_tpl_test_" + os.environ["PYTEST_XDIST_WORKER"]
    assert dbwire_database.database_exists()
    # the clone carries the template's table, and commits here touch the clone only
    db_session.execute(sa.text("INSERT INTO plugin_rows (v) VALUES ('x')"))
    db_session.commit()
    with open(os.environ["FRESH_LOG"], "a") as log:
        log.write(name + "\\n")
"""


@pytest.fixture
def pg_template(pg_url: str) -> Iterator[str]:
    """A URL of a template database of its own holding plugin_rows: a clone needs its template
    free of other sessions, and the suite's other tests keep pooled connections to pg_url's."""
    admin = sa.create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS plugin_tpl"))
        conn.execute(sa.text("CREATE DATABASE plugin_tpl"))
    url = sa.make_url(pg_url).set(database="plugin_tpl").render_as_string(hide_password=False)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, v text)"))
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS plugin_tpl"))
    admin.dispose()


def _databases_like(url: str, pattern: str) -> list[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": pattern}
            )
            return sorted(found.scalars())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_fresh_database_per_worker_exists_during_the_run_and_is_gone_after(
    pytester: pytest.Pytester, pg_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "fresh.log"
    monkeypatch.setenv("FRESH_LOG", str(log))
    _inner_project(pytester, pg_template, ini_extra="dbwire_fresh_database = true")
    pytester.makepyfile(test_commits=FRESH, test_other_worker=FRESH.replace("test_runs", "test_2"))
    result = _run(pytester)
    result.assert_outcomes(passed=2)
    # each worker ran in its own clone, which existed while it ran ...
    seen = set(log.read_text().split())
    assert seen == {"plugin_tpl_test_gw0", "plugin_tpl_test_gw1"}
    # ... and is gone after the run
    assert _databases_like(pg_template, "plugin_tpl_test_%") == []
    # the template itself was never written to
    assert _count(pg_template) == 0


INERT = """
import sys

def test_loaded_and_light():
    # registered through the pytest11 entry point ...
    assert "dbwire.integrations.pytest_plugin" in sys.modules
    # ... and importing nothing heavy until a fixture is used: no ORM, no driver, no config
    # machinery (only dbwire's errors module, which `import dbwire` always loads)
    heavy = ["sqlalchemy.orm", "sqlalchemy.ext.asyncio", "psycopg", "asyncpg", "pydantic",
             "dbwire.config", "dbwire.database", "dbwire.manager"]
    assert [name for name in heavy if name in sys.modules] == []
"""


def test_plugin_is_loaded_light_and_inert_when_unused(pytester: pytest.Pytester) -> None:
    """A project without dbwire.toml and without the fixtures runs exactly as before."""
    pytester.makepyfile(INERT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*dbwire-*"])

    # nothing else from dbwire in the output: no warning, no option noise. Paths are left
    # out first: a checkout or venv may itself live in a folder called dbwire, and other
    # plugins' warnings name their files there.
    def mentions(lines: list[str]) -> list[str]:
        roots = {sys.prefix, str(Path(__file__).resolve().parents[1]), str(pytester.path)}
        cleaned = []
        for line in lines:
            for root in roots:
                line = line.replace(root, "<path>")
            cleaned.append(line)
        return [line for line in cleaned if "dbwire" in line]

    lines = mentions(result.outlines)
    assert len(lines) == 1 and lines[0].startswith("plugins:"), lines
    assert mentions(result.errlines) == []


def test_no_default_database_is_a_dbwire_error_naming_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        dbwire='[databases.one]\nurl = "sqlite://"\n[databases.two]\nurl = "sqlite://"\n',
    )
    pytester.makeini("[pytest]\ndbwire_config = dbwire.toml\n")
    pytester.makepyfile("def test_x(db_session):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigError*one, two*dbwire_database*--dbwire-database*"])


def test_command_line_options_choose_the_config_and_the_database(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text(
        f'[databases.one]\nurl = "sqlite:///{tmp_path}/one.db"\n'
        f'[databases.two]\nurl = "sqlite:///{tmp_path}/two.db"\n'
    )
    pytester.makepyfile(
        "def test_x(dbwire_database, dbwire_manager):\n"
        "    assert dbwire_database.name == 'two'\n"
        "    assert dbwire_manager.list_databases() == ['one', 'two']\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--dbwire-config={config}", "--dbwire-database=two"
    )
    result.assert_outcomes(passed=1)


FRESH_ANY = """
import os
import sqlalchemy as sa

def test_runs_in_its_workers_copy(dbwire_database, db_session):
    # the copy carries the template's table and rows; commits here touch the copy only
    assert db_session.execute(sa.text("SELECT v FROM plugin_rows")).scalars().all() == ["seed"]
    db_session.execute(sa.text("INSERT INTO plugin_rows (id, v) VALUES (2, 'x')"))
    db_session.commit()
    where = dbwire_database.connect_params().database
    with open(os.environ["FRESH_LOG"], "a") as log:
        log.write(os.path.basename(where) + "\\n")
"""


def _seeded(url: str | sa.URL) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, v text)"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, v) VALUES (1, 'seed')"))
    return engine


def _run_fresh(pytester: pytest.Pytester, url: str, log: Path) -> set[str]:
    _inner_project(pytester, url, ini_extra="dbwire_fresh_database = true")
    pytester.makepyfile(
        test_commits=FRESH_ANY, test_other_worker=FRESH_ANY.replace("test_runs", "test_2")
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)
    return set(log.read_text().split())


def test_fresh_database_per_worker_on_mariadb(
    pytester: pytest.Pytester,
    mysql_server: DatabaseServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Copies need CREATE and DROP on other databases: the server's admin login has them.
    admin_url = sa.make_url(mysql_server.admin_url)
    mysql_url = admin_url.set(database="plugin_tpl")
    admin = sa.create_engine(admin_url.set(drivername="mysql+pymysql"))
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE DATABASE IF NOT EXISTS plugin_tpl"))
    admin.dispose()
    log = tmp_path / "fresh.log"
    monkeypatch.setenv("FRESH_LOG", str(log))
    engine = _seeded(mysql_url.set(drivername="mysql+pymysql"))
    template = mysql_url.database
    try:
        url = mysql_url.render_as_string(hide_password=False)
        assert _run_fresh(pytester, url, log) == {
            f"{template}_test_gw0",
            f"{template}_test_gw1",
        }
        with engine.connect() as conn:
            # the copies are gone, and the template was never written to
            left = conn.execute(
                sa.text(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE :p"
                ),
                {"p": f"{template}_test_%"},
            ).all()
            assert left == []
            assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS plugin_tpl"))
        engine.dispose()


def test_fresh_database_per_worker_on_a_sqlite_file(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "fresh.log"
    monkeypatch.setenv("FRESH_LOG", str(log))
    path = tmp_path / "app.sqlite"
    _seeded(f"sqlite:///{path}").dispose()
    assert _run_fresh(pytester, f"sqlite:///{path}", log) == {
        "app_test_gw0.sqlite",
        "app_test_gw1.sqlite",
    }
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 1
    engine.dispose()
