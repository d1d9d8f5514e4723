"""schemathesis against the `dbwire serve` OpenAPI document: no request it allows gets a 5xx,
503 included (the connections it makes are file databases, which can always be reached)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

import dbwire
from dbwire.serve import create_app
from serve_helpers import AUTH, BASE, TOKEN

_WORK = Path(tempfile.mkdtemp(prefix="dbwire-serve-fuzz-"))
_MANAGER = dbwire.Manager({"databases": {"conf": {"url": f"sqlite:///{_WORK / 'conf.db'}"}}})
APP = create_app(
    _MANAGER,
    token=TOKEN,
    state_path=_WORK / "state.json",
    secret_backend="file",
    sample_interval=60,
    allowed_hosts=("testserver",),  # the Host schemathesis loads the document with
)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_document_allows_gets_a_server_error(case: schemathesis.Case) -> None:
    body = case.body
    if isinstance(body, dict) and case.path.startswith("/api/connections"):
        # Random host names and ports would make the run wait on connects; the forms of
        # the file backends take every code path a server form takes before the connect.
        if body.get("type") not in ("sqlite", "duckdb", "testlite"):
            body["type"] = "sqlite"
        config = body.get("config")
        if isinstance(config, dict) and isinstance(config.get("path"), str):
            config["path"] = str(_WORK / config["path"].replace("/", "_")[:40])
    os.chdir(_WORK)
    response = case.call(base_url=BASE, headers=AUTH)
    case.validate_response(response, checks=[not_a_server_error])
