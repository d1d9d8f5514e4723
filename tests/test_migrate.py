"""Schema lifecycle: create_db, Alembic migrate(), seed() in dependency order, UUID keys."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import ForeignKey, String, Uuid, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbwire
from dbwire import ConnectError, Database, DatabaseConfig


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "seed_team"
    # Seed 002: UUID primary keys, native on PostgreSQL, CHAR(32) on SQLite, same code.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    seed_list: ClassVar[list[dict[str, Any]]] = [
        {"id": uuid.UUID(int=1), "name": "core"},
        {"id": uuid.UUID(int=2), "name": "data"},
    ]


class Member(Base):  # declared before nothing: seed() must still insert Team first
    __tablename__ = "seed_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("seed_team.id"))
    seed_list: ClassVar[list[dict[str, Any]]] = [
        {"id": 1, "team_id": uuid.UUID(int=1)},
        {"id": 2, "team_id": uuid.UUID(int=2)},
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'seed.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(DatabaseConfig(name=f"seed-{request.param}", url=url))
    Base.metadata.create_all(database.engine)
    yield database
    Base.metadata.drop_all(database.engine)
    database.close()


def test_seed_in_dependency_order_and_idempotent(db: Database) -> None:
    first = dbwire.seed(db, [Member, Team])
    assert (first.total_inserted, first.total_present) == (4, 0)
    second = dbwire.seed(db, Base)  # keys already there: nothing duplicated
    assert (second.total_inserted, second.total_present) == (0, 4)
    with db.session() as s:
        teams = s.scalars(select(Team).order_by(Team.name)).all()
        assert [(t.id, t.name) for t in teams] == [
            (uuid.UUID(int=1), "core"),
            (uuid.UUID(int=2), "data"),
        ]
        assert s.scalar(select(Member.team_id).where(Member.id == 2)) == uuid.UUID(int=2)


def test_seed_is_all_or_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Member, "seed_list", [{"id": 9, "team_id": uuid.UUID(int=99)}])
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        dbwire.seed(db, [Team, Member])
    with db.session() as s:
        assert s.scalar(select(Team).limit(1)) is None  # the teams were rolled back too


def test_create_db_on_postgresql(pg_server: Any, pg_url: str) -> None:
    name = f"created_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    db = Database(DatabaseConfig(name="fresh", url=url, create_db=True))
    try:
        assert db.execute_query("SELECT current_database() AS d")[1] == [{"d": name}]
        assert db.create_database() is False  # already there
    finally:
        db.close()
        pg_server.run_sql_admin(f"DROP DATABASE {name}")


def test_create_db_on_mariadb(mysql_server: Any, mysql_url: str) -> None:
    name = f"created_{uuid.uuid4().hex[:8]}"
    url = make_url(mysql_server.admin_url).set(database=name)
    db = Database(
        DatabaseConfig(name="fresh", url=url.render_as_string(hide_password=False), create_db=True)
    )
    try:
        assert db.execute_query("SELECT DATABASE() AS d")[1] == [{"d": name}]
    finally:
        db.close()
        mysql_server.run_sql_admin(f"DROP DATABASE {name}")


def test_create_db_without_the_right_says_so(pg_server: Any, pg_url: str) -> None:
    role = f"nocreate_{uuid.uuid4().hex[:6]}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}' NOCREATEDB")
    url = make_url(pg_url).set(username=role, password=f"pw-{role}", database="never_made")
    db = Database(
        DatabaseConfig(
            name="nocreate", url=url.render_as_string(hide_password=False), create_db=True
        )
    )
    try:
        with pytest.raises(ConnectError, match="CREATEDB") as info:
            db.execute_query("SELECT 1")
        assert f"pw-{role}" not in str(info.value)
    finally:
        db.close()
        pg_server.run_sql_admin(f"DROP ROLE {role}")


def test_migrate_runs_alembic_on_the_shared_connection(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(
        textwrap.dedent(
            """
            from alembic import context

            connection = context.config.attributes["connection"]
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
            """
        )
    )
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "0001_create.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            revision = "0001"
            down_revision = None

            def upgrade():
                op.create_table("migrated", sa.Column("id", sa.Integer, primary_key=True))
            """
        )
    )
    db = Database(DatabaseConfig(name="mig", url=f"sqlite:///{tmp_path / 'mig.db'}"))
    try:
        db.migrate(scripts)
        db.migrate(scripts)  # at head already: nothing to do
        with db.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        assert "migrated" in db.refresh_metadata().tables
        with pytest.raises(dbwire.ConfigError, match="alembic init"):
            db.migrate(tmp_path / "nowhere")
    finally:
        db.close()
