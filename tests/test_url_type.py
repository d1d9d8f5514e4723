"""dbwire's URL against SQLAlchemy's: the same parts from the same text, the same text back.

dbwire parses URLs without importing SQLAlchemy (dbwire.url_type); every URL here goes
through both parsers, and every method dbwire uses through both implementations.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL as SAURL
from sqlalchemy.engine import make_url as sa_make_url

from dbwire.url_type import URL, URLParseError, make_url

CORPUS = [
    "postgresql://app:pw@localhost:5432/app",
    "postgresql+psycopg://app@db1/app?sslmode=require&application_name=x",
    "postgresql://u:p%40ss%3Aw%2Frd@h/db",
    "postgresql://u:p@ss@h/db",
    "postgresql://u@[::1]:5433/db",
    "postgresql://u@[fe80::1%25eth0]/db",
    "postgresql:///db?host=/var/run/postgresql&port=5433",
    "postgresql://u@/db?host=db1&host=db2&port=5432&port=5433",
    "postgresql://@/",
    "postgresql://",
    "postgresql://h",
    "postgresql://h:/db",
    "postgresql://h:abc/db",
    "mysql+pymysql://root:s%20cret@127.0.0.1:3306/test?charset=utf8mb4&ssl_ca=/c.pem",
    "mysql://u:@h/d",
    "mysql://:pw@h/d",
    "sqlite://",
    "sqlite:///relative/path.db",
    "sqlite:////absolute/path.db",
    "sqlite:///file:x.db?mode=ro&uri=true",
    "sqlite+aiosqlite:///:memory:",
    "duckdb:///:memory:",
    "duckdb:///path/with%20space.duckdb?threads=4",
    "s3://bucket/prefix?region=eu-west-1",
    "postgresql://u:pw@h/db?password=other&sslpassword=k&options=-c%20search_path%3Ds",
    "postgresql://u@h/d%2Fb?x=%26&y=a+b&z=",
    "postgresql://u@h/db?a=1&a=2&a=3&b=",
    "weird+dialect+more://x",
    "not a url",
    "postgresql:/missing-slash",
    "://nohost",
    "postgresql://u@h/db?#frag",
    "postgresql://ü:ö@h/ä",
]


def _parts(url: Any) -> tuple[Any, ...]:
    return (
        url.drivername,
        url.username,
        url.password,
        url.host,
        url.port,
        url.database,
        dict(url.query),
    )


def _both(text: str) -> tuple[Any, Any]:
    """(SQLAlchemy's outcome, dbwire's): the parts, or the kind of error."""
    outcomes = []
    for parse in (sa_make_url, make_url):
        try:
            outcomes.append(("ok", _parts(parse(text))))
        except (ValueError, TypeError) as exc:
            outcomes.append(("error", "ValueError" if isinstance(exc, ValueError) else "TypeError"))
        except Exception as exc:  # SQLAlchemy's ArgumentError: not parseable
            outcomes.append(("error", "ValueError" if "Could not parse" in str(exc) else repr(exc)))
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("text", CORPUS)
def test_the_same_parts_from_the_same_text(text: str) -> None:
    theirs, ours = _both(text)
    assert ours == theirs
    if theirs[0] == "ok":
        for hide in (True, False):
            assert make_url(text).render_as_string(hide) == sa_make_url(text).render_as_string(hide)
        assert str(make_url(text)) == str(sa_make_url(text))


def test_an_unparseable_url_is_a_value_error() -> None:
    with pytest.raises(URLParseError):
        make_url("not a url")
    assert issubclass(URLParseError, ValueError)


_text = st.lists(
    st.sampled_from([*"abcXYZ019:/@?&=%+[]._-~ !#$'()*,;ü", "%2F", "%40", "%3A", "%zz"]),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "mysql+pymysql", "sqlite", "duckdb", "x"]),
    rest=_text,
)
def test_fuzzed_urls_parse_as_sqlalchemy_parses_them(scheme: str, rest: str) -> None:
    text = f"{scheme}://{rest}"
    theirs, ours = _both(text)
    assert ours == theirs, text
    if theirs[0] == "ok":
        assert make_url(text).render_as_string(False) == sa_make_url(text).render_as_string(False)


_query_values = st.one_of(
    st.text(max_size=6), st.lists(st.text(max_size=4), min_size=1, max_size=3).map(tuple)
)
_queries = st.dictionaries(st.sampled_from(["a", "b", "ssl", "host"]), _query_values, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(CORPUS[:8]),
    update=_queries,
    append=st.booleans(),
    drop=st.lists(st.sampled_from(["a", "b", "ssl", "host", "sslmode"]), max_size=3),
    password=st.one_of(st.none(), st.text(max_size=6)),
)
def test_the_methods_dbwire_uses_agree(
    base: str, update: dict[str, Any], append: bool, drop: list[str], password: str | None
) -> None:
    ours, theirs = make_url(base), sa_make_url(base)
    ours, theirs = ours.update_query_dict(update, append), theirs.update_query_dict(update, append)
    assert _parts(ours) == _parts(theirs)
    ours, theirs = ours.difference_update_query(drop), theirs.difference_update_query(drop)
    assert _parts(ours) == _parts(theirs)
    ours, theirs = ours.set(password=password, port=6432), theirs.set(password=password, port=6432)
    assert _parts(ours) == _parts(theirs)
    assert ours.render_as_string(False) == theirs.render_as_string(False)
    assert ours.get_backend_name() == theirs.get_backend_name()
    converted = ours.to_sqlalchemy()
    assert isinstance(converted, SAURL) and converted == theirs


def test_a_url_is_a_value() -> None:
    url = make_url("postgresql://u:pw@h/db?a=1")
    assert url == make_url("postgresql://u:pw@h/db?a=1")
    assert url != make_url("postgresql://u:other@h/db?a=1")
    assert len({url, make_url("postgresql://u:pw@h/db?a=1")}) == 1
    assert repr(url) == "postgresql://u:***@h/db?a=1"  # repr never shows the password
    with pytest.raises(TypeError):
        url.query["a"] = "2"  # type: ignore[index]
    assert URL.create("postgresql", port="5432").port == 5432  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        URL.create("postgresql", host=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        URL.create("postgresql", query={"a": 1})  # type: ignore[dict-item]
