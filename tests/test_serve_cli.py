"""`dbwire serve` as a real process: one login line on stdout, the token in no other output,
a loud warning for a non-loopback address, the server stopped by its PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servers import free_port

DBWIRE = Path(sys.executable).with_name("dbwire")
LOGIN = re.compile(r"^dbwire serve: open (http://127\.0\.0\.1:(\d+)/login\?token=([\w-]+))$")


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    config = tmp_path / "dbwire.toml"
    config.write_text(f'[databases.local]\nurl = "sqlite:///{tmp_path / "local.db"}"\n')
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [str(DBWIRE), "serve", "--config", str(config), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"dbwire serve did not answer on {url}")


def test_serve_prints_one_login_line_and_the_token_nowhere_else(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "--sample-interval", "0.5")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        match = LOGIN.match(first)
        assert match, first
        login, shown_port, token = match.groups()
        assert int(shown_port) == port and len(token) >= 40
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/api/me")
        with httpx.Client(base_url=base) as client:
            assert client.get("/api/me").status_code == 401
            page = client.get(login.removeprefix(base), follow_redirects=True)
            assert page.status_code == 200
            assert client.get("/api/me").json()["ok"] is True  # the cookie from /login
            names = [c["name"] for c in client.get("/api/connections").json()]
            assert names == ["local"]
            rebinding = client.get("/api/me", headers={"Host": f"evil.example:{port}"})
            assert rebinding.status_code == 421
    finally:
        out, err = _stop(proc)
    assert token not in out and token not in err  # only the first line (read above) had it
    assert (tmp_path / "dbwire-serve.json").exists() is False  # nothing made: nothing stored


def test_a_non_loopback_address_warns_loudly(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "--host", "0.0.0.0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert LOGIN.match(first), first
        _wait_ready(f"http://127.0.0.1:{port}/api/me")
    finally:
        _out, err = _stop(proc)
    assert "WARNING" in err and "0.0.0.0" in err and "--host 127.0.0.1" in err


def test_a_bad_sample_interval_is_a_usage_error(tmp_path: Path) -> None:
    proc, _port = _start(tmp_path, "--sample-interval", "0")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "sample-interval" in err and "login" not in out
