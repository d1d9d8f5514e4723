"""seed(): initial rows in foreign-key order, all or nothing, idempotent on primary keys."""

from __future__ import annotations

import datetime
import decimal
import importlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, and_, inspect, select
from sqlalchemy import exc as sa_exc

from dbwire.errors import ConfigError, describe

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dbwire.database import Database

Rows = Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass
class SeedReport:
    """What seed() did, per table: rows inserted and rows whose primary key was already there."""

    inserted: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)

    @property
    def total_inserted(self) -> int:
        """Rows inserted by this run."""
        return sum(self.inserted.values())

    @property
    def total_present(self) -> int:
        """Rows left alone because their primary key was already there."""
        return sum(self.present.values())

    def summary(self) -> str:
        """One line: `3 inserted, 2 already present (team 1/0, member 2/2)`."""
        tables = ", ".join(
            f"{name} {self.inserted[name]} inserted/{self.present[name]} present"
            for name in self.inserted
        )
        return f"{self.total_inserted} inserted, {self.total_present} already present" + (
            f" ({tables})" if tables else ""
        )


def seed(db: Database, models: Any, data: Rows | None = None) -> SeedReport:
    """Insert initial rows in foreign-key order, in one transaction, skipping existing keys.

    Args:
        db: the database to seed.
        models: a declarative base (all its mapped classes), the classes themselves, or a
            MetaData. Without `data`, each class's `seed_list` (dicts of column values or
            ready instances) is seeded.
        data: `{table name: [row dicts]}`; the tables come from `models`' metadata.

    A row whose primary key is already in the table is left alone, so seeding twice
    leaves one copy. Any failing row rolls the whole seed back and is named with its table.
    """
    if data is None:
        metadata, rows = _from_seed_lists(models)
    else:
        metadata, rows = _metadata_of(models), _by_table(db, _metadata_of(models), data)
    return _seed_rows(db, metadata, rows)


def seed_file(db: Database, path: str, models: Any | None = None) -> SeedReport:
    """Seed from a JSON or YAML file of `{table: [rows]}`; tables reflected when no models."""
    data = load_rows(path, database=db.name)
    if models is not None:
        return seed(db, models, data)
    metadata = MetaData()
    with db.connect() as conn:
        metadata.reflect(bind=conn)
    return _seed_rows(db, metadata, _by_table(db, metadata, data))


def load_rows(path: str, *, database: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The `{table: [rows]}` of a JSON file, or of a YAML one (with PyYAML installed)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(
            f"seed file {path!r}: cannot read it ({exc.strerror}); give the path of a JSON or "
            "YAML file",
            database=database,
        ) from None
    if path.endswith((".yaml", ".yml")):
        try:
            # Imported by name: PyYAML is optional and ships no type stubs.
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise ConfigError(
                f"seed file {path!r}: YAML needs PyYAML; run: pip install 'dbwire[yaml]', "
                "or write the file as JSON",
                database=database,
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"seed file {path!r}: not valid YAML: {str(exc).splitlines()[0]}",
                database=database,
            ) from None
    else:
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"seed file {path!r}: not valid JSON ({exc}); write {{table: [rows]}}",
                database=database,
            ) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
        for rows in loaded.values()
    ):
        raise ConfigError(
            f"seed file {path!r}: expected a mapping of table names to lists of rows, "
            'e.g. {"team": [{"id": 1, "name": "core"}]}',
            database=database,
        )
    return {str(table): list(rows) for table, rows in loaded.items()}


