"""Canary sweep: a password put anywhere dbwire takes one appears in no output.

Each placement (URL userinfo, URL query, options, connect_args, the password field,
password_file, password_command, env, PGPASSWORD, .pgpass, S3 keys) is tried with the
right password, a wrong one and a dead port, and every surface is searched: reprs,
dumps, every error and its whole chain, health, stats, the logs at DEBUG with echo and
query logging, and every CLI command run as the installed script.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import dbwire
from clean_env import CleanEnv
from dbwire import Database, DatabaseConfig, Manager
from dbwire.cli import app
from dbwire.credentials import PasswordCommand
from dbwire.errors import (
    ConfigError,
    ConnectError,
    CredentialsError,
    DbwireError,
    describe,
    is_secret_key,
    scrub,
)
from servers import DatabaseServer, free_port

CANARY = "Canary-7f3kQ9zP"
# A second secret for placements that take one besides the login password.
SSL_CANARY = "Canary-ssl-Wq83vB"
CANARIES = (CANARY, SSL_CANARY)
DBWIRE = Path(sys.executable).parent / "dbwire"


# --------------------------------------------------------------------------- the search
def _exception_texts(exc: BaseException) -> list[str]:
    """Every text an exception and its chain can show: str, repr, args, attributes."""
    texts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(a) for a in current.args)]
        for name, value in vars(current).items():
            if isinstance(value, BaseException):
                todo.append(value)
            elif not name.startswith("__"):
                texts.append(f"{name}={value!r}")
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return texts


def assert_clean(label: str, *items: object, secrets: tuple[str, ...] = CANARIES) -> None:
    """No canary in any item (exceptions are searched with their whole chain)."""
    for item in items:
        if isinstance(item, BaseException):
            texts = _exception_texts(item)
        elif isinstance(item, str):
            texts = [item]
        else:
            texts = [repr(item), str(item)]
        for shown in texts:
            for canary in secrets:
                assert canary not in shown, f"{label}: the canary leaked: {shown[:400]!r}"


def test_the_search_finds_a_canary_anywhere_in_a_chain() -> None:
    """The helper itself: a canary hidden in a cause's attribute is found."""

    class Holder:
        def __repr__(self) -> str:
            return f"<conn password={CANARY}>"

    inner = RuntimeError("inner")
    inner.conn = Holder()  # type: ignore[attr-defined]
    try:
        try:
            raise inner
        except RuntimeError:
            raise ValueError("outer") from None
    except ValueError as outer:
        with pytest.raises(AssertionError, match="leaked"):
            assert_clean("probe", outer)  # found through __context__, although `from None`


# --------------------------------------------------------------------------- servers, roles
def _admin_in_app_db(server: DatabaseServer, sql: str) -> None:
    url = make_url(server.admin_url).set(database=server.database, drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql)


@dataclass(frozen=True)
class Roles:
    """A login whose password is the canary, and one whose password is something else."""

    right: str
    wrong: str


@pytest.fixture(scope="module")
def pg_roles(pg_server: DatabaseServer) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    roles = Roles(f"canary_ok_{suffix}", f"canary_bad_{suffix}")
    pg_server.run_sql_admin(f"CREATE ROLE {roles.right} LOGIN PASSWORD '{CANARY}'")
    pg_server.run_sql_admin(f"CREATE ROLE {roles.wrong} LOGIN PASSWORD 'not-the-canary-1'")
    _admin_in_app_db(pg_server, f"GRANT ALL ON SCHEMA public TO {roles.right}")
    yield roles
    _admin_in_app_db(pg_server, f"DROP OWNED BY {roles.right}")
    for role in (roles.right, roles.wrong):
        pg_server.run_sql_admin(f"DROP ROLE {role}")


@pytest.fixture(scope="module")
def mysql_roles(mysql_server: DatabaseServer) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    roles = Roles(f"cok_{suffix}", f"cbad_{suffix}")
    mysql_server.run_sql_admin(f"CREATE USER '{roles.right}'@'%' IDENTIFIED BY '{CANARY}'")
    mysql_server.run_sql_admin(f"CREATE USER '{roles.wrong}'@'%' IDENTIFIED BY 'not-canary-2'")
    mysql_server.run_sql_admin(f"GRANT ALL ON `{mysql_server.database}`.* TO '{roles.right}'@'%'")
    yield roles
    for role in (roles.right, roles.wrong):
        mysql_server.run_sql_admin(f"DROP USER '{role}'@'%'")


