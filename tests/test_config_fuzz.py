"""Property tests: arbitrary URLs and TOML documents only ever raise DbwireError subclasses."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbwire
from dbwire import Database, DbwireError, load_config

SCHEMES = st.sampled_from(
    ["postgresql", "postgres", "mysql", "mariadb", "sqlite", "duckdb", "oracle", "", "s3"]
)
URLISH = st.builds(
    lambda scheme, rest: f"{scheme}://{rest}",
    SCHEMES,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(URLISH, st.text(max_size=80)))
def test_arbitrary_urls_raise_only_dbwire_errors(url: str) -> None:
    try:
        db = dbwire.connect(url, name="fuzz")
        repr(db)
        db.backend.engine_url(is_async=False)
        db.backend.resolve_params()
        db.close()
    except DbwireError:
        pass


TOML_FRAGMENTS = st.lists(
    st.sampled_from(
        [
            "[databases.a]",
            "[databases.b]",
            "[dbs.c]",
            "[other]",
            'url = "sqlite://"',
            'url = "postgresql://u:p@h:5432/d"',
            'url = "${MISSING}"',
            'url = "${HOME:-x}"',
            "pool_size = 5",
            'pool_size = "five"',
            "pool_size = -3",
            "readonly = true",
            "readonly = 3",
            "replicas = [1, 2]",
            'options = { sslmode = "require" }',
            "options = 3",
            "unknown_key = 1",
            "databases = 1",
            "= = =",
            '"',
            "[[databases]]",
            "port = 70000",
        ]
    ),
    max_size=8,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(TOML_FRAGMENTS.map("\n".join), st.text(max_size=200)))
def test_arbitrary_toml_raises_only_dbwire_errors(tmp_path: Path, document: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(document, encoding="utf-8")
    try:
        config = load_config(path, environ={})
        for db_config in config.databases.values():
            repr(db_config)
            Database(db_config).close()
    except DbwireError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["url", "pool_size", "port", "readonly", "options", "password", "bogus"]),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=20), st.booleans(), st.lists(st.integers())
        ),
        max_size=5,
    )
)
def test_arbitrary_dicts_raise_only_dbwire_errors(fields: dict[str, object]) -> None:
    with contextlib.suppress(DbwireError):
        load_config({"databases": {"x": fields}}, environ={})
