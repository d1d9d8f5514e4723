"""`dbwire seed` and `dbwire migrate`, run as the installed command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

DBWIRE = Path(sys.executable).with_name("dbwire")

MODELS = """
import uuid
from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "team"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    seed_list = [{"id": uuid.UUID(int=1), "name": "core"}]


class Member(Base):
    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("team.id"))
    seed_list = [{"id": 1, "team_id": uuid.UUID(int=1)}]
"""

ENV_PY = """
from alembic import context
from seedmodels import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "team", sa.Column("id", sa.Uuid, primary_key=True), sa.Column("name", sa.String(20))
    )
    op.create_table(
        "member",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("team_id", sa.Uuid, sa.ForeignKey("team.id")),
    )
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBWIRE), *args, "--config", str(tmp_path / "dbwire.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_migrate_then_seed_twice(tmp_path: Path) -> None:
    (tmp_path / "dbwire.toml").write_text(
        f'[databases.app]\nurl = "sqlite:///{tmp_path / "app.db"}"\n'
    )
    (tmp_path / "seedmodels.py").write_text(textwrap.dedent(MODELS))
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "0001_init.py").write_text(REVISION)

    migrated = _run(tmp_path, "migrate", "app", "--scripts", str(scripts))
    assert migrated.returncode == 0, migrated.stderr
    assert "app: migrated from base to 0001" in migrated.stdout
    seeded = _run(tmp_path, "seed", "app", "--models", "seedmodels:Base")
    assert seeded.returncode == 0, seeded.stderr
    assert "app: seeded 2 inserted, 0 already present" in seeded.stdout
    again = _run(tmp_path, "seed", "app", "--models", "seedmodels:Base")  # keys already there
    assert again.returncode == 0, again.stderr
    assert "app: seeded 0 inserted, 2 already present" in again.stdout
    counted = _run(tmp_path, "query", "app", "SELECT count(*) AS n FROM member", "--json")
    assert '"n": 1' in counted.stdout

    bad = _run(tmp_path, "seed", "app", "--models", "nosuchmodule:Base")
    assert bad.returncode == 2 and "cannot import 'nosuchmodule'" in bad.stderr
    assert "Traceback" not in bad.stderr
