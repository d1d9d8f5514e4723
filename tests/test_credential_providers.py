"""Password providers: asked per new physical connection, cached for their TTL, asked again
after a rejected login; AWS against a local moto server, PostgreSQL for real."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from sqlalchemy import event, text

from dbwire import ConfigError, ConnectError, CredentialsError, Database, DatabaseConfig
from dbwire.config import validate_database
from dbwire.credentials.providers import known_providers
from servers import MotoServer
from servers.moto import FAKE_CREDENTIALS
from servers.silent import SilentServer

CANARY = f"Prov-canary-{uuid.uuid4().hex[:10]}"


def _cfg(name: str = "x", **fields: Any) -> DatabaseConfig:
    """Validated as a config file's table is (pydantic's own error never escapes)."""
    return validate_database(fields, name=name, origin="test")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("PG", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass, no ~/.aws
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def role(pg_server: Any, pg_url: str) -> Iterator[str]:
    """A login role of its own, so changing its password disturbs no other test."""
    name = f"prov_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}-1'")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {pg_server.database} TO {name}")
    yield name
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
    )
    pg_server.run_sql_admin(f"REVOKE CONNECT ON DATABASE {pg_server.database} FROM {name}")
    pg_server.run_sql_admin(f"DROP ROLE IF EXISTS {name}")


def _secret(moto: MotoServer, value: str) -> str:
    name = f"app/db/{uuid.uuid4().hex[:8]}"
    moto.client("secretsmanager").create_secret(Name=name, SecretString=value)
    return name


def _sm(moto: MotoServer, secret_id: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "aws_secrets_manager",
        "secret_id": secret_id,
        "region": moto.region,
        "endpoint_url": moto.endpoint_url,
        **more,
    }


def _pg(server: Any, user: str, provider: dict[str, Any], **fields: Any) -> Database:
    url = f"postgresql://{user}@{server.host}:{server.port}/{server.database}"
    return Database(DatabaseConfig(name="provided", url=url, password_provider=provider, **fields))


def _whoami(db: Database) -> str:
    with db.connect() as conn:
        return str(conn.execute(text("SELECT current_user")).scalar_one())


def _clean(exc: BaseException) -> None:
    """No canary in the message, and no chained library error that might carry one."""
    assert CANARY not in str(exc) and CANARY not in repr(exc)
    assert exc.__cause__ is None and exc.__context__ is None, repr(exc.__context__)


# ------------------------------------------------------------------ config and the registry


def test_misspelled_type_says_did_you_mean_and_lists_every_provider() -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(url="postgresql://a@h/d", password_provider={"type": "aws_secret_manager"})
    message = str(info.value)
    assert "did you mean 'aws_secrets_manager'" in message
    for name in ("env", "file", "command", "keyring", "aws_secrets_manager", "rds_iam"):
        assert name in message
    assert "testvault" in message  # the entry point of tests/plugin_dist
    assert "'x'" in message and "password_provider" in message


def test_provider_options_are_checked_and_never_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(
            url="postgresql://a@h/d",
            password_provider={"type": "aws_secrets_manager", "secret_idd": CANARY},
        )
    message = str(info.value)
    assert "unknown key 'secret_idd' (did you mean 'secret_id'?)" in message
    assert "needs 'secret_id'" in message
    assert CANARY not in message
    with pytest.raises(ConfigError, match="'ttl'"):
        _cfg(url="postgresql://a@h/d", password_provider={"type": "rds_iam", "ttl": 900})
    with pytest.raises(ConfigError, match="needs a `type`"):
        _cfg(url="postgresql://a@h/d", password_provider={"path": "/x"})


def test_provider_table_is_masked_in_dumps_and_refused_beside_another_source() -> None:
    spec = {"type": "command", "command": ["vault", f"--token={CANARY}"], "ttl": 5}
    cfg = DatabaseConfig(name="x", url="postgresql://a@h/d", password_provider=spec)
    dumped = cfg.model_dump_json()
    assert CANARY not in dumped and CANARY not in repr(cfg) and "vault" in dumped
    assert cfg.model_dump()["password_provider"]["command"] == ["vault", "***"]
    with pytest.raises(ConfigError, match="keep only one password source") as info:
        Database(cfg.with_overrides(password_file="/run/secrets/db"))
    assert "password_file" in str(info.value)


def test_environment_variable_holds_the_provider_table(tmp_path: Path) -> None:
    from dbwire.config import load_config

    path = tmp_path / "dbwire.toml"
    path.write_text('[databases.main]\nurl = "postgresql://a@h/d"\n')
    environ = {"DBWIRE_MAIN__PASSWORD_PROVIDER": '{"type": "env", "variable": "APP_PW"}'}
    cfg = load_config(path, environ).database("main")
    assert cfg.password_provider == {"type": "env", "variable": "APP_PW"}
    with pytest.raises(ConfigError, match="rds_iam"):
        load_config(path, {"DBWIRE_MAIN__PASSWORD_PROVIDER": '{"type": "rds_iamm"}'})


def test_entry_point_provider_is_found_by_name(tmp_path: Path) -> None:
    assert "testvault" in known_providers()
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps({"primary": CANARY}))
    db = Database(
        DatabaseConfig(
            name="v",
            url="postgresql://app@127.0.0.1:5/app",
            password_provider={"type": "testvault", "path": str(vault), "key": "primary"},
        )
    )
    try:
        params = db.connect_params()
        assert params.password_value() == CANARY
        assert params.sources["password"] == "password_provider testvault"
        assert CANARY not in repr(params)
    finally:
        db.close()


def test_env_provider_reads_the_databases_own_environment() -> None:
    cfg = DatabaseConfig(
        name="e",
        url="postgresql://app@127.0.0.1:5/app",
        password_provider={"type": "env", "variable": "APP_DB_PASSWORD"},
    )
    db = Database(cfg.with_environ({"APP_DB_PASSWORD": CANARY}))
    missing = Database(cfg.with_environ({}).with_overrides(name="m"))
    try:
        assert db.current_password() == CANARY
        with pytest.raises(CredentialsError) as info:
            missing.current_password()
        assert "APP_DB_PASSWORD is not set" in str(info.value)
        assert "'env'" in str(info.value) and "export APP_DB_PASSWORD" in str(info.value)
    finally:
        db.close()
        missing.close()


# ------------------------------------------------------------------ AWS Secrets Manager


def test_rotated_secret_reaches_the_next_new_connection_after_the_ttl(
    pg_server: Any, role: str, moto_server: MotoServer
) -> None:
    client = moto_server.client("secretsmanager")
    secret_id = _secret(moto_server, json.dumps({"username": role, "password": f"{CANARY}-1"}))
    ttl = 2.0
    db = _pg(pg_server, "someone_else", _sm(moto_server, secret_id, ttl=ttl))
    try:
        assert _whoami(db) == role  # the secret's username wins (alternating-users rotation)
        source = db.backend.credential_source()
        assert source is not None
        started = time.monotonic()
        with db.engine.connect() as a, db.engine.connect() as b:  # new physical connections
            assert a.execute(text("SELECT 1")).scalar_one() == b.execute(text("SELECT 1")).scalar()
        assert source.fetches == 1, "inside the TTL the cached secret serves every connection"
        assert time.monotonic() - started < ttl, "the machine was too slow to see the cache"
        client.put_secret_value(
            SecretId=secret_id,
            SecretString=json.dumps({"username": role, "password": f"{CANARY}-2"}),
        )
        pg_server.run_sql_admin(f"ALTER ROLE {role} PASSWORD '{CANARY}-2'")
        db.engine.dispose()
        time.sleep(max(0.0, ttl - (time.monotonic() - started)) + 0.2)
        assert _whoami(db) == role  # a new connection after the TTL: the rotated secret
        assert source.fetches == 2
        assert (
            db.connect_params().sources["user"]
            == "password_provider aws_secrets_manager (username)"
        )
    finally:
        db.close()


def test_rejected_password_is_asked_for_again_before_its_ttl(
    pg_server: Any, role: str, moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = moto_server.client("secretsmanager")
    secret_id = _secret(moto_server, f"{CANARY}-wrong")  # a plain string secret
    db = _pg(pg_server, role, _sm(moto_server, secret_id, ttl=300))
    try:
        with pytest.raises(ConnectError) as info:
            _whoami(db)
        assert "password_provider 'aws_secrets_manager'" in str(info.value)
        assert "was rejected" in str(info.value) and CANARY not in str(info.value)
        client.put_secret_value(SecretId=secret_id, SecretString=f"{CANARY}-1")
        assert _whoami(db) == role  # long before the 300 s TTL: the provider was asked again
        source = db.backend.credential_source()
        assert source is not None and source.fetches == 2
    finally:
        db.close()
    assert CANARY not in caplog.text


def test_rejected_password_is_asked_for_again_on_asyncpg(
    pg_server: Any, role: str, moto_server: MotoServer
) -> None:
    client = moto_server.client("secretsmanager")
    secret_id = _secret(moto_server, f"{CANARY}-wrong")
    db = _pg(pg_server, role, _sm(moto_server, secret_id, ttl=300))

    async def whoami() -> str:
        async with db.async_connect() as conn:
            return str((await conn.execute(text("SELECT current_user"))).scalar_one())

    async def run() -> str:
        with pytest.raises(ConnectError):
            await whoami()
        client.put_secret_value(SecretId=secret_id, SecretString=f"{CANARY}-1")
        try:
            return await whoami()
        finally:
            await db.aclose()

    assert asyncio.run(run()) == role


def test_rejected_password_command_is_run_again_before_its_ttl(
    pg_server: Any, role: str, tmp_path: Path
) -> None:
    import sys

    token = tmp_path / "token"
    token.write_text(f"{CANARY}-wrong")
    url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    command = [sys.executable, "-c", f"print(open({str(token)!r}).read())"]
    db = Database(
        DatabaseConfig(name="cmd", url=url, password_command=command, password_command_ttl=300)
    )
    try:
        with pytest.raises(ConnectError):
            _whoami(db)
        token.write_text(f"{CANARY}-1")
        assert _whoami(db) == role
    finally:
        db.close()


def test_an_async_login_runs_a_slow_password_command_beside_the_event_loop(
    pg_server: Any, role: str, tmp_path: Path
) -> None:
    """A provider's call (here a command taking 0.6 s) at an async engine's new connection
    runs in a worker thread: the loop's other tasks keep running meanwhile."""
    import sys

    token = tmp_path / "token"
    token.write_text(f"{CANARY}-1")
    url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    slow = f"import time; time.sleep(0.6); print(open({str(token)!r}).read())"
    db = Database(
        DatabaseConfig(
            name="slow_cmd",
            url=url,
            password_command=[sys.executable, "-c", slow],
            password_command_ttl=300,
        )
    )

    async def run() -> tuple[str, float]:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)  # the ticker is running before the connect begins
        try:
            async with db.async_connect() as conn:
                who = str((await conn.execute(text("SELECT current_user"))).scalar_one())
        finally:
            stop.set()
            await ticker
            await db.aclose()
        return who, max(gaps)

    who, longest_stall = asyncio.run(run())
    assert who == role
    assert longest_stall < 0.3, f"the event loop stood still for {longest_stall:.2f} s"


