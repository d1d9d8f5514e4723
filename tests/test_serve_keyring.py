"""`dbwire serve` keeps secrets in a keyring (here keyrings.alt's file backend, a real
keyring backend that needs no desktop session; `auto` would pass it over for the 0600
file, so the test names it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from dbwire.serve.state import keyring_available, secrets_path
from serve_helpers import served, server_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[PlaintextKeyring]:
    before = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # type: ignore[misc]
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(before)


def test_auto_passes_over_an_untrusted_keyring(
    file_keyring: PlaintextKeyring, tmp_path: Path
) -> None:
    with served(tmp_path / "state.json", secret_backend="auto") as (_client, app):
        assert app.state.serve.connections.secrets.kind == "file"


def test_passwords_go_to_the_keyring_and_leave_it(
    pg_server: Any, file_keyring: PlaintextKeyring, tmp_path: Path
) -> None:
    # A plain-text file backend is never chosen by itself, only when named.
    assert keyring_available(trusted_only=False) and not keyring_available()
    if not pg_server.is_running():
        pg_server.start()
    state = tmp_path / "state.json"
    form = server_config(pg_server)
    with served(state, secret_backend="keyring") as (client, app):
        store = app.state.serve.connections.secrets
        assert store.kind == "keyring"
        made = client.post(
            "/api/connections", json={"name": "k", "type": "postgresql", "config": form}
        )
        assert made.json()["status"] == "healthy", made.json()
        assert file_keyring.get_password(store.service, "k/password") == pg_server.password
        stored = json.loads(state.read_text())["connections"][0]
        assert stored["secrets"] == {"password": "keyring"}
        assert pg_server.password not in state.read_text()
        assert not secrets_path(state).exists()
    # A restart finds the password in the keyring.
    with served(state, secret_backend="keyring") as (client, app):
        assert client.post("/api/connections/k/test").json()["status"] == "healthy"
        cleared = {**form, "password": None}
        put = client.put(
            "/api/connections/k", json={"name": "k", "type": "postgresql", "config": cleared}
        )
        assert put.json()["secrets"]["password"] is False
        assert (
            file_keyring.get_password(app.state.serve.connections.secrets.service, "k/password")
            is None
        )
        client.delete("/api/connections/k")
