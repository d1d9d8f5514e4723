"""`dbwire migrate` in a real Alembic project (made by `alembic init`) against PostgreSQL:
upgrade, already at head, current, history, downgrade, base, offline SQL, stamp."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dbwire.migrate import write_env_py

BIN = Path(sys.executable).parent

REVISIONS = {
    "0001_users.py": '''"""create users"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("mig_users", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("mig_users")
''',
    "0002_orders.py": '''"""create orders"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_table("mig_orders", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("mig_orders")
''',
}

STOCK_LINE = "    with connectable.connect() as connection:\n"
CHANGED_LINES = (
    '    connection = config.attributes.get("connection")  # handed over by dbwire\n'
    "    with connection or connectable.connect() as connection:\n"
)


_URLS: dict[Path, str] = {}


def _project(tmp_path: Path, pg_url: str, *, stock: bool) -> Path:
    _URLS[tmp_path] = pg_url
    (tmp_path / "dbwire.toml").write_text(f'[databases.app]\nurl = "{pg_url}"\n')
    scripts = tmp_path / "migrations"
    if stock:
        subprocess.run(
            [str(BIN / "alembic"), "init", "migrations"],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )
        env = (scripts / "env.py").read_text()
        assert env.count(STOCK_LINE) == 1  # the documented change applies to the stock file
        (scripts / "env.py").write_text(env.replace(STOCK_LINE, CHANGED_LINES))
    else:
        write_env_py(scripts)
    for name, body in REVISIONS.items():
        (scripts / "versions" / name).write_text(body)
    return scripts


def _dbwire(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "dbwire"), "migrate", "app", *args, "--config", str(tmp_path / "dbwire.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    password = make_url(_URLS[tmp_path]).password
    assert password and password not in done.stdout + done.stderr  # also in offline SQL
    return done


def _tables_and_version(pg_url: str) -> tuple[set[str], list[str]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mig_%'"
            ).fetchall()
        }
        has_version = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        versions = (
            [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
            if has_version and has_version[0]
            else []
        )
    return tables, versions


@pytest.fixture
def clean_pg(pg_url: str) -> Iterator[str]:
    yield pg_url
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS mig_orders, mig_users, alembic_version")


@pytest.mark.parametrize("stock", [True, False], ids=["stock-env-two-lines", "dbwire-env"])
def test_migrate_commands_on_postgres(tmp_path: Path, clean_pg: str, stock: bool) -> None:
    pg_url = clean_pg
    _project(tmp_path, pg_url, stock=stock)

    offline = _dbwire(tmp_path, "--sql").stdout
    assert "CREATE TABLE mig_users" in offline and "CREATE TABLE mig_orders" in offline
    assert _tables_and_version(pg_url) == (set(), [])  # offline ran nothing

    assert "app: migrated from base to 0002" in _dbwire(tmp_path).stdout
    assert _tables_and_version(pg_url) == ({"mig_users", "mig_orders"}, ["0002"])
    assert "app: already at head (0002)" in _dbwire(tmp_path).stdout
    assert "app: at 0002" in _dbwire(tmp_path, "--current").stdout
    history = _dbwire(tmp_path, "--history").stdout.splitlines()
    assert history == ["0002 (head): create orders", "0001: create users"]

    assert "app: migrated from 0002 to 0001" in _dbwire(tmp_path, "--downgrade").stdout
    assert _tables_and_version(pg_url) == ({"mig_users"}, ["0001"])
    # base really migrates: every table dropped, no revision left.
    assert "app: migrated from 0001 to base" in _dbwire(tmp_path, "--revision", "base").stdout
    assert _tables_and_version(pg_url) == (set(), [])
    assert "app: already at base (base)" in _dbwire(tmp_path, "base").stdout

    assert "app: migrated from base to 0001" in _dbwire(tmp_path, "0001").stdout
    assert "app: stamped from 0001 to 0002" in _dbwire(tmp_path, "0002", "--stamp").stdout
    assert _tables_and_version(pg_url) == ({"mig_users"}, ["0002"])


def test_write_env_py_refuses_to_overwrite(tmp_path: Path) -> None:
    from dbwire import ConfigError

    write_env_py(tmp_path / "m")
    assert (tmp_path / "m" / "script.py.mako").read_text().strip()
    with pytest.raises(ConfigError, match="already exists"):
        write_env_py(tmp_path / "m")