def test_a_failing_password_command_is_the_same_error_from_an_async_login(
    pg_server: Any, role: str
) -> None:
    """The worker thread that runs the command hands its error back unchanged."""
    import sys

    url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    db = Database(DatabaseConfig(name="failing_cmd", url=url, password_command=failing))

    async def login() -> None:
        try:
            async with db.async_connect():
                pass
        finally:
            await db.aclose()

    with pytest.raises(CredentialsError) as sync_error:
        _whoami(db)
    with pytest.raises(CredentialsError) as async_error:
        asyncio.run(login())
    assert str(async_error.value) == str(sync_error.value)
    assert "'failing_cmd'" in str(async_error.value) and "status 3" in str(async_error.value)


def test_version_stage_picks_the_version(moto_server: MotoServer) -> None:
    client = moto_server.client("secretsmanager")
    secret_id = _secret(moto_server, f"{CANARY}-current")
    client.put_secret_value(
        SecretId=secret_id, SecretString=f"{CANARY}-pending", VersionStages=["AWSPENDING"]
    )
    url = "postgresql://app@127.0.0.1:5/app"
    current = Database(
        DatabaseConfig(name="c", url=url, password_provider=_sm(moto_server, secret_id))
    )
    pending = Database(
        DatabaseConfig(
            name="p",
            url=url,
            password_provider=_sm(moto_server, secret_id, version_stage="AWSPENDING"),
        )
    )
    try:
        assert current.current_password() == f"{CANARY}-current"
        assert pending.current_password() == f"{CANARY}-pending"
    finally:
        current.close()
        pending.close()


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "ResourceNotFoundException"),
        (json.dumps({"username": "app", "pass": CANARY}), "no non-empty string under 'password'"),
        ("{" + CANARY, "not a JSON object"),
    ],
)
def test_secret_errors_name_the_database_provider_and_fix(
    moto_server: MotoServer, secret: str | None, expected: str
) -> None:
    secret_id = _secret(moto_server, secret) if secret is not None else "no/such/secret"
    db = Database(
        DatabaseConfig(
            name="broken",
            url="postgresql://app@127.0.0.1:5/app",
            password_provider=_sm(moto_server, secret_id),
        )
    )
    try:
        with pytest.raises(CredentialsError) as info:
            db.current_password()
    finally:
        db.close()
    message = str(info.value)
    assert expected in message
    assert "database 'broken'" in message and "aws_secrets_manager" in message
    assert secret_id in message and "Fix:" in message
    _clean(info.value)