@pytest.fixture(autouse=True)
def _no_ambient_credentials(clean_env: CleanEnv, tmp_path: Path) -> None:
    clean_env.set(PGPASSFILE=str(tmp_path / "no-pgpass"), DBWIRE_DUCKDB_OFFLINE="1")


# --------------------------------------------------------------------------- placements
@dataclass
class Placement:
    """One way of giving the canary: config fields, env for load_config, process env."""

    fields: dict[str, Any]
    environ: dict[str, str]
    process_env: dict[str, str]
    # asyncpg/aiomysql take no such keyword (e.g. sslpassword): sync only.
    async_ok: bool = True
    # The store attaches with the resolved password; one given only as a driver
    # argument (connect_args) does not reach DuckDB, so that attach fails (still clean).
    store_ok: bool = True


def _placement(
    kind: str, scheme: str, role: str, host: str, port: int, database: str, tmp_path: Path
) -> Placement:
    base = f"{scheme}://{role}@{host}:{port}/{database}"
    process_env: dict[str, str] = {}
    environ: dict[str, str] = {}
    async_ok = True
    if kind == "userinfo":
        fields: dict[str, Any] = {"url": f"{scheme}://{role}:{CANARY}@{host}:{port}/{database}"}
    elif kind == "query_password":
        fields = {"url": f"{base}?password={CANARY}"}
    elif kind == "query_sslpassword":
        fields = {"url": f"{base}?sslpassword={SSL_CANARY}", "password": CANARY}
        async_ok = False
    elif kind == "options":
        fields = {"url": base, "options": {"password": CANARY}}
    elif kind == "connect_args":
        fields = {"url": base, "connect_args": {"password": CANARY}}
    elif kind == "field":
        fields = {"url": base, "password": CANARY}
    elif kind == "password_file":
        secret = tmp_path / f"pw-{uuid.uuid4().hex[:6]}"
        secret.write_text(CANARY + "\n")
        fields = {"url": base, "password_file": str(secret)}
    elif kind == "password_command":
        # The canary is in the argv and in the output.
        fields = {"url": base, "password_command": [sys.executable, "-c", f"print({CANARY!r})"]}
    elif kind == "env":
        fields = {"url": base}
        environ = {"DBWIRE_CANARY__PASSWORD": CANARY}
    elif kind == "env_url":
        fields = {"backend": scheme}
        environ = {"DBWIRE_CANARY__URL": f"{scheme}://{role}:{CANARY}@{host}:{port}/{database}"}
    elif kind == "pgpassword":
        fields = {"url": base}
        process_env = {"PGPASSWORD": CANARY}
    elif kind == "pgpass":
        passfile = tmp_path / f"pgpass-{uuid.uuid4().hex[:6]}"
        passfile.write_text(f"{host}:{port}:{database}:{role}:{CANARY}\n")
        passfile.chmod(0o600)
        fields = {"url": base}
        process_env = {"PGPASSFILE": str(passfile)}
    else:
        raise AssertionError(kind)
    return Placement(fields, environ, process_env, async_ok, store_ok=kind != "connect_args")


PG_PLACEMENTS = (
    "userinfo",
    "query_password",
    "query_sslpassword",
    "options",
    "connect_args",
    "field",
    "password_file",
    "password_command",
    "env",
    "env_url",
    "pgpassword",
    "pgpass",
)
MYSQL_PLACEMENTS = (
    "userinfo",
    "query_password",
    "options",
    "connect_args",
    "field",
    "password_file",
    "password_command",
    "env",
    "env_url",
)


def _config(placement: Placement, **extra: Any) -> dbwire.Config:
    fields = {**placement.fields, "connect_timeout": 2, "health_timeout": 3, **extra}
    return dbwire.load_config({"databases": {"canary": fields}}, environ=placement.environ)


def _static_surfaces(config: dbwire.Config, db: Database) -> list[object]:
    cfg = config.databases[db.name]
    surfaces: list[object] = [
        repr(config),
        str(config),
        config.model_dump(),
        config.model_dump_json(),
        repr(cfg),
        str(cfg),
        cfg.url,
        cfg.display_url,
        cfg.model_dump(),
        cfg.model_dump_json(),
        repr(db),
        db.url,
        repr(db.connect_params()),
    ]
    if db.backend.has_engine:
        surfaces += [repr(db.engine), repr(db.engine.url), str(db.engine.url)]
    return surfaces


