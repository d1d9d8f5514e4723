"""`dbwire serve` API against real PostgreSQL and MariaDB: the whole lifecycle of a connection,
a JOIN across both through the DuckDB store, a third-party backend, restart from the state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbwire.serve.state import secrets_path
from serve_helpers import pg_owner, served, server_config

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

OLD = "Serve-old-pw-7Qk2"
NEW = "Serve-new-pw-3Jx9"


@pytest.fixture(scope="module")
def pg_role(pg_server: Any) -> Iterator[dict[str, str]]:
    """A login role with tables of its own: parent and child with a foreign key."""
    if not pg_server.is_running():
        pg_server.start()
    tag = uuid.uuid4().hex[:8]
    role, parent, child = f"serve_pg_{tag}", f"serve_parent_{tag}", f"serve_child_{tag}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{OLD}'")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {pg_server.database} TO {role}")
    owner = pg_owner(pg_server)
    owner(f"CREATE TABLE public.{parent} (id int PRIMARY KEY, name text)")
    owner(
        f"CREATE TABLE public.{child} (id int PRIMARY KEY, "
        f"parent_id int NOT NULL REFERENCES public.{parent}(id), note text DEFAULT 'n')"
    )
    owner(f"INSERT INTO public.{parent} VALUES (1, 'one'), (2, 'two')")
    owner(f"INSERT INTO public.{child} VALUES (10, 1, 'a'), (20, 2, 'b')")
    owner(f"GRANT SELECT ON public.{parent}, public.{child} TO {role}")
    yield {"user": role, "parent": parent, "child": child, "schema": "public"}
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    )
    owner(f"DROP TABLE IF EXISTS public.{child}, public.{parent}")
    pg_server.run_sql_admin(f"REVOKE CONNECT ON DATABASE {pg_server.database} FROM {role}")
    pg_server.run_sql_admin(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def my_user(mysql_server: Any) -> Iterator[dict[str, str]]:
    """A MariaDB account with two tables of its own, parent and child with a foreign key."""
    if not mysql_server.is_running():
        mysql_server.start()
    tag = uuid.uuid4().hex[:8]
    user, parent, child = f"serve_my_{tag}", f"serve_parent_{tag}", f"serve_child_{tag}"
    db = mysql_server.database
    mysql_server.run_sql_admin(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{OLD}'")
    mysql_server.run_sql_admin(
        f"CREATE TABLE `{db}`.{parent} (id int PRIMARY KEY, name varchar(20)) ENGINE=InnoDB"
    )
    mysql_server.run_sql_admin(
        f"CREATE TABLE `{db}`.{child} (id int PRIMARY KEY, parent_id int NOT NULL, "
        f"note varchar(20) DEFAULT 'n', FOREIGN KEY (parent_id) REFERENCES `{db}`.{parent}(id))"
        " ENGINE=InnoDB"
    )
    mysql_server.run_sql_admin(f"INSERT INTO `{db}`.{parent} VALUES (1, 'one'), (2, 'two')")
    mysql_server.run_sql_admin(f"INSERT INTO `{db}`.{child} VALUES (10, 1, 'a'), (20, 2, 'b')")
    mysql_server.run_sql_admin(f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
    yield {"user": user, "parent": parent, "child": child, "schema": db}
    mysql_server.run_sql_admin(f"DROP TABLE IF EXISTS `{db}`.{child}, `{db}`.{parent}")
    mysql_server.run_sql_admin(f"DROP USER IF EXISTS '{user}'@'%'")


def _change_password(kind: str, server: Any, user: str, password: str) -> None:
    if kind == "postgresql":
        server.run_sql_admin(f"ALTER ROLE {user} PASSWORD '{password}'")
    else:
        server.run_sql_admin(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_connection_lifecycle_with_a_password_change(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = request.getfixturevalue("pg_server" if kind == "postgresql" else "mysql_server")
    account = request.getfixturevalue("pg_role" if kind == "postgresql" else "my_user")
    state = tmp_path / "state.json"
    name = "c1"
    form = server_config(server, user=account["user"], password=OLD)
    with served(state) as (client, _app):
        made = client.post("/api/connections", json={"name": name, "type": kind, "config": form})
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["status"] == "healthy", body
        assert body["secrets"] == {"password": True, "password_command": False}
        assert body["source"] == "api" and body["readonly"] is True
        assert "password" not in body["config"] and OLD not in made.text

        again = client.post("/api/connections", json={"name": name, "type": kind, "config": form})
        assert again.status_code == 409 and again.json()["error"]["type"] == "connection_exists"

        tested = client.post(f"/api/connections/{name}/test").json()
        assert tested["status"] == "healthy" and tested["response_time_ms"] > 0

        tables = {t["name"]: t for t in client.get(f"/api/connections/{name}/schema").json()}
        child = tables[account["child"]]
        assert child["schema"] == account["schema"]
        columns = {c["name"]: c for c in child["columns"]}
        assert columns["id"]["primary_key"] is True and columns["parent_id"]["nullable"] is False
        assert child["foreign_keys"] == [
            {
                "column": "parent_id",
                "referred_schema": account["schema"],
                "referred_table": account["parent"],
                "referred_column": "id",
            }
        ]

        sql = f"SELECT id, name FROM {account['schema']}.{account['parent']} ORDER BY id"
        result = client.post("/api/query", json={"sql": sql, "connection": name}).json()
        assert [c["name"] for c in result["columns"]] == ["id", "name"]
        assert result["rows"] == [[1, "one"], [2, "two"]] and result["has_more"] is False

        # The server's password changes; the old one no longer logs in, the new one does.
        _change_password(kind, server, account["user"], NEW)
        changed = {**form, "password": NEW}
        put = client.put(
            f"/api/connections/{name}", json={"name": name, "type": kind, "config": changed}
        )
        assert put.status_code == 200, put.text
        assert put.json()["status"] == "healthy", put.json()
        assert client.post("/api/query", json={"sql": sql, "connection": name}).json()["rows"]
        stored = state.read_text() + secrets_path(state).read_text()
        assert OLD not in stored and NEW in secrets_path(state).read_text()
        assert NEW not in state.read_text()

        # A PUT without the password keeps the stored one.
        kept = {k: v for k, v in changed.items() if k != "password"}
        put = client.put(
            f"/api/connections/{name}", json={"name": name, "type": kind, "config": kept}
        )
        assert put.json()["status"] == "healthy" and put.json()["secrets"]["password"] is True

        assert client.delete(f"/api/connections/{name}").status_code == 204
        assert client.get(f"/api/connections/{name}").status_code == 404
        assert client.delete(f"/api/connections/{name}").status_code == 204  # idempotent
        assert (
            client.put(
                f"/api/connections/{name}", json={"name": name, "type": kind, "config": kept}
            ).status_code
            == 404
        )
        assert NEW not in secrets_path(state).read_text()
        assert json.loads(state.read_text())["connections"] == []
    _change_password(kind, server, account["user"], OLD)


def test_a_failed_connect_is_listed_with_its_error(tmp_path: Path) -> None:
    from servers import free_port

    with served(tmp_path / "s.json") as (client, _app):
        form = {"host": "127.0.0.1", "port": free_port(), "user": "x", "password": "pw-Unused-1"}
        made = client.post(
            "/api/connections", json={"name": "down", "type": "postgresql", "config": form}
        )
        assert made.status_code == 201
        assert made.json()["status"] == "unhealthy" and "could not connect" in made.json()["error"]
        listed = {c["name"]: c for c in client.get("/api/connections").json()}
        assert listed["down"]["status"] == "unhealthy" and listed["down"]["error"]
        health = client.get("/api/health").json()["databases"]["down"]
        assert health["status"] == "unhealthy" and health["response_time_ms"] is None


def test_join_across_postgresql_and_mariadb_in_the_store(
    pg_role: dict[str, str], my_user: dict[str, str], pg_server: Any, mysql_server: Any
) -> None:
    with served() as (client, _app):
        for name, kind, server, account in (
            ("pgx", "postgresql", pg_server, pg_role),
            ("myx", "mariadb", mysql_server, my_user),
        ):
            form = server_config(server, user=account["user"], password=OLD)
            made = client.post(
                "/api/connections", json={"name": name, "type": kind, "config": form}
            )
            assert made.json()["status"] == "healthy", made.json()
        sql = (
            f"SELECT p.name, c.note FROM pgx.public.{pg_role['parent']} p "
            f"JOIN myx.{my_user['schema']}.{my_user['child']} c ON c.parent_id = p.id "
            "ORDER BY p.name"
        )
        result = client.post("/api/query", json={"sql": sql})
        assert result.status_code == 200, result.text
        assert result.json()["rows"] == [["one", "a"], ["two", "b"]]
        assert "warnings" not in result.json()
        # The store is read-only: every connection is attached READ_ONLY, writes refused.
        write = client.post(
            "/api/query", json={"sql": f"DELETE FROM pgx.public.{pg_role['parent']}"}
        )
        assert write.status_code == 403 and write.json()["error"]["type"] == "read_only"
        # Deleting a connection detaches it from the store.
        assert client.delete("/api/connections/myx").status_code == 204
        gone = client.post("/api/query", json={"sql": sql})
        assert gone.status_code == 400 and gone.json()["error"]["type"] == "query_failed"


def test_third_party_backend_appears_and_can_be_created(tmp_path: Path) -> None:
    with served() as (client, _app):
        types = {t["type"]: t for t in client.get("/api/types").json()}
        assert {"postgresql", "mysql", "mariadb", "sqlite", "duckdb"} <= set(types)
        testlite = types["testlite"]  # only its entry point tells dbwire of it
        assert testlite["schema"]["properties"]["path"]["type"] == "string"
        assert testlite["schema"]["required"] == ["path"]
        pg = types["postgresql"]["schema"]["properties"]
        assert pg["password"]["writeOnly"] is True and pg["password"]["format"] == "password"
        assert pg["port"]["default"] == 5432 and pg["port"]["type"] == "integer"
        assert "verify-full" in pg["sslmode"]["enum"]
        db = tmp_path / "plugin.db"
        made = client.post(
            "/api/connections",
            json={"name": "tl", "type": "testlite", "config": {"path": str(db), "readonly": False}},
        )
        assert made.status_code == 201 and made.json()["status"] == "healthy", made.text
        created = client.post(
            "/api/query",
            json={"sql": "CREATE TABLE t (a int)", "connection": "tl", "write": True},
        )
        assert created.status_code == 200, created.text
        client.post(
            "/api/query",
            json={"sql": "INSERT INTO t VALUES (7)", "connection": "tl", "write": True},
        )
        rows = client.post("/api/query", json={"sql": "SELECT a FROM t", "connection": "tl"})
        assert rows.json()["rows"] == [[7]]
        # The plugin's SQLite file is attached to the store like a built-in one.
        store = client.post("/api/query", json={"sql": "SELECT a * 6 FROM tl.t"})
        assert store.status_code == 200 and store.json()["rows"] == [[42]], store.text


def test_restart_with_the_same_state_restores_connections(
    pg_role: dict[str, str], pg_server: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    form = server_config(pg_server, user=pg_role["user"], password=OLD)
    with served(state) as (client, _app):
        client.post("/api/connections", json={"name": "keep", "type": "postgresql", "config": form})
    assert OLD not in state.read_text()
    assert secrets_path(state).stat().st_mode & 0o777 == 0o600
    with served(state) as (client, _app):
        listed = {c["name"]: c for c in client.get("/api/connections").json()}
        assert listed["keep"]["secrets"]["password"] is True
        tested = client.post("/api/connections/keep/test").json()
        assert tested["status"] == "healthy", tested


def test_config_connections_are_listed_but_not_edited(tmp_path: Path) -> None:
    db = tmp_path / "conf.db"
    config = {"databases": {"conf": {"url": f"sqlite:///{db}"}}}
    with served(config=config) as (client, _app):
        listed = {c["name"]: c for c in client.get("/api/connections").json()}
        assert listed["conf"]["source"] == "config"
        assert listed["conf"]["status"] in ("unknown", "healthy")  # the sampler may be first
        body = {"name": "conf", "type": "sqlite", "config": {"path": str(db)}}
        assert client.put("/api/connections/conf", json=body).json()["error"]["type"] == (
            "connection_owned"
        )
        assert client.delete("/api/connections/conf").status_code == 409
        assert client.post("/api/connections/conf/test").json()["status"] == "healthy"


def test_status_sampler_keeps_a_series_per_connection(tmp_path: Path) -> None:
    import time

    with served(sample_interval=0.2) as (client, _app):
        client.post(
            "/api/connections",
            json={
                "name": "s",
                "type": "sqlite",
                "config": {"path": str(tmp_path / "s.db"), "readonly": False},
            },
        )
        deadline = time.monotonic() + 10
        series: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(series) < 3:
            time.sleep(0.2)
            status = client.get("/api/status").json()
            series = status["series"].get("s", [])
        assert status["interval_s"] == 0.2 and status["window_s"] == 900
        assert len(series) >= 3, status
        point = series[-1]
        assert point["status"] == "healthy" and point["latency_ms"] >= 0
        assert set(point) == {"t", "latency_ms", "status", "checked_out", "idle", "waiting", "size"}
        assert series[0]["t"] < series[-1]["t"]
        client.delete("/api/connections/s")
        assert "s" not in client.get("/api/status").json()["series"]


@pytest.mark.parametrize(
    "name", ["", "A1", "1a", "../x", "a b", "a;drop", "é", "x" * 64, "main", "memory", "store"]
)
def test_hostile_connection_names_are_refused(name: str, tmp_path: Path) -> None:
    with served() as (client, _app):
        body = {"name": name, "type": "sqlite", "config": {"path": str(tmp_path / "n.db")}}
        answer = client.post("/api/connections", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "name"
        assert client.get("/api/connections").json() == []


def test_a_bad_update_keeps_the_connection_as_it_was(tmp_path: Path) -> None:
    path = str(tmp_path / "u.db")
    with served(tmp_path / "state.json") as (client, _app):
        body = {"name": "u", "type": "sqlite", "config": {"path": path, "readonly": False}}
        assert client.post("/api/connections", json=body).status_code == 201
        for config in ({"path": ""}, {"path": path, "readonly": "maybe"}, {"nope": 1}):
            bad = client.put("/api/connections/u", json={**body, "config": config})
            assert bad.status_code == 400, bad.text
        assert client.put("/api/connections/u", json={**body, "type": "nosuch"}).status_code == 400
        assert client.get("/api/connections/u").json()["config"]["path"] == path
        assert client.post("/api/connections/u/test").json()["status"] == "healthy"
        renamed = client.put("/api/connections/u", json={**body, "name": "v"})
        assert renamed.status_code == 400 and renamed.json()["error"]["field"] == "name"


def test_a_server_that_never_answers_is_bounded(tmp_path: Path) -> None:
    import time

    from servers.silent import SilentServer

    with SilentServer() as silent, served(sample_interval=0.5) as (client, _app):
        form = {
            "host": "127.0.0.1",
            "port": silent.port,
            "user": "u",
            "password": "pw-Silent-1",
            "connect_timeout": 1,
        }
        started = time.monotonic()
        made = client.post(
            "/api/connections", json={"name": "hung", "type": "postgresql", "config": form}
        )
        assert made.status_code == 201 and made.json()["status"] == "unhealthy"
        assert time.monotonic() - started < 10
        started = time.monotonic()
        query = client.post("/api/query", json={"sql": "SELECT 1", "connection": "hung"})
        assert query.status_code == 503 and query.json()["error"]["type"] == "connect"
        assert time.monotonic() - started < 10
        # The store attaches what it can and says what it could not.
        store = client.post("/api/query", json={"sql": "SELECT 42"})
        assert store.json()["rows"] == [[42]] and "hung" in store.json()["warnings"][0]
        assert client.get("/api/me").status_code == 200


def test_a_password_file_keeps_the_password_out_of_the_server(
    pg_server: Any, tmp_path: Path
) -> None:
    if not pg_server.is_running():
        pg_server.start()
    secret = tmp_path / "pw"
    secret.write_text(pg_server.password + "\n")
    secret.chmod(0o600)
    state = tmp_path / "state.json"
    form = {k: v for k, v in server_config(pg_server).items() if k != "password"}
    form["password_file"] = str(secret)
    with served(state) as (client, _app):
        made = client.post(
            "/api/connections", json={"name": "pf", "type": "postgresql", "config": form}
        )
        assert made.json()["status"] == "healthy", made.json()
        assert made.json()["config"]["password_file"] == str(secret)
        assert made.json()["secrets"] == {"password": False, "password_command": False}
    assert pg_server.password not in state.read_text()
    assert not secrets_path(state).exists()


def test_an_environment_reference_keeps_the_password_out_of_the_server(
    pg_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pg_server.is_running():
        pg_server.start()
    monkeypatch.setenv("SERVE_ENVREF_PASSWORD", pg_server.password)
    state = tmp_path / "state.json"
    form = {k: v for k, v in server_config(pg_server).items() if k != "password"}
    form["env_prefix"] = "SERVE_ENVREF"
    with served(state) as (client, _app):
        made = client.post(
            "/api/connections", json={"name": "ev", "type": "postgresql", "config": form}
        )
        assert made.json()["status"] == "healthy", made.json()
        assert pg_server.password not in made.text
        bad = client.post(
            "/api/connections",
            json={"name": "ev2", "type": "postgresql", "config": {**form, "env_prefix": "A B"}},
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "config.env_prefix"
    assert pg_server.password not in state.read_text()
    assert not secrets_path(state).exists()