def test_aws_that_stops_or_never_answers_is_a_clear_error_in_bounded_time() -> None:
    stopped = MotoServer().start()
    stopped.stop()
    with SilentServer() as silent:
        for endpoint in (stopped.endpoint_url, f"http://{silent.host}:{silent.port}"):
            spec = {
                "type": "aws_secrets_manager",
                "secret_id": "app/db",
                "region": "eu-west-1",
                "endpoint_url": endpoint,
                "timeout": 0.5,
            }
            db = Database(
                DatabaseConfig(
                    name="gone", url="postgresql://a@127.0.0.1:5/a", password_provider=spec
                )
            )
            started = time.monotonic()
            try:
                with pytest.raises(CredentialsError) as info:
                    db.current_password()
            finally:
                db.close()
            assert time.monotonic() - started < 10, "retries must stay bounded"
            assert "did not answer" in str(info.value) and "database 'gone'" in str(info.value)
            _clean(info.value)


def test_missing_aws_credentials_say_how_to_give_them(
    monkeypatch: pytest.MonkeyPatch, moto_server: MotoServer
) -> None:
    for key in FAKE_CREDENTIALS:
        monkeypatch.delenv(key)
    db = Database(
        DatabaseConfig(
            name="nocreds",
            url="postgresql://a@127.0.0.1:5/a",
            password_provider=_sm(moto_server, "app/db"),
        )
    )
    try:
        with pytest.raises(CredentialsError, match="no AWS credentials") as info:
            db.current_password()
    finally:
        db.close()
    _clean(info.value)


