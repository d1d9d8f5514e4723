"""An environment handed to load_config()/connect()/Manager is the only one PG* is read from.

os.environ holds conflicting PG* values pointing at a port where nothing listens, with a
wrong user, database and password: any fallback to it fails to connect.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import dbwire
from dbwire import ConnectError, Manager, load_config

QUERY = "SELECT current_user AS u, current_database() AS d, inet_server_port() AS p"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def given(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment to give: the real server's PG* values, the password in its HOME's
    .pgpass. os.environ gets wrong values for every one of them."""
    url = make_url(pg_url)
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"*:*:*:{url.username}:{url.password}\n")
    pgpass.chmod(0o600)
    for key in list(os.environ):
        if key.startswith(("PG", "DBWIRE_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    wrong_home = tmp_path / "wrong-home"
    wrong_home.mkdir()
    monkeypatch.setenv("HOME", str(wrong_home))
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(_dead_port()))
    monkeypatch.setenv("PGUSER", "wrong_user")
    monkeypatch.setenv("PGDATABASE", "wrong_db")
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    monkeypatch.chdir(tmp_path)
    return {
        "HOME": str(home),
        "PGHOST": str(url.host),
        "PGPORT": str(url.port),
        "PGUSER": str(url.username),
        "PGDATABASE": str(url.database),
    }


def _expect(given: dict[str, str]) -> list[dict[str, object]]:
    return [{"u": given["PGUSER"], "d": given["PGDATABASE"], "p": int(given["PGPORT"])}]


def test_load_config_environ_reaches_the_server_sync_and_async(given: dict[str, str]) -> None:
    cfg = load_config({"databases": {"pg": {"url": "postgresql://"}}}, environ=given)
    manager = Manager(cfg)
    try:
        db = manager.db("pg")
        assert db.execute_query(QUERY)[1] == _expect(given)
        assert dbwire.connect("pg", config=cfg) is db

        async def run() -> list[object]:
            async with db.async_session() as s:
                return list((await s.execute(text(QUERY))).one())

        assert asyncio.run(run()) == list(_expect(given)[0].values())
    finally:
        manager.close_all()


def test_connect_url_with_environ(given: dict[str, str]) -> None:
    db = dbwire.connect("postgresql://", environ=given)
    try:
        assert db.execute_query(QUERY)[1] == _expect(given)
    finally:
        db.close()


def test_connect_name_with_config_and_environ(given: dict[str, str]) -> None:
    cfg = {"databases": {"pg": {"url": "postgresql://"}}}
    db = dbwire.connect("pg", config=cfg, environ=given)
    try:
        assert db.execute_query(QUERY)[1] == _expect(given)
        assert Manager(cfg, environ=given).db("pg") is db
        # Without the environment it is another target, and os.environ's values fail.
        plain = dbwire.connect("pg", config=cfg)
        assert plain is not db
        with pytest.raises(ConnectError) as caught:
            plain.execute_query("SELECT 1")
        assert "wrong-password" not in str(caught.value)
        plain.close()
    finally:
        db.close()


def test_an_environ_change_is_seen_at_the_next_connection(given: dict[str, str]) -> None:
    environ = dict(given)
    db = dbwire.connect("postgresql://", environ=environ)
    try:
        assert db.execute_query(QUERY)[1] == _expect(given)
        # The mapping is read when a connection opens, as os.environ would be.
        environ["PGPORT"] = str(_dead_port())
        db.dispose_pools()
        with pytest.raises(ConnectError):
            db.execute_query("SELECT 1")
    finally:
        db.close()
