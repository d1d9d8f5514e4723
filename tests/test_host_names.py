"""Host names are refused exactly where Python's IDNA codec (what the drivers' resolver
calls) refuses them, without loading that codec for a plain ASCII name."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbwire import ConfigError
from dbwire.backends._query import check_hosts


def _codec_accepts(host: str) -> bool:
    try:
        return len(host.encode("idna")) <= 253
    except UnicodeError:
        return False


def _dbwire_accepts(host: str) -> bool:
    try:
        check_hosts("db", [host])
    except ConfigError:
        return False
    return True


_EDGES = ["a", "a.", "a..b", "x" * 63, "x" * 64, "x" * 63 + ".", "x" * 64 + ".", "a." + "x" * 64]
_FOUR_FULL = ".".join(["y" * 63] * 4)  # 255 characters: every label fine, the name too long
_EDGES += [_FOUR_FULL, _FOUR_FULL + ".", "b\u00fccher.example", "\u00e9" * 70]


@pytest.mark.parametrize("host", _EDGES)
def test_an_edge_host_is_refused_exactly_where_the_codec_refuses_it(host: str) -> None:
    assert _dbwire_accepts(host) == _codec_accepts(host)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.integers(0, 70), min_size=1, max_size=6),
    st.booleans(),
    st.sampled_from("a\u00e9"),
)
def test_generated_hosts_are_judged_as_the_codec_judges_them(
    lengths: list[int], trailing_dot: bool, letter: str
) -> None:
    host = ".".join(letter * n for n in lengths) + ("." if trailing_dot else "")
    if not host or host.startswith("/"):
        return
    assert _dbwire_accepts(host) == _codec_accepts(host)


def test_checking_an_ascii_host_leaves_the_idna_codec_unloaded() -> None:
    code = (
        "import sys; from dbwire.backends._query import check_hosts; "
        "check_hosts('db', ['db1.example.com', 'localhost']); "
        "print('encodings.idna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
