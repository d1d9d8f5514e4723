"""The S3 backend: a bucket (and prefix) of parquet, CSV and JSON files, used through DuckDB."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dbwire.backends._query import QueryKey, as_bool, one_of
from dbwire.backends.base import Backend
from dbwire.errors import ConfigError, ConnectError, DbwireError, scrub

if TYPE_CHECKING:
    from dbwire.store.local import LocalStore
    from dbwire.types import DuckDBAttach, TableSchema

_DATA_SUFFIXES = (
    ".parquet",
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".ndjson",
    ".csv.gz",
    ".tsv.gz",
    ".json.gz",
    ".jsonl.gz",
    ".ndjson.gz",
)
_OPTIONS = (
    "region",
    "endpoint",
    "url_style",
    "use_ssl",
    "provider",
    "chain",
    "profile",
    "session_token",  # a secret (dbwire.errors.SECRET_KEYS): masked wherever shown
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class S3Backend(Backend):
    """`s3://bucket/prefix`: files in object storage, queried and written by DuckDB.

    S3 has no SQL server, so there is no SQLAlchemy engine: `Database.engine` raises a
    DbwireError. Instead the backend answers `execute_query()` itself, running DuckDB SQL
    (parameters as `$name`) in a private in-memory DuckDB that holds the bucket's secret,
    so `SELECT * FROM 's3://bucket/prefix/orders.parquet'` just works; `get_schema()`
    lists the data files under the prefix with their columns. Attached to a LocalStore
    it becomes a DuckDB secret scoped to the bucket, and `s3://` paths in that store
    read and write directly (parquet, CSV, JSON).

    Credentials: the user (`user` or the URL's user) is the access key id and the password
    the secret access key, so every dbwire password source (config, *_FILE, command) works
    for them. Without them, the AWS credential chain is used (environment, config files,
    instance role), through DuckDB's aws extension (`pip install 'dbwire[s3]'`).
    Options, in `options` or the URL query: region, endpoint (`host:port`, for S3-
    compatible servers), url_style (`path` or `vhost`), use_ssl (`true`/`false`),
    provider (`config` or `credential_chain`), chain (e.g. `env;config`), profile,
    session_token (temporary credentials; a secret like the password).
    """

    name: ClassVar[str] = "s3"
    dialect_name: ClassVar[str] = "s3"
    schemes: ClassVar[tuple[str, ...]] = ("s3",)
    extra: ClassVar[str] = "s3"
    sync_driver: ClassVar[str] = "duckdb"
    sync_modules: ClassVar[tuple[str, ...]] = ("duckdb",)
    is_server: ClassVar[bool] = False
    has_engine: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._store: LocalStore | None = None
        self._lock = threading.RLock()

    def query_keys(self) -> Mapping[str, QueryKey]:
        keys = dict.fromkeys(_OPTIONS, QueryKey())
        keys["use_ssl"] = QueryKey(as_bool)
        keys["url_style"] = QueryKey(one_of("path", "vhost"))
        keys["provider"] = QueryKey(one_of("config", "credential_chain"))
        return keys

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str]:
        return frozenset()  # no driver connect(): connect_args would be silently ignored

    def unreachable(self, exc: BaseException) -> ConnectError:
        """A DuckDB IO/HTTP error talking to the bucket, as a ConnectError naming the endpoint."""
        endpoint = self._options().get("endpoint") or "AWS S3"
        secrets = [self.config.password.get_secret_value() if self.config.password else None]
        secrets.append(self.password_from_url())
        detail = scrub(" ".join(str(exc).split()), secrets)[:300]
        return ConnectError(
            f"database {self.config.name!r}: S3 bucket {self.base_path!r} at endpoint "
            f"{endpoint!r} could not be reached or refused the request ({detail}). Fix: check "
            "the endpoint, region and use_ssl options, the credentials, and that the "
            "server is up",
            database=self.config.name,
        )

    # -- where -----------------------------------------------------------------
    @property
    def bucket(self) -> str:
        """The bucket name (the URL's host part)."""
        bucket = self.base_url().host
        if not bucket:
            raise ConfigError(
                f"database {self.config.name!r}: an s3 URL needs a bucket: 's3://bucket/prefix'",
                database=self.config.name,
            )
        return bucket

    @property
    def prefix(self) -> str:
        """The key prefix under the bucket, without slashes at either end ('' for none)."""
        return (self.base_url().database or "").strip("/")

    @property
    def base_path(self) -> str:
        """`s3://bucket/prefix` (no trailing slash)."""
        prefix = self.prefix
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def path_of(self, key: str) -> str:
        """The s3:// URL of `key`, relative to the prefix."""
        return f"{self.base_path}/{key.lstrip('/')}"

    def duckdb_source(self, query_or_table: str) -> str | None:
        """DuckDB SQL over s3:// paths as given, or a key under the prefix read whole."""
        from dbwire.store.quoting import quote_literal

        key = query_or_table.strip()
        if not any(c.isspace() for c in key):
            return f"SELECT * FROM {quote_literal(self.path_of(key))}"
        return query_or_table

    def duckdb_io_error(self, exc: BaseException) -> BaseException | None:
        return self.unreachable(exc)

    def health_statement(self) -> str:
        # SELECT 1 would not touch the bucket: list the prefix instead, which needs the
        # endpoint to answer and the credentials to be accepted.
        pattern = f"{self.base_path}/*".replace("'", "''")
        return f"SELECT count(*) AS files FROM glob('{pattern}')"

    # -- no SQLAlchemy ---------------------------------------------------------
    def require_driver(self, *, is_async: bool) -> None:
        raise DbwireError(
            f"database {self.config.name!r} is an S3 bucket, which has no SQLAlchemy engine "
            "or sessions; use db.execute_query() and db.get_schema() (DuckDB SQL), or "
            "attach it to a store: dbwire.get_duckdb_connection().attach(db)",
            database=self.config.name,
        )

    def _options(self) -> dict[str, str]:
        query = self.base_url().query
        found: dict[str, str] = {}
        for key in _OPTIONS:
            value = query.get(key)
            if isinstance(value, str) and value != "":
                found[key] = value
        return found

    def _bool_option(self, key: str, value: str) -> bool:
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(
            f"database {self.config.name!r}: option {key}={value!r} is not a boolean; "
            "use true or false",
            database=self.config.name,
        )

    # -- the local DuckDB store --------------------------------------------------
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """A DuckDB S3 secret scoped to the bucket; nothing is ATTACHed."""
        from dbwire.types import DuckDBAttach

        options = self._options()
        params = self.resolve_params()
        key_id, secret = params.user, params.password_value()
        provider = options.get("provider") or ("config" if key_id else "credential_chain")
        values: dict[str, object] = {"provider": provider}
        extensions: tuple[str, ...] = ("httpfs",)
        if provider == "config":
            if not key_id or not secret:
                raise ConfigError(
                    f"database {self.config.name!r}: S3 needs both an access key id (user) "
                    "and a secret access key (password), or no key at all for the AWS "
                    "credential chain",
                    database=self.config.name,
                )
            values.update(key_id=key_id, secret=secret)
            if options.get("session_token"):
                values["session_token"] = options["session_token"]
        elif provider == "credential_chain":
            extensions = ("httpfs", "aws")
            values.update(chain=options.get("chain"), profile=options.get("profile"))
        else:
            raise ConfigError(
                f"database {self.config.name!r}: unknown S3 provider {provider!r}; "
                "use config or credential_chain",
                database=self.config.name,
            )
        for key in ("region", "endpoint", "url_style"):
            values[key] = options.get(key)
        if "use_ssl" in options:
            values["use_ssl"] = self._bool_option("use_ssl", options["use_ssl"])
        return DuckDBAttach(
            attach=False,
            extensions=extensions,
            secret_type="s3",
            secret=values,
            scope=f"s3://{self.bucket}",
        )

    def _ready_store(self) -> LocalStore:
        """The private in-memory store, with this bucket's secret as currently configured."""
        from dbwire.store.local import LocalStore

        with self._lock:
            if self._store is None or self._store.closed:
                self._store = LocalStore.open(None, threads=2)
            self._store.attach_spec(
                self.config.name,
                self.config.name,
                self.duckdb_attach(readonly=True),
                readonly=True,
                url=self.config.display_url,
            )
            return self._store

    def execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Run DuckDB SQL (`$name` parameters) against the bucket; (columns, rows as dicts)."""
        import duckdb

        with self._lock:
            store = self._ready_store()
            try:
                cursor = store.execute(sql, dict(params) if params else None)
                if cursor.description is None:
                    return [], []
                columns = [str(d[0]) for d in cursor.description]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            except duckdb.IOException as exc:
                raise self.unreachable(exc) from None
            return columns, rows

    def get_schema(self) -> list[TableSchema]:
        """Each data file under the prefix (parquet, CSV, JSON) as a table with its columns."""
        import duckdb

        from dbwire.store.quoting import quote_literal
        from dbwire.types import ColumnSchema, TableSchema

        with self._lock:
            store = self._ready_store()
            base = self.base_path
            try:
                files = store.execute(
                    "SELECT file FROM glob($pattern) ORDER BY file", {"pattern": f"{base}/**"}
                ).fetchall()
            except duckdb.IOException as exc:
                raise self.unreachable(exc) from None
            found: list[TableSchema] = []
            for (file,) in files:
                name = str(file)
                if not name.lower().endswith(_DATA_SUFFIXES):
                    continue
                described = store.execute(f"DESCRIBE SELECT * FROM {quote_literal(name)}")
                columns = tuple(
                    ColumnSchema(name=str(row[0]), type=str(row[1]), nullable=row[2] != "NO")
                    for row in described.fetchall()
                )
                relative = name[len(base) :].lstrip("/")
                found.append(TableSchema(name=relative, schema=base, columns=columns, kind="file"))
            return found

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
