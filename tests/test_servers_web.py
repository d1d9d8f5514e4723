"""The page tests' servers: uvicorn on a thread and the system's Chromium leave nothing behind."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import ServerUnavailable
from servers.browser import CHROMIUM_ENV, Chromium, chromium_path
from servers.web import ThreadedUvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """A complete ASGI app: answers every HTTP request with its path."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                found.add(int(entry.name))
    return found


def test_threaded_uvicorn_serves_then_frees_its_port_and_thread() -> None:
    before = set(threading.enumerate())
    with ThreadedUvicorn(hello) as server:
        assert httpx.get(f"{server.origin}/ping", timeout=10).text == "/ping"
        port = server.port
    assert set(threading.enumerate()) <= before
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing listens there any more


def test_threaded_uvicorn_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ThreadedUvicorn(hello, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"exited during startup|did not start"):
            server.start(timeout=10)


def test_chromium_path_names_a_bad_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_executable = tmp_path / "chromium"
    not_executable.write_text("")
    not_executable.chmod(stat.S_IRUSR)
    monkeypatch.setenv(CHROMIUM_ENV, str(not_executable))
    with pytest.raises(ServerUnavailable, match=CHROMIUM_ENV):
        chromium_path()


def test_chromium_stops_with_its_driver_and_browser() -> None:
    try:
        browser = Chromium()
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(f"CI must run the browser tests: {exc}", pytrace=False)
        pytest.skip(str(exc))
    before = _children(os.getpid())
    launched = browser.start()
    assert launched.version
    spawned = _children(os.getpid()) - before
    assert spawned, "Playwright's driver runs as a child process"
    browser.stop()
    browser.stop()  # idempotent
    assert not (_children(os.getpid()) & spawned)
    with pytest.raises(RuntimeError, match="not started"):
        _ = browser.browser
