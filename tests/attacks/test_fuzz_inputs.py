"""Hypothesis fuzzing: URLs, config dicts and TOML only ever raise DbwireError.

What each example does: build the config, `dbwire.connect(...)`, the engine URL and
engine options for both sides, the sync engine (created, never connected), and for a
share of server URLs a real connect to a closed loopback port with a 1 s timeout.
Nothing else may escape. (`pydantic.ValidationError` from constructing
`DatabaseConfig(...)` directly is pydantic's own contract, a ValueError; dbwire's entry
points (connect, load_config, Manager) never let it out, and these tests use only them.)

A password (a canary) is put in every URL's userinfo: no message may contain it.
Example counts keep the file well under a minute.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import dbwire
from dbwire import DbwireError, load_config
from dbwire.config import DatabaseConfig
from servers import free_port


def _examples(count: int) -> int:
    """Example counts sized for CI; DBWIRE_FUZZ_SCALE=20 runs a deeper hunt by hand."""
    return max(1, int(count * float(os.environ.get("DBWIRE_FUZZ_SCALE", "1"))))


CANARY = f"fz{uuid.uuid4().hex[:12]}"
CLOSED_PORT = free_port()
SCHEMES = [
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+asyncpg",
    "mysql",
    "mysql+pymysql",
    "mariadb",
    "sqlite",
    "duckdb",
    "s3",
]
GARBAGE_SCHEMES = ["", "oracle", "pg", "sqlite+bogus", "POSTGRESQL", "mysql+", "ht tp", "1x"]
QUERY_KEYS = [
    # libpq and cross-driver keys, MySQL spellings, embedded and S3 options, and garbage
    "sslmode",
    "ssl-mode",
    "ssl_ca",
    "ssl-ca",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "read_timeout",
    "charset",
    "application_name",
    "options",
    "service",
    "passfile",
    "port",
    "host",
    "target_session_attrs",
    "keepalives",
    "unix_socket",
    "local_infile",
    "timeout",
    "mode",
    "uri",
    "threads",
    "memory_limit",
    "endpoint",
    "use_ssl",
    "url_style",
    "provider",
    "command_timeout",
    "password",
    "bogus",
    "",
    "Ü",
]
ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\ud800", "\udcff", "\x00", "%"]),
    max_size=12,
)
HOSTS = st.one_of(
    st.sampled_from(
        [
            "127.0.0.1",
            "localhost",
            "db.example.com",
            "a" * 64 + ".com",
            "a..b",
            ".",
            "ünïcode.de",
            "[::1]",
            "h1,h2",
            "x" * 260,
            "",
        ]
    ),
    ODD_TEXT,
)
PORTS = st.one_of(
    st.none(),
    st.sampled_from(["5432", "0", "65536", "x", "-1", "", "99999999999", " 1"]),
    st.integers(min_value=0, max_value=70000).map(str),
)
QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["require", "disable", "verify-full", "abc", "-1", "0", "10", "1e400", "utf8mb4", "nope"]
    ),
    st.sampled_from(["true", "", "-c statement_timeout=5", "/nonexistent/ca.pem", "path"]),
    ODD_TEXT,
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    # Mostly well-formed parts, so most examples get past parsing to the drivers' rules.
    scheme = draw(st.sampled_from(SCHEMES) | st.sampled_from(GARBAGE_SCHEMES))
    if scheme in ("sqlite", "duckdb") and draw(st.booleans()):
        path = draw(st.sampled_from(["", "/:memory:", "/f.db", "/sub/f.duckdb"]))
        pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=2))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
        return f"{scheme}://{path}" + (f"?{query}" if query else "")
    if draw(st.integers(0, 2)) > 0:
        host = draw(st.sampled_from(["127.0.0.1", "localhost", "db.example.com", "bucket"]))
        pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=3))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
        return f"{scheme}://app:{CANARY}@{host}:{CLOSED_PORT}/d" + (f"?{query}" if query else "")
    user = draw(st.sampled_from(["", "app", "u%40x"]) | ODD_TEXT)
    userinfo = ""
    if draw(st.booleans()):
        userinfo = f"{quote(user, safe='') if draw(st.booleans()) else user}:{CANARY}@"
    host = draw(HOSTS)
    port = draw(PORTS)
    path = draw(st.sampled_from(["/d", "", "/", "/:memory:", "/sub/f.db", "/a b"]) | ODD_TEXT)
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | ODD_TEXT, QUERY_VALUES), max_size=3)
    )
    query = "&".join(f"{k}={quote(v, safe='') if draw(st.booleans()) else v}" for k, v in pairs)
    netloc = userinfo + host + (f":{port}" if port is not None else "")
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _visible(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


@contextmanager
def _in_temp_dir() -> Iterator[Path]:
    """Embedded databases create their file's folder: keep that inside a temp dir."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="dbwire-fuzz-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def _exercise(db: dbwire.Database) -> None:
    """Everything short of a connection: engine URLs and options both sides, the engine."""
    backend = db.backend
    repr(db)
    path = backend.base_url().database or ""
    embedded = not backend.is_server
    if embedded and (os.path.isabs(path) or ".." in path or path.startswith("~")):
        return  # would create folders outside the temp dir: URL building is all we check
    for is_async in (False, True):
        if backend.async_driver is None and is_async:
            continue
        backend.engine_url(is_async=is_async)
        backend.engine_options(is_async=is_async)
    if backend.has_engine:
        db.engine  # noqa: B018  (creating the engine is the point; it does not connect)
        if backend.async_driver is not None:
            db.async_engine  # noqa: B018  (the same, on the async driver)