# ------------------------------------------------------------------ RDS IAM tokens


def _verify_sigv4_token(token: str, host: str, port: int, user: str, region: str) -> None:
    """Recompute the presigned URL's SigV4 signature by the spec (not with botocore)."""
    authority, _, query = token.partition("/?")
    assert authority == f"{host}:{port}"
    params = dict(parse_qsl(query, keep_blank_values=True))
    assert params["Action"] == "connect" and params["DBUser"] == user
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "900"
    assert params["X-Amz-SignedHeaders"] == "host"
    key_id, day, signed_region, service, terminator = params["X-Amz-Credential"].split("/")
    assert (key_id, signed_region, service, terminator) == (
        FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        region,
        "rds-db",
        "aws4_request",
    )
    stamp = params["X-Amz-Date"]
    signed = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - signed).total_seconds()) < 120
    assert day == stamp[:8]
    signature = params.pop("X-Amz-Signature")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )
    # RDS signs the hash of an empty payload (not UNSIGNED-PAYLOAD as S3 presigning does).
    empty = hashlib.sha256(b"").hexdigest()
    canonical = "\n".join(["GET", "/", canonical_query, f"host:{host}:{port}", "", "host", empty])
    scope = f"{day}/{region}/rds-db/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, region, "rds-db", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == signature


