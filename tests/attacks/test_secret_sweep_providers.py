"""A provider's password never leaves: CLI output (installed script and in-process), repr,
dumps, errors with their chains, and logs, for working, rejected and failing providers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from dbwire import CredentialsError, Database, DatabaseConfig
from dbwire.cli import app
from dbwire.config import load_config
from servers import MotoServer
from servers.moto import FAKE_CREDENTIALS

CANARY = f"Sweep-prov-{uuid.uuid4().hex[:10]}"
WRONG = f"Sweep-wrong-{uuid.uuid4().hex[:10]}"
TOKEN = f"Sweep-token-{uuid.uuid4().hex[:10]}"
SECRETS = (CANARY, WRONG, TOKEN)
DBWIRE = Path(sys.executable).with_name("dbwire")


def _assert_clean(label: str, shown: str) -> None:
    for secret in SECRETS:
        assert secret not in shown, f"{label}: a provider secret leaked: {shown[:400]!r}"


@pytest.fixture
def role(pg_server: Any, pg_url: str) -> Iterator[str]:
    name = f"sweep_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}'")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {pg_server.database} TO {name}")
    yield name
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
    )
    pg_server.run_sql_admin(f"REVOKE CONNECT ON DATABASE {pg_server.database} FROM {name}")
    pg_server.run_sql_admin(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def setup(
    pg_server: Any, role: str, moto_server: MotoServer, tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    client = moto_server.client("secretsmanager")
    good, wrong = f"sweep/{uuid.uuid4().hex[:8]}", f"sweep/{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=good, SecretString=json.dumps({"username": role, "password": CANARY}))
    client.create_secret(Name=wrong, SecretString=WRONG)
    url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    aws = f'region = "{moto_server.region}", endpoint_url = "{moto_server.endpoint_url}"'
    printer = json.dumps(f"import sys; print({CANARY!r})")
    command = f'[{json.dumps(sys.executable)}, "-c", {printer}, "--token={TOKEN}"]'
    config = tmp_path / "dbwire.toml"
    config.write_text(
        f"""
[databases.aws_ok]
url = "{url}"
password_provider = {{type = "aws_secrets_manager", secret_id = "{good}", {aws}}}

[databases.aws_wrong]
url = "{url}"
password_provider = {{type = "aws_secrets_manager", secret_id = "{wrong}", {aws}}}

[databases.aws_missing]
url = "{url}"
password_provider = {{type = "aws_secrets_manager", secret_id = "no/such", {aws}}}

[databases.env_ok]
url = "{url}"
password_provider = {{type = "env", variable = "SWEEP_DB_PASSWORD"}}

[databases.cmd_ok]
url = "{url}"
password_provider = {{type = "command", command = {command}}}
"""
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))},
        **FAKE_CREDENTIALS,
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SWEEP_DB_PASSWORD": CANARY,
        "COLUMNS": "200",
    }
    return config, env


NAMES = ("aws_ok", "aws_wrong", "aws_missing", "env_ok", "cmd_ok")


def _argvs(config: Path) -> list[list[str]]:
    cfg = ["--config", str(config)]
    argvs = [["list", *cfg], ["check", *cfg], ["check", "--json", *cfg]]
    for name in NAMES:
        argvs += [["url", name, *cfg], ["url", name, "--explain", *cfg]]
    return [*argvs, ["check", "aws_wrong", *cfg], ["check", "aws_missing", *cfg]]


def test_cli_never_shows_a_provider_password(
    setup: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, env = setup
    cfg = ["--config", str(config)]
    runs: list[tuple[list[str], int, str]] = []
    installed = [["check", *cfg], ["url", "aws_ok", "--explain", *cfg]]
    for argv in installed:  # as the installed script: real stdout, stderr and logging
        done = subprocess.run(
            [str(DBWIRE), *argv], env=env, capture_output=True, text=True, timeout=120
        )
        runs.append((argv, done.returncode, done.stdout + done.stderr))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    for argv in _argvs(config):
        result = runner.invoke(app, argv, env=env)
        runs.append((argv, result.exit_code, result.stdout + result.stderr))
    for argv, _code, shown in runs:
        _assert_clean("dbwire " + " ".join(argv), shown)
    report = json.loads(next(out for argv, _c, out in runs if argv[:2] == ["check", "--json"]))
    assert report["aws_ok"]["status"] == "healthy", report["aws_ok"]
    assert report["env_ok"]["status"] == "healthy" and report["cmd_ok"]["status"] == "healthy"
    assert report["aws_wrong"]["status"] != "healthy"
    assert "ResourceNotFoundException" in json.dumps(report["aws_missing"])
    explained = next(out for argv, _c, out in runs if argv[:3] == ["url", "aws_ok", "--explain"])
    assert "password_provider aws_secrets_manager" in explained
    url = next(out for argv, _c, out in runs if argv[:2] == ["url", "aws_ok"] and len(argv) == 4)
    assert ":***@" in url, url  # a password only dbwire knows is shown as ***


def test_repr_dumps_errors_and_logs_never_show_a_provider_password(
    setup: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, env = setup
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)
    loaded = load_config(config)
    shown: list[str] = []
    for name in NAMES:
        cfg = loaded.database(name).with_overrides(echo=True, log_queries=True)
        shown += [repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.model_dump())]
        db = Database(cfg)
        try:
            shown += [repr(db), repr(db.backend.credential_source())]
            try:
                with db.connect() as conn:
                    conn.execute(text("SELECT 1"))
                params = db.connect_params()
                shown += [repr(params), str(params.sources)]
            except Exception as exc:  # the failing ones: their whole chain is searched
                shown.append("".join(traceback.format_exception(exc)))
                shown += [repr(exc), repr(exc.__cause__), repr(exc.__context__)]
                if name == "aws_missing":
                    assert isinstance(exc, CredentialsError)
            shown.append(repr(db.health_check()))
        finally:
            db.close()
    shown.append(caplog.text)
    for index, text_ in enumerate(shown):
        _assert_clean(f"item {index}", text_)
    assert "SELECT 1" in caplog.text  # the logs were on: the search was not of nothing


@pytest.mark.parametrize("ttl", [300, 0], ids=["cached", "uncached"])
def test_scrubbing_an_error_never_runs_the_password_command_again(
    pg_server: Any, role: str, tmp_path: Path, ttl: int
) -> None:
    # Each run of the command leaves a line behind: the count is how often it ran.
    runs = tmp_path / "runs"
    script = f"open({str(runs)!r}, 'a').write('ran\\n'); print({CANARY!r})"
    url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    spec = {"type": "command", "command": [sys.executable, "-c", script], "ttl": ttl}
    db = Database(DatabaseConfig(name="cmd_count", url=url, password_provider=spec))

    def ran() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    try:
        with db.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == role
        assert ran() == 1
        # The server quotes the password back; the error is scrubbed on its way out.
        with pytest.raises(DBAPIError) as info:
            db.execute_query(f"SELECT '{CANARY}'::int")
        shown = "".join(traceback.format_exception(info.value))
        _assert_clean("the scrubbed query error", shown + repr(info.value))
        assert "invalid input syntax" in shown  # the server's message is still there
        assert CANARY in db.known_secrets()
        assert ran() == 1, "scrubbing ran the password command again"
    finally:
        db.close()