def _metadata_of(models: Any) -> MetaData:
    if isinstance(models, MetaData):
        return models
    metadata = getattr(models, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    classes = list(models)
    if classes and isinstance(getattr(classes[0], "__table__", None), Table):
        return classes[0].__table__.metadata  # type: ignore[no-any-return]
    raise ConfigError(
        f"seed(): {models!r} is not a declarative base, a list of mapped classes or a "
        "MetaData; pass one of those"
    )


def _from_seed_lists(models: Any) -> tuple[MetaData, dict[Table, list[dict[str, Any]]]]:
    from sqlalchemy.orm import DeclarativeBase  # the ORM loads only when seeding

    if isinstance(models, type) and issubclass(models, DeclarativeBase):
        classes = [mapper.class_ for mapper in models.registry.mappers]
    else:
        classes = list(models)
    rows: dict[Table, list[dict[str, Any]]] = {}
    for cls in classes:
        table = cls.__table__
        for item in getattr(cls, "seed_list", ()):
            rows.setdefault(table, []).append(_column_values(cls, item))
    metadata = classes[0].__table__.metadata if classes else MetaData()
    return metadata, rows


def _column_values(cls: Any, item: Any) -> dict[str, Any]:
    """A seed_list entry as column values: a dict of attribute names, or an instance."""
    mapper = inspect(cls)
    values = item if isinstance(item, Mapping) else None
    found: dict[str, Any] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if values is not None:
            if attr.key in values:
                found[column.name] = values[attr.key]
        else:
            value = getattr(item, attr.key, None)
            if value is not None:
                found[column.name] = value
    if values is not None:
        unknown = set(values) - {attr.key for attr in mapper.column_attrs}
        if unknown:
            raise ConfigError(
                f"seed_list of {cls.__name__}: no column {sorted(unknown)[0]!r}; the columns "
                f"are {', '.join(sorted(a.key for a in mapper.column_attrs))}"
            )
    return found


def _by_table(db: Database, metadata: MetaData, data: Rows) -> dict[Table, list[dict[str, Any]]]:
    rows: dict[Table, list[dict[str, Any]]] = {}
    for name, table_rows in data.items():
        table = metadata.tables.get(name)
        if table is None:
            matches = [t for t in metadata.tables.values() if t.name == name]
            table = matches[0] if len(matches) == 1 else None
        if table is None:
            raise ConfigError(
                f"database {db.name!r}: seed data names table {name!r}, which is not in the "
                f"models nor the database (known: {', '.join(sorted(metadata.tables)) or 'none'}); "
                "Fix: run migrations first (dbwire migrate NAME), or correct the table name",
                database=db.name,
            )
        rows[table] = [dict(row) for row in table_rows]
    return rows


def _seed_rows(
    db: Database, metadata: MetaData, rows: dict[Table, list[dict[str, Any]]]
) -> SeedReport:
    report = SeedReport()
    ordered = [table for table in metadata.sorted_tables if table in rows]
    with db.engine.begin() as conn:
        _require_tables(db, conn, ordered)
        for table in ordered:
            inserted = present = 0
            for index, row in enumerate(rows[table], start=1):
                values = _coerced(db, table, row, index)
                try:
                    if _exists(conn, table, values):
                        present += 1
                        continue
                    conn.execute(table.insert().values(values))
                except sa_exc.DBAPIError as exc:
                    raise ConfigError(
                        f"database {db.name!r}: seed row {index} of table {table.name!r} "
                        f"{_key_of(table, values)} failed: {describe(exc, db.known_secrets())}; "
                        "nothing was seeded (all or nothing). Fix that row and seed again",
                        database=db.name,
                    ) from None
                inserted += 1
            report.inserted[table.name] = inserted
            report.present[table.name] = present
    return report


def _require_tables(db: Database, conn: Connection, tables: Iterable[Table]) -> None:
    inspector = inspect(conn)
    for table in tables:
        if not inspector.has_table(table.name, schema=table.schema):
            raise ConfigError(
                f"database {db.name!r}: table {table.fullname!r} does not exist yet; "
                "Fix: run migrations first (dbwire migrate NAME), then seed",
                database=db.name,
            )


def _exists(conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    keys = list(table.primary_key.columns)
    if not keys or any(column.name not in values for column in keys):
        return False  # no key to match on (e.g. a generated id): always a new row
    where = and_(*(column == values[column.name] for column in keys))
    return conn.execute(select(1).select_from(table).where(where).limit(1)).first() is not None


def _key_of(table: Table, values: Mapping[str, Any]) -> str:
    keys = {c.name: values.get(c.name) for c in table.primary_key.columns if c.name in values}
    return f"(key {keys})" if keys else "(no primary key given)"


_PARSERS: dict[type, Any] = {
    uuid.UUID: uuid.UUID,
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    decimal.Decimal: decimal.Decimal,
}


def _coerced(db: Database, table: Table, row: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Row values with JSON/YAML strings turned into the column's Python type where needed."""
    values: dict[str, Any] = {}
    for name, value in row.items():
        if name not in table.columns:
            raise ConfigError(
                f"database {db.name!r}: seed row {index} of table {table.name!r} has no "
                f"column {name!r}; the columns are {', '.join(table.columns.keys())}",
                database=db.name,
            )
        if isinstance(value, str):
            try:
                python_type = table.columns[name].type.python_type
            except NotImplementedError:
                python_type = str
            parser = _PARSERS.get(python_type)
            if parser is not None:
                try:
                    value = parser(value)
                except (ValueError, decimal.InvalidOperation):
                    raise ConfigError(
                        f"database {db.name!r}: seed row {index} of table {table.name!r}: "
                        f"column {name!r} wants a {python_type.__name__}, got {value!r}",
                        database=db.name,
                    ) from None
        values[name] = value
    return values