def _sweep(
    label: str,
    placement: Placement,
    *,
    works: bool,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Use one database in every way, asserting the canary shows nowhere."""
    for var, value in placement.process_env.items():
        monkeypatch.setenv(var, value)
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    config = _config(placement, echo=True, log_queries=True, slow_query_ms=0)
    db = Database(config.databases["canary"])
    seen: list[object] = _static_surfaces(config, db)
    errors: list[BaseException] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            seen.append(call())
        except Exception as exc:  # every failure is a surface too
            errors.append(exc)

    attempt(lambda: db.execute_query("SELECT 1 AS one"))

    def in_session() -> object:
        with db.session() as s:
            return s.execute(text("SELECT 2")).scalar()

    attempt(in_session)
    if placement.async_ok:

        async def in_async() -> object:
            try:
                async with db.async_session() as s:
                    return (await s.execute(text("SELECT 3"))).scalar()
            finally:
                await db.aclose()

        attempt(lambda: asyncio.run(in_async()))
    else:
        db.close()
    db = Database(config.databases["canary"])
    health = db.health_check()
    seen += [health, health.as_dict()]
    attempt(lambda: db.wait(timeout=1))
    seen.append(db.get_stats())

    def in_store() -> object:
        with dbwire.get_duckdb_connection() as store:
            store.attach(db, alias="att")
            return store.execute("SELECT 1").fetchall()

    if placement.store_ok:
        attempt(in_store)
    else:
        with pytest.raises(ConnectError) as refused:
            in_store()
        seen.append(refused.value)
    db.close()
    manager = Manager(config)
    manager.setup()
    seen += [manager.errors, manager.get_stats(), manager.health_check()]
    errors += list(manager.errors.values())
    manager.close_all()
    if works:
        assert not errors, f"{label}: the right password did not log in: {errors[0]}"
        assert health.status == "healthy", health
        assert any("SELECT 1 AS one" in r.getMessage() for r in caplog.records), "no query log"
    else:
        assert errors, f"{label}: a wrong password or dead port raised nothing"
        # (Whether every path raises a DbwireError is the bad-input sweep's to prove; here
        # every error, whatever its type, is searched with its chain.)
        assert any(isinstance(e, DbwireError) for e in errors), errors
        assert health.status == "unhealthy"
    assert_clean(label, *seen, *errors)
    assert_clean(f"{label} (log)", caplog.text, *(repr(r.args) for r in caplog.records))


@pytest.mark.parametrize("kind", PG_PLACEMENTS)
def test_postgres_canary_in_every_placement_appears_nowhere(
    kind: str,
    pg_server: DatabaseServer,
    pg_url: str,
    pg_roles: Roles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port, database = pg_server.host, pg_server.port, pg_server.database
    right = _placement(kind, "postgresql", pg_roles.right, host, port, database, tmp_path)
    _sweep(f"{kind} (right password)", right, works=True, caplog=caplog, monkeypatch=monkeypatch)
    wrong = _placement(kind, "postgresql", pg_roles.wrong, host, port, database, tmp_path)
    _sweep(f"{kind} (wrong password)", wrong, works=False, caplog=caplog, monkeypatch=monkeypatch)
    dead = _placement(kind, "postgresql", pg_roles.right, host, free_port(), database, tmp_path)
    _sweep(f"{kind} (dead port)", dead, works=False, caplog=caplog, monkeypatch=monkeypatch)


@pytest.mark.parametrize("kind", MYSQL_PLACEMENTS)
def test_mysql_canary_in_every_placement_appears_nowhere(
    kind: str,
    mysql_server: DatabaseServer,
    mysql_url: str,
    mysql_roles: Roles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port, database = mysql_server.host, mysql_server.port, mysql_server.database
    right = _placement(kind, "mysql", mysql_roles.right, host, port, database, tmp_path)
    _sweep(f"{kind} (right password)", right, works=True, caplog=caplog, monkeypatch=monkeypatch)
    wrong = _placement(kind, "mysql", mysql_roles.wrong, host, port, database, tmp_path)
    _sweep(f"{kind} (wrong password)", wrong, works=False, caplog=caplog, monkeypatch=monkeypatch)
    dead = _placement(kind, "mysql", mysql_roles.right, host, free_port(), database, tmp_path)
    _sweep(f"{kind} (dead port)", dead, works=False, caplog=caplog, monkeypatch=monkeypatch)


WEIRD = "Can'a\"ry @:/%x-9Q&=+;\\"


def test_a_password_of_url_and_quote_characters_appears_nowhere(
    pg_server: DatabaseServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Percent-encoded in the URL, escaped in reprs, quoted in SQL: no form gets out."""
    caplog.set_level(logging.DEBUG)
    role = f"weird_{uuid.uuid4().hex[:8]}"
    escaped = WEIRD.replace("'", "''")
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{escaped}'")
    forms = (WEIRD, quote(WEIRD, safe=""), quote_plus(WEIRD), repr(WEIRD)[1:-1])
    host, port, database = pg_server.host, pg_server.port, pg_server.database
    seen: list[object] = []
    try:
        for target_port, user, works in (
            (port, role, True),
            (port, "nobody_weird", False),
            (free_port(), role, False),
        ):
            url = f"postgresql://{user}:{quote(WEIRD, safe='')}@{host}:{target_port}/{database}"
            config = dbwire.load_config(
                {"databases": {"weird": {"url": url, "echo": True, "log_queries": True}}},
                environ={},
            )
            db = Database(config.databases["weird"])
            seen += _static_surfaces(config, db)
            try:
                seen.append(db.execute_query("SELECT 1"))
                seen.append(db.execute_query(f"ALTER ROLE {role} PASSWORD '{escaped}'"))
                assert works, "a wrong login connected"
            except DbwireError as exc:
                assert not works, exc
                seen.append(exc)
            seen.append(db.health_check())
            db.close()
    finally:
        pg_server.run_sql_admin(f"DROP ROLE {role}")
    assert_clean("weird password", *seen, caplog.text, secrets=forms)


# --------------------------------------------------------------------------- the models
def test_config_models_hold_the_url_password_as_a_secret() -> None:
    url = f"postgresql://app:{CANARY}@db.internal:5432/app?sslpassword={SSL_CANARY}&sslmode=require"
    cfg = DatabaseConfig(
        name="m",
        url=url,
        options={"password": CANARY, "application_name": "x"},
        connect_args={"sslpassword": SSL_CANARY, "connect_timeout": 3},
        replicas=[f"postgresql://app:{CANARY}@replica/app"],
        password_command=["vault", "read", f"--token={CANARY}"],
    )
    assert_clean(
        "model",
        str(cfg.url),
        repr(cfg),
        str(cfg),
        cfg.model_dump(),
        cfg.model_dump_json(),
        cfg.replicas,
    )
    assert cfg.url == "postgresql://app:***@db.internal:5432/app?sslmode=require&sslpassword=***"
    assert cfg.model_dump()["options"] == {"password": "***", "application_name": "x"}
    assert cfg.model_dump()["password_command"] == ["vault", "***"]
    assert cfg.url_with_password() == url  # the explicit reveal path
    # The engine gets the password per connection, never in its URL.
    db = Database(cfg.with_overrides(options={"password": CANARY}))
    assert db.backend.password_from_url() == CANARY
    engine_url = db.backend.engine_url(is_async=False)
    assert engine_url.password is None
    assert_clean("engine url", repr(engine_url), engine_url.render_as_string(hide_password=False))
    assert db.backend.engine_options(is_async=False)["connect_args"]["sslpassword"] == SSL_CANARY
    db.close()
    # Two configs that differ only in the URL's password are two databases.
    other = DatabaseConfig(name="m", url=url.replace(CANARY, "another-pw"))
    assert other.model_dump_json() == DatabaseConfig(name="m", url=url).model_dump_json()
    first, second = dbwire.connect(other), dbwire.connect(DatabaseConfig(name="m", url=url))
    assert first is not second
    first.close()
    second.close()


def test_config_errors_carry_no_secret_in_their_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("url without //", {"url": f"postgresql:app:{CANARY}@host/db"}, {}),
        ("url with a bad port", {"url": f"postgresql://app:{CANARY}@host:notaport/db"}, {}),
        ("badly typed password", {"url": "postgresql://h/db", "password": [CANARY]}, {}),
        (
            "badly typed options",
            {"url": "postgresql://h/db", "options": {"password": [CANARY]}},
            {},
        ),
        ("options not a table", {"url": "postgresql://h/db", "options": f"password={CANARY}"}, {}),
        ("bad connect_args", {"url": "postgresql://h/db", "connect_args": CANARY}, {}),
        (
            "bad JSON in env",
            {"url": "postgresql://h/db"},
            {"DBWIRE_CANARY__CONNECT_ARGS": f'{{"password": "{CANARY}"'},
        ),
        (
            "bad port next to a password",
            {"url": f"postgresql://app:{CANARY}@h/db", "port": "x"},
            {},
        ),
    ]
    for label, fields, environ in cases:
        with pytest.raises(DbwireError) as caught:
            config = dbwire.load_config({"databases": {"canary": fields}}, environ=environ)
            dbwire.connect(config.databases["canary"]).engine  # noqa: B018  (a URL error may wait until here)
        assert isinstance(caught.value, ConfigError), (label, caught.value)
        assert "canary" in str(caught.value), f"{label}: the message names no database"
        assert_clean(label, caught.value)
    with pytest.raises(ConfigError) as caught:
        PasswordCommand(f"vault read --token={CANARY} 'unclosed", ttl=1)
    assert_clean("unsplittable command", caught.value)


