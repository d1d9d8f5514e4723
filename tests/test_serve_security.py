"""`dbwire serve` security: the token and cookie, Host (DNS rebinding), cross-site requests,
no CORS, a canary password that appears nowhere, read-only queries, and no 5xx for any
request the OpenAPI document allows (schemathesis)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from dbwire.serve.state import secrets_path
from serve_helpers import AUTH, BASE, TOKEN, pg_owner, served, server_config


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[TestClient]:
    with served(tmp_path / "state.json") as (client, _app):
        made = client.post(
            "/api/connections",
            json={
                "name": "lite",
                "type": "sqlite",
                "config": {"path": str(tmp_path / "l.db"), "readonly": False},
            },
        )
        assert made.status_code == 201
        yield client


def _error(response: Response) -> str:
    return str(response.json()["error"]["type"])


def test_no_token_or_a_wrong_one_is_refused(lite: TestClient) -> None:
    bare = TestClient(lite.app, base_url=BASE)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        for method, path in (
            ("GET", "/api/me"),
            ("GET", "/api/connections"),
            ("POST", "/api/query"),
            ("GET", "/api/status"),
        ):
            answer = bare.request(method, path, headers=headers, json={"sql": "SELECT 1"})
            assert answer.status_code == 401, (method, path, headers)
            assert _error(answer) == "unauthorized"
    bare.cookies.set("dbwire_session", TOKEN)  # the token is not the cookie's value
    assert bare.get("/api/me").status_code == 401
    bare.cookies.clear()

    wrong = bare.get("/login?token=nope", follow_redirects=False)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert bare.get("/login", follow_redirects=False).status_code == 401

    login = bare.get(f"/login?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("dbwire_session=") and TOKEN not in cookie
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    assert bare.get("/api/me").json()["ok"] is True  # the cookie alone now suffices
    # The page itself loads without the token; it then asks /api/me.
    assert TestClient(lite.app, base_url=BASE).get("/").status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8765", "127.0.0.1:9999", "127.0.0.1", "", "localhost.evil:8765"],
)
def test_a_foreign_host_header_is_refused(lite: TestClient, host: str) -> None:
    for path in ("/", "/api/me", f"/login?token={TOKEN}", "/api/openapi.json"):
        answer = lite.get(path, headers={"Host": host}, follow_redirects=False)
        assert answer.status_code == 421, (host, path, answer.status_code)
        assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"])
def test_the_bound_names_are_accepted(lite: TestClient, host: str) -> None:
    assert lite.get("/api/me", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_state_changes_are_refused(lite: TestClient, headers: dict[str, str]) -> None:
    body = {"name": "x1", "type": "sqlite", "config": {"path": "/tmp/never.db"}}
    assert _error(lite.post("/api/connections", json=body, headers=headers)) == "cross_site"
    assert lite.delete("/api/connections/lite", headers=headers).status_code == 403
    put = {"name": "lite", "type": "sqlite", "config": {"path": "/tmp/never.db"}}
    assert lite.put("/api/connections/lite", json=put, headers=headers).status_code == 403
    query = {"sql": "SELECT 1", "connection": "lite"}
    assert lite.post("/api/query", json=query, headers=headers).status_code == 403
    assert {c["name"] for c in lite.get("/api/connections").json()} == {"lite"}
    assert lite.get("/api/connections/lite").json()["config"]["path"] != "/tmp/never.db"


def test_same_origin_state_changes_pass(lite: TestClient, tmp_path: Path) -> None:
    headers = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    body = {"name": "x2", "type": "sqlite", "config": {"path": str(tmp_path / "x2.db")}}
    assert lite.post("/api/connections", json=body, headers=headers).status_code == 201


def test_no_cors_headers_ever(lite: TestClient) -> None:
    evil = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    for answer in (
        lite.options("/api/connections", headers=evil),
        lite.get("/api/connections", headers={"Origin": "http://evil.example"}),
        lite.get("/", headers={"Origin": "http://evil.example"}),
    ):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


def test_validation_errors_do_not_echo_the_input(lite: TestClient) -> None:
    secret = "Echo-canary-9f3"
    bad = lite.post(
        "/api/connections",
        json={"name": "v", "type": "postgresql", "config": {"port": "abc", "password": secret}},
    )
    assert bad.status_code == 400 and secret not in bad.text
    assert bad.json()["error"]["field"] == "config.port"
    shape = lite.post("/api/connections", json={"name": 5, "password": secret})
    assert shape.status_code == 400 and secret not in shape.text
    assert _error(shape) == "validation"


# -- the canary ------------------------------------------------------------------------
CANARY = "Canary-serve-Pw-4e7b1"


@pytest.fixture
def canary_role(pg_server: Any) -> Iterator[dict[str, str]]:
    if not pg_server.is_running():
        pg_server.start()
    tag = uuid.uuid4().hex[:8]
    role, table = f"serve_canary_{tag}", f"serve_canary_t_{tag}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{CANARY}'")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {pg_server.database} TO {role}")
    owner = pg_owner(pg_server)
    owner(f"CREATE TABLE public.{table} (id int PRIMARY KEY)")
    owner(f"GRANT SELECT ON public.{table} TO {role}")
    yield {"user": role, "table": table}
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    )
    owner(f"DROP TABLE IF EXISTS public.{table}")
    pg_server.run_sql_admin(f"REVOKE CONNECT ON DATABASE {pg_server.database} FROM {role}")
    pg_server.run_sql_admin(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.postgres
def test_a_canary_password_appears_nowhere(
    pg_server: Any,
    canary_role: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state.json"
    seen: list[Response] = []
    form = server_config(pg_server, user=canary_role["user"], password=CANARY)
    wrong = server_config(pg_server, user=canary_role["user"], password=CANARY + "-wrong")
    with served(state, sample_interval=0.2) as (client, _app):

        def call(method: str, path: str, **kw: Any) -> Response:
            answer = client.request(method, path, **kw)
            seen.append(answer)
            return answer

        made = call(
            "POST", "/api/connections", json={"name": "cn", "type": "postgresql", "config": form}
        )
        assert made.json()["status"] == "healthy", made.json()
        bad = call(
            "POST", "/api/connections", json={"name": "cw", "type": "postgresql", "config": wrong}
        )
        assert bad.json()["status"] == "unhealthy"
        # The password inside the SQL, too: it is scrubbed from the driver's error.
        call("POST", "/api/query", json={"sql": f"SELECT '{CANARY}'::int", "connection": "cn"})
        call("POST", "/api/query", json={"sql": f"SELECT * FROM cn.public.{canary_role['table']}"})
        call("POST", "/api/query", json={"sql": f"SELECT * FROM cw.public.{canary_role['table']}"})
        call("POST", "/api/query", json={"sql": f"SELEC '{CANARY}'", "connection": "cn"})
        for path in (
            "/api/connections",
            "/api/connections/cn",
            "/api/connections/cw",
            "/api/health",
            "/api/status",
            "/api/connections/cn/schema",
            "/api/connections/cw/schema",
            "/api/types",
            "/api/openapi.json",
            "/",
        ):
            call("GET", path)
        call("POST", "/api/connections/cn/test")
        call("POST", "/api/connections/cw/test")
        call(
            "PUT", "/api/connections/cw", json={"name": "cw", "type": "postgresql", "config": wrong}
        )
        call(
            "PUT", "/api/connections/cn", json={"name": "cn", "type": "postgresql", "config": form}
        )
        call("POST", "/api/connections", json={"name": "cn", "type": "postgresql", "config": form})
        call("DELETE", "/api/connections/cw")
    for answer in seen:
        assert answer.status_code < 500 or answer.status_code == 503, answer.text
        assert CANARY not in answer.text, (answer.request.url, answer.text)
        assert CANARY not in str(answer.headers)
    assert CANARY not in caplog.text
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err
    assert CANARY not in state.read_text()
    # The one place it is kept: the 0600 secret file (no keyring on this machine).
    assert secrets_path(state).stat().st_mode & 0o777 == 0o600
    assert CANARY in secrets_path(state).read_text()


# -- read-only ----------------------------------------------------------------------------
@pytest.fixture
def ro_table(pg_server: Any) -> Iterator[str]:
    if not pg_server.is_running():
        pg_server.start()
    table = f"serve_ro_{uuid.uuid4().hex[:8]}"
    owner = pg_owner(pg_server)
    owner(f"CREATE TABLE public.{table} (id int PRIMARY KEY)")
    owner(f"INSERT INTO public.{table} VALUES (1), (2), (3)")
    yield table
    owner(f"DROP TABLE IF EXISTS public.{table}")


@pytest.mark.postgres
def test_writes_through_the_query_endpoint_are_refused_on_read_only(
    pg_server: Any, ro_table: str
) -> None:
    count = f"SELECT count(*) FROM public.{ro_table}"
    owner = pg_owner(pg_server)
    # The login owns the table: only dbwire's read-only mode stands between it and a write.
    with served() as (client, _app):
        for name, readonly in (("ro", True), ("rw", False)):
            made = client.post(
                "/api/connections",
                json={
                    "name": name,
                    "type": "postgresql",
                    "config": server_config(pg_server, readonly=readonly),
                },
            )
            assert made.json()["status"] == "healthy"
        writes = [
            f"DELETE FROM public.{ro_table}",
            f"WITH d AS (DELETE FROM public.{ro_table} RETURNING *) SELECT * FROM d",
            f"SELECT 1; DELETE FROM public.{ro_table}",
            f"DROP TABLE public.{ro_table}",
            f"SELECT * FROM public.{ro_table} FOR UPDATE",
        ]
        for sql in writes:
            for name, write in (("ro", False), ("ro", True), ("rw", False)):
                answer = client.post(
                    "/api/query", json={"sql": sql, "connection": name, "write": write}
                )
                assert answer.status_code in (400, 403), (sql, name, write, answer.text)
                assert owner(count) == [(3,)], (sql, name, write)
        store = client.post("/api/query", json={"sql": f"DELETE FROM ro.public.{ro_table}"})
        assert store.status_code == 403
        store = client.post(
            "/api/query", json={"sql": f"DELETE FROM ro.public.{ro_table}", "write": True}
        )
        assert store.status_code == 403 and owner(count) == [(3,)]
        # The control: a writable connection and "write": true do write.
        done = client.post(
            "/api/query",
            json={
                "sql": f"DELETE FROM public.{ro_table} WHERE id = 3",
                "connection": "rw",
                "write": True,
            },
        )
        assert done.status_code == 200, done.text
        assert owner(count) == [(2,)]


def test_a_mounted_app_keeps_every_check(tmp_path: Path) -> None:
    from fastapi import FastAPI

    import dbwire
    from dbwire.serve import create_app

    outer = FastAPI()
    inner = create_app(
        dbwire.Manager({"databases": {}}), token=TOKEN, port=None, secret_backend="file"
    )
    outer.mount("/db", inner)
    client = TestClient(outer, base_url="http://127.0.0.1:8000")
    assert client.get("/db/api/me").status_code == 401
    assert client.get("/db/api/connections").status_code == 401
    assert client.get("/db/api/me", headers=AUTH).json()["ok"] is True
    assert client.get("/db/api/me", headers={**AUTH, "Host": "evil.example"}).status_code == 421
    login = client.get(f"/db/login?token={TOKEN}", follow_redirects=False)
    assert login.headers["location"] == "/db/"
    assert "path=/db/" in login.headers["set-cookie"].lower()
    assert client.get("/db/api/me").json()["ok"] is True
    cross = client.post(
        "/db/api/query", json={"sql": "SELECT 1"}, headers={**AUTH, "Origin": "http://evil.example"}
    )
    assert cross.status_code == 403


@pytest.mark.mysql
def test_writes_are_refused_on_a_read_only_mariadb_connection(mysql_server: Any) -> None:
    if not mysql_server.is_running():
        mysql_server.start()
    db = mysql_server.database
    table = f"serve_ro_{uuid.uuid4().hex[:8]}"
    mysql_server.run_sql_admin(f"CREATE TABLE `{db}`.{table} (id int PRIMARY KEY)")
    mysql_server.run_sql_admin(f"INSERT INTO `{db}`.{table} VALUES (1), (2)")
    count = f"SELECT count(*) FROM `{db}`.{table}"
    try:
        with served() as (client, _app):
            made = client.post(
                "/api/connections",
                json={"name": "ro", "type": "mariadb", "config": server_config(mysql_server)},
            )
            assert made.json()["status"] == "healthy"
            for sql in (
                f"DELETE FROM {table}",
                f"SELECT 1; DELETE FROM {table}",
                f"TRUNCATE TABLE {table}",
                f"SELECT * FROM {table} INTO OUTFILE '/tmp/serve-ro-{table}'",
            ):
                for write in (False, True):
                    answer = client.post(
                        "/api/query", json={"sql": sql, "connection": "ro", "write": write}
                    )
                    assert answer.status_code in (400, 403), (sql, write, answer.text)
                    assert mysql_server.query_admin(count) == [(2,)], (sql, write)
    finally:
        mysql_server.run_sql_admin(f"DROP TABLE IF EXISTS `{db}`.{table}")


def test_a_config_file_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    from servers import free_port

    caplog.set_level(logging.DEBUG)
    secret = "Canary-url-Pw-81c2"
    url = f"postgresql://app:{secret}@127.0.0.1:{free_port()}/app?connect_timeout=1"
    config = {"databases": {"conf": {"url": url, "password_command": f"echo {secret}x"}}}
    with served(config=config, sample_interval=0.2) as (client, _app):
        answers = [
            client.get("/api/connections"),
            client.get("/api/connections/conf"),
            client.post("/api/connections/conf/test"),
            client.get("/api/health"),
            client.post("/api/query", json={"sql": "SELECT 1", "connection": "conf"}),
            client.post("/api/query", json={"sql": "SELECT 1"}),
            client.get("/api/connections/conf/schema"),
        ]
        listed = answers[0].json()[0]
        assert listed["source"] == "config" and listed["secrets"]["password"] is True
        assert "***" in listed["config"]["url"]
        answers.append(client.get("/api/status"))
    for answer in answers:
        assert secret not in answer.text and secret not in str(answer.headers), answer.text
    assert secret not in caplog.text