def _check(action: Any) -> None:
    try:
        action()
    except DbwireError as exc:
        event(f"refused: {type(exc).__name__}")
        assert CANARY not in _visible(exc), str(exc)
    else:
        event("accepted")


@settings(max_examples=_examples(400), deadline=None)
@given(urls())
def test_fuzzed_urls_raise_only_dbwire_errors(url: str) -> None:
    with _in_temp_dir():

        def run() -> None:
            db = dbwire.connect(url, name="fuzz", connect_timeout=1)
            try:
                _exercise(db)
            finally:
                db.close()

        _check(run)


@st.composite
def server_urls_to_a_closed_port(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["postgresql", "mysql", "mariadb"]))
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=2))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
    return f"{scheme}://app:{CANARY}@127.0.0.1:{CLOSED_PORT}/d" + (f"?{query}" if query else "")


@settings(max_examples=_examples(40), deadline=None)
@given(server_urls_to_a_closed_port())
def test_fuzzed_query_keys_connecting_to_a_closed_port_raise_only_dbwire_errors(
    url: str,
) -> None:
    def run() -> None:
        db = dbwire.connect(url, name="fuzz-connect", connect_timeout=1)
        try:
            db.execute_query("SELECT 1")
        finally:
            db.close()

    async def run_async() -> None:
        db = dbwire.connect(url, name="fuzz-connect-async", connect_timeout=1)
        try:
            await db.async_execute_query("SELECT 1")
        finally:
            await db.aclose()

    for attempt in (run, lambda: asyncio.run(run_async())):
        try:
            attempt()
        except DbwireError as exc:
            event(f"refused: {type(exc).__name__}")
            assert CANARY not in _visible(exc), str(exc)
        else:
            raise AssertionError(f"{url}: connected to a closed port")


FIELD_NAMES = sorted({*DatabaseConfig.model_fields, "username"} - {"name"})
WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
    st.sampled_from(["sqlite://", "postgresql://u@h/d", f"mysql://u:{CANARY}@h/d?charset=x"]),
    st.lists(st.integers() | ODD_TEXT, max_size=3),
    st.dictionaries(ODD_TEXT, st.integers() | ODD_TEXT | st.none(), max_size=3),
)
CONFIG_DICTS = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.sampled_from(["bogus", "Url", "pool size"]) | ODD_TEXT,
    WRONG_VALUES,
    max_size=6,
)