# --------------------------------------------------------------------------- messages
def test_describe_masks_values_not_letters() -> None:
    message = (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL: password '
        'authentication failed for user "p"; postgresql://app:p@host/db?password=p'
    )
    shown = describe(RuntimeError(message), ["p"])
    assert "port 5432" in shown and "postgresql://app:***@host/db" in shown
    assert "password authentication failed" in shown
    assert re.search(r"(?<![\w*])p(?![\w*])", shown) is None, shown
    # Long secrets go wherever they occur, percent-encoded and repr-escaped forms too.
    weird = "Canary-7f3k Q9/zP'\\"
    text = f"a{weird}b {quote(weird, safe='')} {quote_plus(weird)} {weird!r} {json.dumps(weird)}"
    assert weird not in scrub(text, [weird]) and "Q9" not in scrub(text, [weird])
    # Secrets by position, with no known secret at all.
    for sql in (
        f"ALTER ROLE app WITH PASSWORD '{CANARY}'",
        f"ALTER ROLE app ENCRYPTED PASSWORD '{CANARY}' VALID UNTIL 'infinity'",
        f"CREATE USER 'a'@'%' IDENTIFIED BY '{CANARY}'",
        f"ALTER USER a IDENTIFIED WITH mysql_native_password BY '{CANARY}'",
        f"SET PASSWORD FOR a = PASSWORD('{CANARY}')",
        f"SET PASSWORD = '{CANARY}'",
        f"ALTER ROLE app PASSWORD E'{CANARY}\\'s'",
        f"ALTER ROLE app PASSWORD $pw${CANARY}$pw$ VALID UNTIL 'infinity'",
        f"host=h password={CANARY} user=u",
        f"{{'password': '{CANARY}', 'host': 'h'}}",
        f'{{"sslpassword": "{CANARY}"}}',
        f"mysql:u:{CANARY}@h/db",
    ):
        assert CANARY not in describe(sql), sql
    assert len(describe("x" * 10_000)) == 500
    assert describe(TimeoutError()) == "TimeoutError"  # asyncpg's timeout has no text


