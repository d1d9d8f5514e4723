"""seed() with {table: [rows]} and `dbwire seed NAME FILE`: FK order, all or nothing,
idempotent on primary keys, named failures, real PostgreSQL and SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ForeignKey, MetaData, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbwire
from dbwire import ConfigError, Database, DatabaseConfig

DBWIRE = Path(sys.executable).with_name("dbwire")


class Base(DeclarativeBase):
    pass


class Region(Base):
    __tablename__ = "chain_region"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Store(Base):
    __tablename__ = "chain_store"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("chain_region.id"))


class Sale(Base):
    __tablename__ = "chain_sale"
    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chain_store.id"))
    amount: Mapped[int]


STORE = uuid.UUID(int=7)
# Children first on purpose: seed() must order by foreign keys, not by the mapping.
DATA: dict[str, list[dict[str, Any]]] = {
    "chain_sale": [
        {"id": 1, "store_id": STORE, "amount": 5},
        {"id": 2, "store_id": STORE, "amount": 9},
    ],
    "chain_store": [{"id": STORE, "region_id": 1}],
    "chain_region": [{"id": 1, "name": "north"}],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chain.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    database = Database(DatabaseConfig(name=f"chain-{request.param}", url=url))
    Base.metadata.create_all(database.engine)
    yield database
    Base.metadata.drop_all(database.engine)
    database.close()


def _counts(db: Database) -> list[int]:
    with db.session() as s:
        return [
            int(s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("chain_region", "chain_store", "chain_sale")
        ]


def test_three_table_chain_seeded_twice_leaves_one_copy_and_says_so(db: Database) -> None:
    first = dbwire.seed(db, Base, DATA)
    assert first.inserted == {"chain_region": 1, "chain_store": 1, "chain_sale": 2}
    assert first.total_present == 0
    second = dbwire.seed(db, Base.metadata, DATA)
    assert second.inserted == {"chain_region": 0, "chain_store": 0, "chain_sale": 0}
    assert second.present == {"chain_region": 1, "chain_store": 1, "chain_sale": 2}
    assert second.summary().startswith("0 inserted, 4 already present")
    assert _counts(db) == [1, 1, 2]
    with db.session() as s:
        assert s.scalar(select(Store.region_id).where(Store.id == STORE)) == 1


def test_a_bad_row_rolls_everything_back_and_is_named(db: Database) -> None:
    bad = {
        **DATA,
        "chain_sale": [*DATA["chain_sale"], {"id": 3, "store_id": uuid.UUID(int=99), "amount": 1}],
    }
    with pytest.raises(ConfigError) as caught:
        dbwire.seed(db, Base, bad)
    message = str(caught.value)
    assert "seed row 3 of table 'chain_sale'" in message and "{'id': 3}" in message
    assert "nothing was seeded" in message and caught.value.database == db.name
    assert _counts(db) == [0, 0, 0]  # the regions and stores before it were rolled back too


def test_unknown_column_and_table_are_named(db: Database) -> None:
    with pytest.raises(ConfigError, match=r"table 'chain_region' has no column 'nmae'"):
        dbwire.seed(db, Base, {"chain_region": [{"id": 1, "nmae": "x"}]})
    with pytest.raises(ConfigError, match=r"table 'chain_nosuch'.*run migrations first"):
        dbwire.seed(db, Base, {"chain_nosuch": [{"id": 1}]})
    assert _counts(db) == [0, 0, 0]


def test_seeding_before_the_tables_exist_says_to_migrate(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="empty", url=f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        with pytest.raises(ConfigError, match=r"'empty'.*does not exist yet.*dbwire migrate"):
            dbwire.seed(db, Base, DATA)
    finally:
        db.close()


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBWIRE), *args, "--config", str(tmp_path / "dbwire.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_cli_seeds_json_and_yaml_files_on_postgres(pg_url: str, tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="cli-seed", url=pg_url))
    Base.metadata.create_all(db.engine)
    try:
        (tmp_path / "dbwire.toml").write_text(f'[databases.app]\nurl = "{pg_url}"\n')
        rows = {
            k: [{c: str(v) if isinstance(v, uuid.UUID) else v for c, v in r.items()} for r in rs]
            for k, rs in DATA.items()
        }
        (tmp_path / "seed.json").write_text(json.dumps(rows))
        first = _cli(tmp_path, "seed", "app", "seed.json")
        assert first.returncode == 0, first.stderr
        assert "app: seeded 4 inserted, 0 already present" in first.stdout
        (tmp_path / "seed.yaml").write_text(
            "chain_region:\n  - {id: 1, name: north}\n  - {id: 2, name: south}\n"
        )
        second = _cli(tmp_path, "seed", "app", "seed.yaml")
        assert second.returncode == 0, second.stderr
        assert "app: seeded 1 inserted, 1 already present" in second.stdout
        assert _counts(db) == [2, 1, 2]
        (tmp_path / "bad.json").write_text(
            json.dumps({"chain_store": [{"id": "not-a-uuid", "region_id": 1}]})
        )
        bad = _cli(tmp_path, "seed", "app", "bad.json")
        assert bad.returncode == 2, bad.stdout
        assert "chain_store" in bad.stderr and "not-a-uuid" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        Base.metadata.drop_all(db.engine)
        db.close()


def test_metadata_alone_works_without_the_orm_models(db: Database) -> None:
    metadata = MetaData()
    metadata.reflect(bind=db.engine)
    report = dbwire.seed(db, metadata, {"chain_region": [{"id": 5, "name": "east"}]})
    assert report.inserted == {"chain_region": 1}