@settings(max_examples=_examples(300), deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b"]) | ODD_TEXT | st.integers(), CONFIG_DICTS, max_size=2
    ),
    st.dictionaries(
        st.sampled_from(
            ["DBWIRE_A__POOL_SIZE", "DBWIRE_A__CONNECT_ARGS", "DATABASE_URL", "P_HOST"]
        ),
        st.sampled_from(["1", "x", "{", '{"bogus": 1}', "sqlite://", f"mysql://u:{CANARY}@h/d"]),
        max_size=2,
    ),
)
def test_fuzzed_config_dicts_raise_only_dbwire_errors(
    databases: dict[Any, dict[str, Any]], environ: dict[str, str]
) -> None:
    with _in_temp_dir():

        def run() -> None:
            config = load_config({"databases": databases}, environ=environ)
            for db_config in config.databases.values():
                repr(db_config)
                db = dbwire.connect(db_config)
                try:
                    _exercise(db)
                finally:
                    db.close()

        _check(run)


TOML_LINES = st.sampled_from(
    [
        "[databases.a]",
        "[databases.b]",
        '[databases."x y"]',
        "[dbs.c]",
        "[other]",
        'url = "sqlite://"',
        f'url = "postgresql://u:{CANARY}@h:5432/d?sslmode=nope"',
        f'url = "mysql://u:{CANARY}@h/d?options=x"',
        'url = "duckdb://u@h/x"',
        'url = "${MISSING}"',
        'url = "${HOME:-x}"',
        'url = "\\ud800"',
        "pool_size = 5",
        'pool_size = "five"',
        "pool_size = 1e400",
        "readonly = 3",
        "env_prefix = 3",
        "env_prefix = []",
        'options = { sslmode = "require" }',
        "options = { timeout = 3 }",
        "connect_args = { bogus = 1 }",
        f'password = "{CANARY}"',
        "port = 70000",
        "unknown_key = 1",
        "= = =",
        '"',
        "[[databases]]",
        "databases = 1",
    ]
)


# Field lines that are each valid TOML, for documents that parse and reach validation.
TOML_FIELD_LINES = st.sampled_from(
    [
        'url = "sqlite://"',
        'url = "duckdb://"',
        f'url = "postgresql://u:{CANARY}@127.0.0.1:{CLOSED_PORT}/d"',
        f'url = "mysql://u:{CANARY}@127.0.0.1:{CLOSED_PORT}/d?charset=utf8mb4"',
        f'url = "mariadb://u@127.0.0.1:{CLOSED_PORT}/d?sslmode=verify-ca"',
        'url = "s3://bucket/p?region=x"',
        'backend = "mysql"',
        'backend = "nope"',
        'host = "db..x"',
        "port = 0",
        "pool_size = 3",
        "readonly = true",
        'env_prefix = "FZ"',
        "env_prefix = 3",
        'options = { sslmode = "require" }',
        'options = { charset = "nope" }',
        'options = { bogus = "1" }',
        "connect_args = { connect_timeout = 3 }",
        "connect_args = { bogus = 1 }",
        'password = "x"',
        'password_command = ["false"]',
        "connect_timeout = 0.5",
        "connect_timeout = -1",
        'health_query = "SELECT 1"',
        'query_log_level = "loud"',
    ]
)


@settings(
    max_examples=_examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        st.lists(TOML_LINES, max_size=8).map("\n".join),
        st.lists(st.lists(TOML_FIELD_LINES, max_size=4), min_size=1, max_size=3).map(
            lambda tables: "\n".join(
                f"[databases.d{i}]\n" + "\n".join(dict.fromkeys(lines))
                for i, lines in enumerate(tables)
            )
        ),
        st.text(max_size=120),
        st.lists(TOML_LINES | ODD_TEXT, max_size=6).map("\n".join),
    )
)
def test_fuzzed_toml_raises_only_dbwire_errors(tmp_path: Path, document: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(document, encoding="utf-8", errors="surrogateescape")
    with _in_temp_dir():

        def run() -> None:
            config = load_config(path, environ={})
            for db_config in config.databases.values():
                db = dbwire.connect(db_config)
                try:
                    _exercise(db)
                finally:
                    db.close()

        _check(run)