# Any character but the mask's own '*' (a password holding '***' cannot be told from it).
_TEXT = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)))


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(min_size=4, max_size=24).filter(lambda t: "*" not in t),
    before=_TEXT,
    after=_TEXT,
)
def test_fuzz_a_long_secret_never_survives_scrubbing(secret: str, before: str, after: str) -> None:
    for shown in (f"{before}{secret}{after}", f"{before}{quote(secret, safe='')}{after}"):
        assert secret not in scrub(shown, [secret])
        assert quote(secret, safe="") not in scrub(shown, [secret])
    assert secret not in describe(RuntimeError(f"{before}{secret!r}{after}"), [secret])


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(st.characters(blacklist_characters="*"), min_size=1, max_size=3),
    words=st.lists(
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True).filter(lambda w: not is_secret_key(w)),
        max_size=8,
    ),
    glue=st.sampled_from([" ", "=", ":", "@", "'", '"', ", ", "/"]),
)
def test_fuzz_a_short_secret_is_masked_as_a_value_only(
    secret: str, words: list[str], glue: str
) -> None:
    shown = glue.join([*words, secret, *words])
    clean = scrub(shown, [secret])
    tokens = re.split(r"[^\w*]+", clean)
    assert secret not in tokens or not secret.isalnum()
    for word in words:  # words that merely contain the secret stay readable
        if word != secret:
            assert word in clean


