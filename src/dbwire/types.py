"""Plain result and spec types shared by every layer: no IO, no imports of dbwire above errors.

HealthResult, PoolStatus and PoolHolder (health, observe), ColumnSchema and TableSchema
(schema), DuckDBAttach (how a backend tells the store to attach it). Backends build these;
the Database and the store hand them out; none of them imports the code that fills them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

Status = Literal["healthy", "unhealthy"]
HEALTHY: Status = "healthy"
UNHEALTHY: Status = "unhealthy"


class _ReplicatedFields:
    """Mapping reads and `as_dict` for a dataclass whose `replicas` hold more of itself.

    HealthResult and PoolStatus share it: both read as attributes and as a mapping, and
    both nest their replicas' results one level deep.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (`replicas` only for a database that has some)."""
        found = asdict(self)
        for replica in found["replicas"]:
            del replica["replicas"]  # a replica has none of its own
        if not found["replicas"]:
            del found["replicas"]
        return found


@dataclass(frozen=True)
class HealthResult(_ReplicatedFields):
    """The outcome of one health check.

    Reads as attributes (`result.status`) and, for older callers, as a mapping
    (`result["status"]`).
    """

    name: str
    status: Status
    response_time_ms: float
    error: str | None = None
    backend: str | None = None
    # A primary's read replicas, each checked on its own (dbwire.replicas).
    replicas: tuple[HealthResult, ...] = ()

    @property
    def healthy(self) -> bool:
        """True when the database answered the health query in time."""
        return self.status == HEALTHY


@dataclass(frozen=True)
class PoolHolder:
    """Who holds one checked-out connection: the caller's place, since when, which thread.

    `where` is `file:line in function` of the first frame outside dbwire, SQLAlchemy,
    contextlib and asyncio at checkout; `since` is the wall-clock time (epoch seconds).
    """

    where: str
    since: float
    held_s: float
    thread: str
    task: str | None = None

    def describe(self) -> str:
        """One line for messages: place, hold time, thread (and task)."""
        who = f"thread {self.thread}" + (f", task {self.task}" if self.task else "")
        return f"{self.where} ({self.held_s:.1f} s, {who})"


@dataclass(frozen=True)
class PoolStatus(_ReplicatedFields):
    """How full a connection pool is right now.

    `overflow` counts connections open beyond pool_size at this moment (0 when the pool
    is within its size); None marks a number this kind of pool does not keep.
    `holders` lists the checked-out connections, longest held first; `waiting` counts
    the threads and tasks waiting for a checkout right now.
    """

    size: int | None
    checked_in: int | None
    checked_out: int | None
    overflow: int | None
    max_overflow: int | None = None
    timeout: float | None = None
    pool_class: str = ""
    # A primary's read replicas' pools (dbwire.replicas).
    replicas: tuple[PoolStatus, ...] = ()
    waiting: int | None = None
    holders: tuple[PoolHolder, ...] = ()


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its name, its type as the server names it, NULL, default and primary key."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    primary_key: bool = False


@dataclass(frozen=True)
class ForeignKeySchema:
    """One column of a foreign key and the column it references."""

    column: str
    referenced_schema: str | None
    referenced_table: str
    referenced_column: str


@dataclass(frozen=True)
class TableSchema:
    """One table (or view, or S3 file): where it lives, its columns in order, its foreign keys."""

    name: str
    schema: str | None
    columns: tuple[ColumnSchema, ...] = field(default_factory=tuple)
    kind: str = "table"
    foreign_keys: tuple[ForeignKeySchema, ...] = field(default_factory=tuple)

    @property
    def qualified_name(self) -> str:
        """`schema.name`, or `name` without a schema."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the CLI and seed 004's API)."""
        return asdict(self)


@dataclass(frozen=True)
class DuckDBAttach:
    """How a LocalStore attaches one database; built by the backend's `duckdb_attach()`.

    The store turns it into `CREATE TEMPORARY SECRET` (values as bound parameters) and
    `ATTACH target AS alias (TYPE attach_type, SECRET ..., READ_ONLY)`. A spec with
    `attach=False` (S3) only creates its secret, scoped to `scope`.
    """

    target: str = ""
    attach_type: str | None = None
    extensions: tuple[str, ...] = ()
    secret_type: str | None = None
    secret: Mapping[str, object] = field(default_factory=dict, repr=False)
    scope: str | None = None
    attach: bool = True
    # Keys of `secret` whose values must never be shown (scrubbed from error text).
    hidden: frozenset[str] = frozenset({"password", "secret", "session_token"})

    def fingerprint(self) -> str:
        """A digest of everything that makes this attachment; a change means re-attach."""
        payload = json.dumps(
            [
                self.target,
                self.attach_type,
                self.extensions,
                self.secret_type,
                sorted((k, str(v)) for k, v in self.secret.items()),
                self.scope,
                self.attach,
            ]
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def hidden_values(self) -> list[str]:
        """The secret values to scrub from any text shown to a user."""
        return [str(v) for k, v in self.secret.items() if k in self.hidden and v]