def test_rds_iam_token_is_made_for_each_physical_connection(pg_server: Any, role: str) -> None:
    region = "eu-central-1"
    db = _pg(pg_server, role, {"type": "rds_iam", "region": region})
    seen: list[str] = []

    @event.listens_for(db.engine, "do_connect")
    def _observe(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        # Registered after dbwire's own hook: the token is the password the driver gets.
        token = cparams["password"]
        seen.append(token)
        # PostgreSQL is no RDS: make the role accept this token, so the login is real.
        pg_server.run_sql_admin(f"ALTER ROLE {role} PASSWORD '{token}'")

    held = []
    try:
        for _ in range(3):
            conn = db.engine.connect()  # held open: each one is a new physical connection
            assert conn.execute(text("SELECT current_user")).scalar_one() == role
            held.append(conn)
            time.sleep(1.05)  # SigV4 signs whole seconds: one second apart, three tokens
        assert len(seen) == 3 and len(set(seen)) == 3
        for token in seen:
            _verify_sigv4_token(token, pg_server.host, pg_server.port, role, region)
            assert token not in repr(db.connect_params())
    finally:
        for conn in held:
            conn.close()
        db.close()


def test_rds_iam_needs_a_user_and_a_tcp_host() -> None:
    db = Database(
        DatabaseConfig(
            name="iam",
            url="postgresql://app@%2Ftmp/app",
            password_provider={"type": "rds_iam", "region": "eu-west-1"},
        )
    )
    try:
        with pytest.raises(CredentialsError, match="Unix socket"):
            db.current_password()
    finally:
        db.close()


# ------------------------------------------------------------------ keyring (a real file backend)


def test_keyring_file_backend_serves_the_password(
    pg_server: Any, role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyrings.alt.file import PlaintextKeyring

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the file lives here
    PlaintextKeyring().set_password("dbwire/provided", role, f"{CANARY}-1")
    spec = {
        "type": "keyring",
        "service": "dbwire/provided",
        "backend": "keyrings.alt.file.PlaintextKeyring",
    }
    db = _pg(pg_server, role, spec)
    try:
        assert _whoami(db) == role
        assert db.connect_params().sources["password"] == "password_provider keyring"
        other = Database(
            db.config.with_overrides(name="other", password_provider={**spec, "username": "nobody"})
        )
        try:
            with pytest.raises(CredentialsError) as info:
                other.current_password()
            assert "no password for service 'dbwire/provided' and user 'nobody'" in str(info.value)
            assert "keyring set dbwire/provided nobody" in str(info.value)
        finally:
            other.close()
    finally:
        db.close()


def test_keyring_backend_that_does_not_load_is_named() -> None:
    db = Database(
        DatabaseConfig(
            name="kr",
            url="postgresql://app@127.0.0.1:5/app",
            password_provider={"type": "keyring", "service": "s", "backend": "no_such.mod.Ring"},
        )
    )
    try:
        with pytest.raises(CredentialsError, match=r"no_such\.mod\.Ring' could not") as info:
            db.current_password()
    finally:
        db.close()
    _clean(info.value)


# ------------------------------------------------------------------ attacks on the interface


@pytest.mark.parametrize(
    "spec",
    [
        {"type": 42},
        {"type": ""},
        {"type": "x" * 5000},
        {"type": "env\0"},
        {"type": "env", "variable": ""},
        {"type": "env", "variable": "A=B"},
        {"type": "env", "variable": {"nested": CANARY}},
        {"type": "aws_secrets_manager", "secret_id": "s", "endpoint_url": "file:///etc/passwd"},
        {"type": "rds_iam", "ttl": -1},
        {"type": "keyring", "service": "s", "backend": f"os.system('{CANARY}')"},
        [CANARY],
        CANARY,
    ],
)
def test_hostile_provider_tables_are_config_errors_without_the_input(spec: Any) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(url="postgresql://a@h/d", password_provider=spec)
    message = str(info.value)
    assert "password_provider" in message and "'x'" in message
    assert CANARY not in message and len(message) < 1500
    _clean(info.value)


def test_one_fetch_serves_many_threads_connecting_at_once(
    pg_server: Any, role: str, moto_server: MotoServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    secret_id = _secret(moto_server, f"{CANARY}-1")
    db = _pg(pg_server, role, _sm(moto_server, secret_id, ttl=300), pool_size=8)
    try:
        with ThreadPoolExecutor(8) as pool:
            users = list(pool.map(lambda _: _whoami(db), range(8)))
        assert users == [role] * 8
        source = db.backend.credential_source()
        assert source is not None and source.fetches == 1
    finally:
        db.close()


def test_a_plugin_that_raises_or_answers_nothing_is_a_clean_credentials_error() -> None:
    from dbwire.credentials.providers import (
        Credential,
        LoginTarget,
        PasswordProvider,
        register_provider,
    )

    class Leaky(RuntimeError):
        pass

    @register_provider
    class Raising(PasswordProvider):
        name = "test_raising"

        def fetch(self, target: LoginTarget) -> Credential:
            raise Leaky(f"request failed: password={CANARY}")

    @register_provider
    class Empty(PasswordProvider):
        name = "test_empty"

        def fetch(self, target: LoginTarget) -> Credential:
            from pydantic import SecretStr

            return Credential(SecretStr(""))

    for kind, expected in (("test_raising", "failed with Leaky"), ("test_empty", "no password")):
        db = Database(
            _cfg(name="plug", url="postgresql://a@127.0.0.1:5/a", password_provider={"type": kind})
        )
        try:
            with pytest.raises(CredentialsError) as info:
                db.current_password()
        finally:
            db.close()
        assert expected in str(info.value) and "database 'plug'" in str(info.value)
        _clean(info.value)


def test_mariadb_takes_the_secrets_user_and_asks_again_after_a_rejection(
    mysql_server: Any, mysql_url: str, moto_server: MotoServer
) -> None:
    user = f"prov_{uuid.uuid4().hex[:8]}"
    mysql_server.run_sql_admin(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{CANARY}-1'")
    client = moto_server.client("secretsmanager")
    secret_id = _secret(moto_server, json.dumps({"username": user, "password": f"{CANARY}-x"}))
    url = f"mysql://nobody@{mysql_server.host}:{mysql_server.port}/"
    db = Database(
        _cfg(name="maria", url=url, password_provider=_sm(moto_server, secret_id, ttl=300))
    )

    def whoami() -> str:
        with db.connect() as conn:
            return str(conn.execute(text("SELECT CURRENT_USER()")).scalar_one())

    try:
        with pytest.raises(ConnectError) as info:
            whoami()
        assert CANARY not in str(info.value)
        client.put_secret_value(
            SecretId=secret_id,
            SecretString=json.dumps({"username": user, "password": f"{CANARY}-1"}),
        )
        assert whoami().startswith(f"{user}@")  # within the TTL: asked again, and its user used
    finally:
        db.close()
        mysql_server.run_sql_admin(f"DROP USER IF EXISTS '{user}'@'%'")


def test_access_denied_and_unknown_keys_name_the_iam_fix(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.settings

    iam = moto_server.client("iam")
    user = f"reader-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)  # no policy: may do nothing
    key = iam.create_access_key(UserName=user)["AccessKey"]
    secret_id = _secret(moto_server, f"{CANARY}-1")
    # moto's own switch: from now on every request is authenticated and authorized by IAM.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    # moto answers both with a bare 403 (real AWS names AccessDeniedException or
    # UnrecognizedClientException, whose fixes are their own).
    cases = [
        (key["AccessKeyId"], key["SecretAccessKey"], "HTTP 403", "secretsmanager:GetSecretValue"),
        ("AKIAUNKNOWNUNKNOWN00", "not-a-real-secret-key", "HTTP 403", "credentials are valid"),
    ]
    for key_id, secret_key, code, fix in cases:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
        db = Database(
            _cfg(
                name="denied",
                url="postgresql://a@127.0.0.1:5/a",
                password_provider=_sm(moto_server, secret_id),
            )
        )
        try:
            with pytest.raises(CredentialsError) as info:
                db.current_password()
        finally:
            db.close()
        message = str(info.value)
        assert code in message and fix in message, message
        assert secret_key not in message
        _clean(info.value)


def test_a_config_built_in_code_never_quotes_a_bad_provider_table() -> None:
    from pydantic import ValidationError

    spec = {"type": "command", "command": ["vault", f"--token={CANARY}"], "ttl": -1}
    with pytest.raises(ValidationError) as info:
        DatabaseConfig(name="code", url="postgresql://a@h/d", password_provider=spec)
    assert "'ttl'" in str(info.value) and CANARY not in str(info.value)