def test_one_letter_password_leaves_messages_readable(
    pg_server: DatabaseServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port, database = pg_server.host, pg_server.port, pg_server.database
    for target_port in (port, free_port()):
        db = Database(
            DatabaseConfig(
                name="short", url=f"postgresql://nobody_here:p@{host}:{target_port}/{database}"
            )
        )
        with pytest.raises(ConnectError) as caught:
            db.execute_query("SELECT 1")
        health = db.health_check()
        db.close()
        for shown in (str(caught.value), health.error or ""):
            assert "postgresql://nobody_here:***@" in shown, shown
            assert "port" in shown and "postgresql" in shown, shown
            if target_port == port:
                assert "password authentication failed" in shown, shown
            assert re.search(r"(?<![\w*])p(?![\w*])", shown) is None, shown
            assert "***ort" not in shown and "***ostgres" not in shown


def test_passwords_written_in_sql_stay_out_of_logs_and_errors(
    pg_server: DatabaseServer, pg_url: str, pg_roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = Database(
        DatabaseConfig(name="sqlpw", url=pg_url, echo=True, log_queries=True, slow_query_ms=0)
    )
    errors: list[BaseException] = []
    try:
        # Whether the login may alter roles or not, each statement is logged; the
        # failing ones raise, and their text and chain are searched too.
        for statement in (
            f"ALTER ROLE {pg_roles.right} PASSWORD '{CANARY}'",
            f"ALTER ROLE {pg_roles.right} WITH ENCRYPTED PASSWORD '{CANARY}'",
            f"ALTER ROLE no_such_role_x PASSWORD '{CANARY}'",
            f"CREATE ROLE {pg_roles.right} PASSWORD '{CANARY}'",
        ):
            try:
                db.execute_query(statement)
            except Exception as exc:
                errors.append(exc)
            try:
                with db.session() as s:
                    s.execute(text(statement))
            except Exception as exc:
                errors.append(exc)
    finally:
        db.close()
    assert len(errors) >= 4, "the statements that must fail did not"
    assert "ALTER ROLE" in caplog.text and "PASSWORD '***'" in caplog.text
    assert_clean("sql in logs", caplog.text, *errors)
    assert any("no_such_role_x" in str(e) for e in errors)  # the message is still useful


def test_mysql_passwords_in_sql_stay_out_of_logs_and_errors(
    mysql_url: str, mysql_roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = Database(
        DatabaseConfig(name="mysqlpw", url=mysql_url, echo=True, log_queries=True, slow_query_ms=0)
    )
    errors: list[BaseException] = []
    try:
        for statement in (
            f"ALTER USER '{mysql_roles.right}'@'%' IDENTIFIED BY '{CANARY}'",
            f"SET PASSWORD FOR '{mysql_roles.right}'@'%' = PASSWORD('{CANARY}')",
            f"ALTER USER 'no_such_user'@'%' IDENTIFIED BY '{CANARY}'",
            f"CREATE USER '{mysql_roles.right}'@'%' IDENTIFIED BY '{CANARY}'",
        ):
            try:
                db.execute_query(statement)
            except Exception as exc:
                errors.append(exc)
    finally:
        db.close()
    assert len(errors) >= 2, "the statements that must fail did not"
    assert "IDENTIFIED BY '***'" in caplog.text and "PASSWORD('***')" in caplog.text
    assert_clean("mysql sql in logs", caplog.text, *errors)


def test_password_command_shows_its_program_only(tmp_path: Path) -> None:
    script = tmp_path / "helper.py"
    script.write_text(
        "import sys\n"
        "print(f'token {sys.argv[1]} rejected; also tried password=" + CANARY + "', "
        "file=sys.stderr)\n"
        "sys.exit(4)\n"
    )
    command = PasswordCommand([sys.executable, str(script), f"--token={CANARY}"], ttl=1)
    with pytest.raises(CredentialsError) as caught:
        command.get()
    message = str(caught.value)
    assert Path(sys.executable).name in message and "exited with status 4" in message
    assert "stderr: token" in message  # the helper's own words stay readable
    assert_clean("password command", caught.value, repr(command))
    missing = PasswordCommand(["/no/such/helper", f"--token={CANARY}"], ttl=1)
    with pytest.raises(CredentialsError) as caught:
        missing.get()
    assert "'helper'" in str(caught.value)
    assert_clean("missing command", caught.value)


# --------------------------------------------------------------------------- S3 keys
def test_s3_keys_appear_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    caplog.set_level(logging.DEBUG)
    try:
        endpoint = f"127.0.0.1:{port}"
        bucket = f"canary-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=f"http://{endpoint}",
            aws_access_key_id="AKIDCANARY",
            aws_secret_access_key=CANARY,
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        options = {"endpoint": endpoint, "url_style": "path", "use_ssl": "false"}
        options["region"] = "us-east-1"
        seen: list[object] = []
        for url, extra in (
            (f"s3://AKIDCANARY:{CANARY}@{bucket}/data?session_token={SSL_CANARY}", {}),
            (f"s3://{bucket}/data", {"user": "AKIDCANARY", "password": CANARY}),
            (f"s3://AKIDCANARY:{CANARY}@no-such-bucket-{bucket}/x", {}),
            (
                f"s3://AKIDCANARY:{CANARY}@{bucket}/x",
                {"options": {"endpoint": f"127.0.0.1:{free_port()}"}},
            ),
        ):
            fields = {"url": url, "options": {**options, **extra.pop("options", {})}, **extra}
            config = dbwire.load_config({"databases": {"canary": fields}}, environ={})
            db = Database(config.databases["canary"])
            seen += _static_surfaces(config, db)
            seen.append(db.health_check())
            try:
                seen.append(db.execute_query(f"SELECT count(*) FROM glob('s3://{bucket}/*')"))
                with dbwire.get_duckdb_connection(tmp_path / f"{uuid.uuid4().hex}.duckdb") as store:
                    store.attach(db)
                    seen.append(store.execute("SELECT name, type FROM duckdb_secrets()").fetchall())
                    seen.append(store.execute("SELECT * FROM duckdb_secrets()").fetchall())
            except Exception as exc:
                seen.append(exc)
            db.close()
        assert any(isinstance(s, BaseException) for s in seen), "no error path was reached"
        assert_clean("s3", *seen, caplog.text)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the CLI
@dataclass
class Run:
    args: list[str]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _run_all(argvs: list[list[str]], env: dict[str, str], cwd: Path) -> list[Run]:
    """Run the installed `dbwire` once per argv, a few at a time (the machine is shared)."""
    runs: list[Run] = []
    for start in range(0, len(argvs), 6):
        batch = argvs[start : start + 6]
        procs = [
            subprocess.Popen(
                [str(DBWIRE), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=cwd,
            )
            for args in batch
        ]
        for args, proc in zip(batch, procs, strict=True):
            out, err = proc.communicate(timeout=120)
            runs.append(Run(args, proc.returncode, out, err))
    return runs


def _toml_value(value: Any) -> str:
    return (
        json.dumps(value)
        if not isinstance(value, dict)
        else ("{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }")
    )


def test_every_cli_command_keeps_the_canary_in(
    pg_server: DatabaseServer,
    pg_url: str,
    pg_roles: Roles,
    mysql_server: DatabaseServer,
    mysql_url: str,
    mysql_roles: Roles,
    tmp_path: Path,
) -> None:
    assert DBWIRE.is_file(), f"{DBWIRE} missing: pip install -e . --no-deps"
    host, port, database = pg_server.host, pg_server.port, pg_server.database
    blocks: list[str] = []
    names: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBWIRE_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "DBWIRE_DUCKDB_OFFLINE": "1"})
    for extension_var in ("DBWIRE_DUCKDB_EXTENSION_DIRECTORY",):
        if extension_var in os.environ:
            env[extension_var] = os.environ[extension_var]
    targets = [(kind, "postgresql", pg_roles.right, port) for kind in PG_PLACEMENTS]
    targets += [("userinfo", "postgresql", pg_roles.wrong, port)]
    targets += [("field", "postgresql", pg_roles.right, free_port())]
    targets += [
        (kind, "mysql", mysql_roles.right, mysql_server.port) for kind in ("userinfo", "options")
    ]
    targets += [("query_password", "mysql", mysql_roles.wrong, mysql_server.port)]
    for index, (kind, scheme, role, target_port) in enumerate(targets):
        where = (
            (host, target_port, database)
            if scheme == "postgresql"
            else (mysql_server.host, target_port, mysql_server.database)
        )
        placement = _placement(kind, scheme, role, *where, tmp_path)
        name = f"c{index}_{kind}"
        names.append(name)
        lines = [f"[databases.{name}]", "connect_timeout = 2", "health_timeout = 3"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in placement.fields.items()]
        blocks.append("\n".join(lines))
        for var, value in placement.environ.items():
            env[var.replace("DBWIRE_CANARY__", f"DBWIRE_{name.upper()}__")] = value
        env.update(placement.process_env)  # PGPASSFILE: one .pgpass line for its database
    config = tmp_path / "dbwire.toml"
    config.write_text("\n\n".join(blocks) + "\n")
    cfg = ["--config", str(config)]
    argvs: list[list[str]] = [
        ["list", *cfg],
        ["check", *cfg],
        ["check", "--json", *cfg],
        ["sql", "SELECT 42 AS answer", *cfg],
        ["sql", "SELECT * FROM no_such_thing", "--debug", *cfg],
        # sql attaches lazily: --only attaches every placement, a statement names one.
        ["sql", "SELECT 42 AS answer", "--only", ",".join(names), *cfg],
        ["sql", f"SELECT * FROM {names[0]}.public.no_such_thing", *cfg],
    ]
    # A URL where a name goes: check (like pg_isready -d), url and query.
    canary_url = f"postgresql://{pg_roles.right}:{CANARY}@{host}:{port}/{database}"
    dead_url = f"postgresql://{pg_roles.right}:{CANARY}@{host}:{free_port()}/{database}"
    for target in (canary_url, dead_url):
        argvs += [
            ["check", target],
            ["check", target, "--json"],
            ["url", target, "--explain"],
            ["query", target, "SELECT 1 AS one; SELECT * FROM no_such_table_z"],
            ["shell", target],  # psql reads an empty stdin and ends
        ]
    script = tmp_path / "statements.sql"
    script.write_text("SELECT :v AS v, ':v' AS lit;\nSELECT 2 AS two;\n")

    def per_database(name: str) -> list[list[str]]:
        return [
            ["url", name, *cfg],
            ["url", name, "--explain", *cfg],
            ["url", name, "--explain", "--json", *cfg],
            ["query", name, "SELECT 1 AS one", *cfg],
            ["query", name, "SELECT * FROM no_such_table_x", "--debug", *cfg],
            ["schema", name, *cfg],
            ["wait", name, "--timeout", "2", *cfg],
            ["query", name, "-f", str(script), "--param", "v=1", "-F", "json", *cfg],
        ]

    # As the installed script: every command for a working PostgreSQL, a wrong login, a
    # dead port and MariaDB; every other placement in-process (the same code, faster).
    installed = [names[0], names[-5], names[-4], names[-3]]
    for name in installed:
        argvs += per_database(name)
    for name in (names[0], names[-3], names[-4]):
        into = tmp_path / f"{name}.duckdb"
        argvs.append(["collect", name, "SELECT 1 AS one", "--into", str(into), "-t", "t", *cfg])
        argvs.append(
            ["collect", name, "SELECT 1 AS one", "--into", str(into), "-t", "j", "--json", *cfg]
        )
    runs = _run_all(argvs, env, tmp_path)
    runner = CliRunner()
    for name in names:
        if name in installed:
            continue
        for args in per_database(name):
            result = runner.invoke(app, args, env=env)
            runs.append(Run(args, result.exit_code, result.stdout, result.stderr))
    as_json = next(r for r in runs if r.args[:2] == ["check", "--json"])
    assert as_json.code == 1, as_json.text  # the wrong logins and the dead port
    report = json.loads(as_json.out)
    assert report[names[0]]["status"] == "healthy", report[names[0]]
    assert any(r.code == 0 and "42" in r.text for r in runs if r.args[0] == "sql")
    by_url = {r.args[1]: r.code for r in runs if r.args[0] == "check" and len(r.args) == 2}
    assert by_url == {canary_url: 0, dead_url: 1}
    shells = {r.args[1]: r.code for r in runs if r.args[0] == "shell"}
    assert shells[canary_url] == 0, [r.text for r in runs if r.args[0] == "shell"]
    works = [
        r
        for r in runs
        if r.args[0] in ("query", "url") and r.args[1] in names[: len(PG_PLACEMENTS)]
    ]
    assert all(r.code == 0 for r in works if "no_such_table_x" not in " ".join(r.args)), [
        (r.args, r.text[-300:]) for r in works if r.code != 0 and "no_such" not in " ".join(r.args)
    ]
    failures = [r for r in runs if r.args[0] == "query" and "no_such_table_x" in r.args[2]]
    assert all(r.code == 1 and "Traceback" in r.text for r in failures)  # --debug: the chain
    for run in runs:
        assert_clean(f"dbwire {' '.join(run.args)}", run.text)
