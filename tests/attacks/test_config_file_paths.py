"""A relative file path in a config file means: next to that file, wherever the program runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dbwire
from dbwire import Manager, load_config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """other/dbwire.toml naming other/app.db relatively; the program runs in tmp_path."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "dbwire.toml").write_text(
        "[databases.app]\n"
        'url = "sqlite:///app.db"\n'
        "[databases.nested]\n"
        'url = "sqlite+aiosqlite:///data/n.db"\n'
        "[databases.duck]\n"
        'url = "duckdb:///store.duckdb"\n'
        "[databases.absolute]\n"
        f'url = "sqlite:///{tmp_path / "abs.db"}"\n'
        "[databases.memory]\n"
        'url = "sqlite://"\n'
        "[databases.memory2]\n"
        'url = "sqlite:///:memory:"\n'
        "[databases.home]\n"
        'url = "sqlite:///~/h.db"\n'
    )
    monkeypatch.chdir(tmp_path)
    for key in ("DBWIRE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return other


def _database(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).database


def test_relative_paths_resolve_against_the_config_file(project: Path, tmp_path: Path) -> None:
    cfg = load_config(project / "dbwire.toml")
    urls = {name: db.url for name, db in cfg.databases.items()}
    assert _database(urls["app"]) == str(project / "app.db")
    assert _database(urls["nested"]) == str(project / "data" / "n.db")
    assert urls["nested"].startswith("sqlite+aiosqlite:///")
    assert _database(urls["duck"]) == str(project / "store.duckdb")
    # Absolute, in-memory and home-relative paths are left as written.
    assert _database(urls["absolute"]) == str(tmp_path / "abs.db")
    assert _database(urls["memory"]) is None
    assert _database(urls["memory2"]) == ":memory:"
    assert _database(urls["home"]) == "~/h.db"


def test_data_written_through_one_working_directory_is_read_from_another(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = Manager(project / "dbwire.toml")
    try:
        db = manager.db("app")
        db.execute_query("CREATE TABLE t (v int)")
        db.execute_query("INSERT INTO t VALUES (42)")
    finally:
        manager.close_all()
    assert (project / "app.db").is_file()
    assert not (tmp_path / "app.db").exists(), "a second, empty database was created"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    db = dbwire.connect("app", config=str(project / "dbwire.toml"))
    try:
        assert db.execute_query("SELECT v FROM t")[1] == [{"v": 42}]
    finally:
        db.close()
    assert list(elsewhere.iterdir()) == []


def test_dbwire_check_with_another_config_reads_that_files_database(
    project: Path, tmp_path: Path
) -> None:
    db = dbwire.connect("app", config=str(project / "dbwire.toml"))
    try:
        db.execute_query("CREATE TABLE IF NOT EXISTS t (v int)")
    finally:
        db.close()
    result = subprocess.run(
        [sys.executable, "-m", "dbwire", "url", "app", "-c", "other/dbwire.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(project / "app.db") in result.stdout
    assert not (tmp_path / "app.db").exists()


def test_dict_configs_and_database_url_keep_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No file, so no file to be relative to: the working directory applies, as before.
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"databases": {"d": {"url": "sqlite:///rel.db"}}})
    assert _database(cfg.databases["d"].url) == "rel.db"
    cfg = load_config(None, {"DATABASE_URL": "sqlite:///env.db"})
    assert _database(cfg.databases["default"].url) == "env.db"
