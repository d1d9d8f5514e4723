"""Exit codes, config discovery and fix hints of the installed `dbwire` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from servers import DatabaseServer, free_port

DBWIRE = Path(sys.executable).parent / "dbwire"
SECRET = "canary-cli-config-pw"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBWIRE_", "PG"))}
    env.pop("DATABASE_URL", None)
    env.update(COLUMNS="200", NO_COLOR="1", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    env.update(extra)
    return env


def _dbwire(
    tmp_path: Path, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBWIRE), *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=cwd or tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f'url = "postgress://app:{SECRET}@localhost/app"', "did you mean 'postgres'"),
        ('backend = "postgre"\nhost = "localhost"', "did you mean 'postgres'"),
        (f'url = "postgresql://app:{SECRET}@localhost:abc/app"', "could not parse URL"),
        ('USER = "app"\nurl = "sqlite://"', "unknown field 'USER' (did you mean 'user'?)"),
        ('NAME = "app"\nbackend = "postgresql"', "(did you mean 'database'?)"),
    ],
)
def test_config_errors_exit_2_never_an_unhealthy_row(
    tmp_path: Path, body: str, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[databases.main]\n{body}\n")
    for args in (["check"], ["check", "--json"], ["query", "main", "SELECT 1"]):
        run = _dbwire(tmp_path, *args, "-c", str(config))
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert "UNHEALTHY" not in run.stdout and "unhealthy" not in run.stdout
        assert expected in run.stderr and "'main'" in run.stderr
        assert "--debug" not in run.stderr  # a config error has no traceback worth showing
        assert SECRET not in run.stdout + run.stderr


def test_no_databases_configured_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = _dbwire(tmp_path, "check", cwd=empty)
    assert run.returncode == 2
    assert "no databases configured" in run.stderr and run.stdout == ""


def test_version() -> None:
    run = subprocess.run([str(DBWIRE), "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("dbwire ")
    assert run.stdout.split()[1][0].isdigit()


def test_config_from_a_pipe(tmp_path: Path) -> None:
    script = f"{DBWIRE} query lite 'SELECT 7 AS n' -F csv -c <(printf '[databases.lite]\\nurl = \"sqlite://\"\\n')"
    run = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=_env(tmp_path), timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "n\n7\n"


def test_config_found_up_the_tree_then_in_the_user_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.dbwire.databases.found]\nurl = "sqlite://"\n'
    )
    run = _dbwire(tmp_path, "list", "--json", cwd=deep)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["config"] == str(project / "pyproject.toml")
    assert [d["name"] for d in data["databases"]] == ["found"]
    # A pyproject.toml without [tool.dbwire] is passed over, and a dbwire.toml nearer wins.
    (project / "src" / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    (deep / "dbwire.toml").write_text('[databases.nearest]\nurl = "sqlite://"\n')
    assert [
        d["name"]
        for d in json.loads(_dbwire(tmp_path, "list", "--json", cwd=deep).stdout)["databases"]
    ] == ["nearest"]
    user = tmp_path / "xdg" / "dbwire"
    user.mkdir(parents=True)
    (user / "dbwire.toml").write_text('[databases.mine]\nurl = "sqlite://"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = _dbwire(tmp_path, "check", "--json", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    assert list(json.loads(run.stdout)) == ["mine"]


def test_url_and_check_take_a_url(tmp_path: Path, pg_url: str, pg_server: DatabaseServer) -> None:
    healthy = _dbwire(tmp_path, "check", pg_url, "--json")
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["url"]["status"] == "healthy"
    down = _dbwire(tmp_path, "check", f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/app")
    assert down.returncode == 1 and "UNHEALTHY" in down.stdout
    shown = _dbwire(tmp_path, "url", pg_url)
    assert shown.returncode == 0 and "***" in shown.stdout
    for run in (healthy, down, shown):
        assert pg_server.password not in run.stdout + run.stderr
        assert SECRET not in run.stdout + run.stderr


def test_fix_hints_name_the_real_cause(
    tmp_path: Path,
    pg_url: str,
    mysql_url: str,
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
) -> None:
    missing_pg = sa.make_url(pg_url).set(database="nosuchdb")
    missing_my = sa.make_url(mysql_server.admin_url).set(database="nosuchdb")  # 1049
    hidden_my = sa.make_url(mysql_url).set(database="nosuchdb")  # 1044: no rights to know
    bad_password = sa.make_url(mysql_url).set(password=SECRET)
    mysql_server.run_sql_admin("DROP USER IF EXISTS 'limited'@'%'")
    mysql_server.run_sql_admin(f"CREATE USER 'limited'@'%' IDENTIFIED BY '{SECRET}'")
    no_grant = sa.make_url(mysql_url).set(username="limited", password=SECRET)
    config = tmp_path / "dbwire.toml"
    config.write_text(
        "".join(
            f'[databases.{name}]\nurl = "{url.render_as_string(hide_password=False)}"\n'
            for name, url in {
                "missing_pg": missing_pg,
                "missing_my": missing_my,
                "hidden_my": hidden_my,
                "bad_password": bad_password,
                "no_grant": no_grant,
            }.items()
        )
        + f'[databases.gone]\nurl = "postgresql://app@127.0.0.1:{free_port()}/app"\n'
        + "health_timeout = 2\n"
    )
    run = _dbwire(tmp_path, "check", "--json", "-c", str(config))
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert "database 'nosuchdb' does not exist" in report["missing_pg"]["error"]
    assert "create_db = true" in report["missing_pg"]["error"]
    assert "database 'nosuchdb' does not exist" in report["missing_my"]["error"]
    assert (
        "access denied for user 'dbwire' to database 'nosuchdb' (or it does not exist"
        in (report["hidden_my"]["error"])
    )
    assert "access denied for user 'dbwire'" in report["bad_password"]["error"]
    assert ".pgpass" not in report["bad_password"]["error"]
    assert "access denied for user 'limited' to database 'dbwire'" in report["no_grant"]["error"]
    assert "running" not in report["no_grant"]["error"]
    assert "dbwire wait gone" in report["gone"]["error"] and "db.wait()" not in run.stdout
    query = _dbwire(tmp_path, "query", "gone", "SELECT 1", "-c", str(config))
    assert query.returncode == 1 and "dbwire wait gone" in query.stderr
    admin_password = sa.make_url(mysql_server.admin_url).password
    for secret in (SECRET, pg_server.password, mysql_server.password, admin_password or SECRET):
        assert secret not in run.stdout + run.stderr + query.stderr
