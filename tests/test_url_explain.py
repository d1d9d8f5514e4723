"""`dbwire url NAME --explain`: each field's value and the source it came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DBWIRE = Path(sys.executable).with_name("dbwire")
SECRET = "Explain-canary-31c7"


def _explain(tmp_path: Path, environ: dict[str, str], *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBWIRE_"))}
    env.update({"HOME": str(tmp_path), "COLUMNS": "250", "NO_COLOR": "1", **environ})
    done = subprocess.run(
        [str(DBWIRE), "url", "main", "--config", str(tmp_path / "dbwire.toml"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    (tmp_path / "dbwire.toml").write_text(
        '[databases.main]\nbackend = "postgresql"\nhost = "db.internal"\npool_size = 3\n'
    )
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"# comment\nother:*:*:*:nope\ndb.internal:*:*:svc:{SECRET}\n")
    passfile.chmod(0o600)
    return passfile


def test_explain_names_file_line_env_var_pgpass_line_and_default(
    tmp_path: Path, configured: Path
) -> None:
    environ = {"PGPASSFILE": str(configured), "PGUSER": "svc", "DBWIRE_MAIN__PORT": "6432"}
    out = _explain(tmp_path, environ, "--explain", "--json")
    fields = {row["field"]: row for row in json.loads(out)["fields"]}
    config = str(tmp_path / "dbwire.toml")
    assert fields["host"]["value"] == "db.internal"
    assert fields["host"]["source"] == f"{config}:3"
    assert fields["port"]["value"] in (6432, "6432")
    assert fields["port"]["source"] == "env DBWIRE_MAIN__PORT"
    assert fields["user"]["source"] == "env PGUSER"
    assert fields["password"]["source"] == f".pgpass {configured} line 3"
    assert fields["database"]["source"] == "default"  # libpq: dbname defaults to the user
    assert fields["pool_size"]["source"] == f"{config}:4"


def test_show_password_only_when_asked(tmp_path: Path, configured: Path) -> None:
    environ = {"PGPASSFILE": str(configured), "PGUSER": "svc"}
    masked = _explain(tmp_path, environ)
    assert "***" in masked or "svc@" in masked
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBWIRE_"))}
    env.update({"HOME": str(tmp_path), "NO_COLOR": "1", **environ})
    shown = subprocess.run(
        [str(DBWIRE), "url", "main", "--config", str(tmp_path / "dbwire.toml"), "--show-password"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert SECRET in shown.stdout
