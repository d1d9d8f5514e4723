"""Both forms of db.session() / db.async_session(): a `with` scope and a plain Session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dbwire import Database, DatabaseConfig, ReadOnlyError

TARGETS = ["sqlite-file", "duckdb-file", "postgresql", "mariadb"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, str]]:
    """A Database on each backend and a fresh table `(id, name)` on it."""
    kind = request.param
    if kind == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    elif kind == "duckdb-file":
        url = f"duckdb:///{tmp_path / 'app.duckdb'}"
    elif kind == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
    else:
        url = str(request.getfixturevalue("mysql_url")).replace("mysql://", "mariadb://", 1)
    db = Database(DatabaseConfig(name=f"forms_{kind}", url=url))
    table = f"forms_{uuid.uuid4().hex[:8]}"
    with db.session() as s:
        s.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
    yield db, table
    with db.session() as s:
        s.execute(text(f"DROP TABLE {table}"))
    db.close()


def _ids(db: Database, table: str) -> list[int]:
    with db.session() as s:
        return list(s.execute(text(f"SELECT id FROM {table} ORDER BY id")).scalars())


def test_manual_session_form_executes_commits_and_closes(target: tuple[Database, str]) -> None:
    db, table = target
    session = db.session()
    session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
    session.commit()
    session.close()
    # Uncommitted work of a plain session is gone when it is closed.
    session = db.session()
    session.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
    session.close()
    assert _ids(db, table) == [1]
    # The pool got its connections back: every checked-out connection was returned.
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_with_form_commits_rolls_back_and_closes(target: tuple[Database, str]) -> None:
    db, table = target
    with db.session() as s:
        s.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
    with pytest.raises(RuntimeError, match="boom"), db.session() as s:
        s.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
        raise RuntimeError("boom")
    with db.session(auto_commit=False) as s:
        s.execute(text(f"INSERT INTO {table} VALUES (3, 'c')"))
    assert _ids(db, table) == [1]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_plain_factory_keeps_sqlalchemy_semantics(target: tuple[Database, str]) -> None:
    """`with db.Session() as s:` only closes, as SQLAlchemy documents; it never commits."""
    db, table = target
    with db.Session() as s:
        s.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
    assert _ids(db, table) == []


def test_readonly_manual_session_keeps_its_guard(target: tuple[Database, str]) -> None:
    db, table = target
    session = db.session(readonly=True)
    try:
        with pytest.raises(ReadOnlyError):
            session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
        session.rollback()
        assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    finally:
        session.close()
    assert _ids(db, table) == []


def test_async_session_both_forms(target: tuple[Database, str]) -> None:
    db, table = target

    async def scenario() -> None:
        s = db.async_session()
        await s.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
        await s.commit()
        await s.close()
        s = db.async_session()
        await s.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
        await s.close()  # not committed: rolled back
        async with db.async_session() as s:
            await s.execute(text(f"INSERT INTO {table} VALUES (3, 'c')"))
        with pytest.raises(RuntimeError, match="boom"):
            async with db.async_session() as s:
                await s.execute(text(f"INSERT INTO {table} VALUES (4, 'd')"))
                raise RuntimeError("boom")
        ro = db.async_session(readonly=True)
        try:
            with pytest.raises(ReadOnlyError):
                await ro.execute(text(f"INSERT INTO {table} VALUES (5, 'e')"))
        finally:
            await ro.close()
        await db.async_engine.dispose()  # this loop's pool ends with the loop

    asyncio.run(scenario())
    assert _ids(db, table) == [1, 3]


def test_a_commit_that_fails_is_rolled_back_raised_and_closed(tmp_path: Path) -> None:
    """The scope's exit plan, sync and async: a failed COMMIT (a deferred foreign key) is
    rolled back, raised, and the connection goes back to the pool."""
    import sqlalchemy.exc

    db = Database(DatabaseConfig(name="forms_commit_fails", url=f"sqlite:///{tmp_path / 'f.db'}"))
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
            s.execute(
                text("CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
            )
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="FOREIGN KEY"), db.session() as s:
            s.execute(text("INSERT INTO c VALUES (99)"))  # refused only at COMMIT
        assert not s.in_transaction()
        assert db.execute_query("SELECT count(*) AS n FROM c")[1] == [{"n": 0}]
        assert db.get_pool_status().checked_out in (0, None)

        async def go() -> None:
            with pytest.raises(sqlalchemy.exc.IntegrityError, match="FOREIGN KEY"):
                async with db.async_session() as s:
                    await s.execute(text("INSERT INTO c VALUES (98)"))
            assert not s.in_transaction()
            rows = (await db.async_execute_query("SELECT count(*) AS n FROM c"))[1]
            assert rows == [{"n": 0}]
            # auto_commit=False: nothing committed, nothing raised, rolled back on close.
            async with db.async_session(auto_commit=False) as s:
                await s.execute(text("INSERT INTO p VALUES (1)"))
            assert (await db.async_execute_query("SELECT count(*) AS n FROM p"))[1] == [{"n": 0}]
            await db.aclose()

        asyncio.run(go())
    finally:
        db.close()


def test_the_direct_common_course_is_the_plans() -> None:
    """ScopeSession.__exit__ runs a clean auto_commit exit without the generator: the
    steps it calls must stay the ones the plan gives."""
    from dbwire.session_forms import COMMON_COURSE, _scope_exit

    assert tuple(_scope_exit(True, False)) == COMMON_COURSE
