"""Unit tests for the non-libpq password sources: files, commands, MySQL option files."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dbwire.credentials import PasswordCommand, read_mysql_option_files, read_password_file
from dbwire.errors import ConfigError, CredentialsError

# --------------------------------------------------------------------------- password files


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"s3cret", "s3cret"),
        (b"s3cret\n", "s3cret"),
        (b"s3cret\r\n", "s3cret"),
        (b"s3cret\n\n", "s3cret\n"),
        (b"  spaced  \n", "  spaced  "),
        ("p\u00e4ss\n".encode(), "p\u00e4ss"),
    ],
)
def test_read_password_file_strips_one_newline(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content)
    assert read_password_file(path).get_secret_value() == expected
    assert read_password_file(str(path)).get_secret_value() == expected


def test_read_password_file_missing_names_path_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(CredentialsError, match=f"{path} does not exist; mount the secret"):
        read_password_file(path)


def test_read_password_file_directory(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="is a directory; point to the file"):
        read_password_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"])
def test_read_password_file_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty"
    path.write_bytes(content)
    with pytest.raises(CredentialsError, match="is empty"):
        read_password_file(path)


def test_read_password_file_not_utf8_does_not_echo(tmp_path: Path) -> None:
    path = tmp_path / "latin1"
    path.write_bytes(b"caf\xe9-secret")
    with pytest.raises(CredentialsError, match="not valid UTF-8") as caught:
        read_password_file(path)
    assert "secret" not in str(caught.value).replace(str(path), "")


def _read_as_nobody(path: Path) -> str:
    """read_password_file(path) in a forked child that dropped root; return the message."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become 'nobody', try, report, exit without pytest's teardown
        code = 3
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            read_password_file(path)
        except CredentialsError as exc:
            os.write(write_end, str(exc).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "no CredentialsError in the child"
    return message


def test_read_password_file_unreadable() -> None:
    # Root reads any file, so when the suite runs as root (as CI does) the read happens in
    # a forked child that became 'nobody', for whom the file really is unreadable.
    base = Path(tempfile.mkdtemp(prefix="dbwire-unreadable-"))
    try:
        base.chmod(0o755)
        path = base / "locked"
        path.write_text("pw-unreadable")
        path.chmod(0)
        if os.geteuid() == 0:
            message = _read_as_nobody(path)
        else:
            with pytest.raises(CredentialsError) as caught:
                read_password_file(path)
            message = str(caught.value)
        assert "not readable by this user" in message
        assert "pw-unreadable" not in message
    finally:
        shutil.rmtree(base)


def test_read_password_file_loop_is_credentials_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(CredentialsError, match="could not be read"):
        read_password_file(tmp_path / "a")


# --------------------------------------------------------------------------- password commands

PY = sys.executable


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "helper.py"
    path.write_text(body)
    return [PY, str(path)]


def test_command_list_output_without_newline(tmp_path: Path) -> None:
    command = PasswordCommand(_script(tmp_path, "print('from-list')"), ttl=10)
    assert command.get().get_secret_value() == "from-list"


def test_command_string_is_split_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    command = PasswordCommand(
        f"{PY} -c 'import sys; print(sys.argv[1])' '$HOME; touch {marker}'", 1
    )
    # No shell: $HOME is not expanded and "; touch" is just part of the argument.
    assert command.get().get_secret_value() == f"$HOME; touch {marker}"
    assert not marker.exists()


def test_command_is_cached_for_ttl(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    body = (
        "import pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(f'pw{n}')\n"
    )
    argv = _script(tmp_path, body)
    cached = PasswordCommand(argv, ttl=60)
    assert [cached.get().get_secret_value() for _ in range(3)] == ["pw1", "pw1", "pw1"]
    cached.invalidate()
    assert cached.get().get_secret_value() == "pw2"

    uncached = PasswordCommand(argv, ttl=0)
    assert uncached.get().get_secret_value() == "pw3"
    assert uncached.get().get_secret_value() == "pw4"


def test_command_cache_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = tmp_path / "runs"
    body = (
        "import pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(n)\n"
    )
    command = PasswordCommand(_script(tmp_path, body), ttl=5)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    assert command.get().get_secret_value() == "1"
    now[0] += 4.9
    assert command.get().get_secret_value() == "1"
    now[0] += 0.2
    assert command.get().get_secret_value() == "2"


def test_command_runs_once_for_concurrent_callers(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    body = (
        "import pathlib, time\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "with p.open('a') as f: f.write('x')\n"
        "time.sleep(0.3)\n"
        "print('shared')\n"
    )
    command = PasswordCommand(_script(tmp_path, body), ttl=60)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(command.get().get_secret_value()))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["shared"] * 8
    assert counter.read_text() == "x"


def test_command_failure_names_command_but_not_output(tmp_path: Path) -> None:
    body = (
        "import sys\n"
        "print('hunter2-secret')\n"
        "print('token hunter2-secret rejected', file=sys.stderr)\n"
        "print('second line with details', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    argv = _script(tmp_path, body)
    with pytest.raises(CredentialsError) as caught:
        PasswordCommand(argv, ttl=1).get()
    message = str(caught.value)
    # The program's name only: an argument may be a token.
    assert f"password command {Path(PY).name!r} (and 1 argument)" in message
    assert str(tmp_path) not in message
    assert "exited with status 3" in message
    assert "hunter2" not in message
    assert "token *** rejected" in message
    assert "second line" not in message


def test_command_timeout(tmp_path: Path) -> None:
    argv = _script(tmp_path, "import time\ntime.sleep(30)\n")
    started = time.monotonic()
    with pytest.raises(CredentialsError, match=r"did not finish within 0\.5 s"):
        PasswordCommand(argv, ttl=1, timeout=0.5).get()
    assert time.monotonic() - started < 10


def test_command_not_found() -> None:
    with pytest.raises(CredentialsError, match="was not found; install it"):
        PasswordCommand(["/nonexistent/vault-helper", "read"], ttl=1).get()


def test_command_prints_nothing(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="printed nothing"):
        PasswordCommand(_script(tmp_path, "print()"), ttl=1).get()


def test_command_killed_by_signal(tmp_path: Path) -> None:
    argv = _script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    with pytest.raises(CredentialsError, match="killed by signal 15"):
        PasswordCommand(argv, ttl=1).get()


@pytest.mark.parametrize(
    ("command", "ttl", "message"),
    [
        ("", 1, "non-empty"),
        ([], 1, "non-empty"),
        ("vault 'unbalanced", 1, "quoting"),
        ("ok", -1, "ttl must be >= 0"),
    ],
)
def test_command_configuration_errors(command: str | list[str], ttl: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PasswordCommand(command, ttl)


def test_command_repr_and_env(tmp_path: Path) -> None:
    argv = _script(tmp_path, "import os\nprint(os.environ['TOKEN_SOURCE'])\n")
    command = PasswordCommand(argv, ttl=1, env={"TOKEN_SOURCE": "from-env"})
    assert command.get().get_secret_value() == "from-env"
    assert Path(PY).name in repr(command)
    assert "helper.py" not in repr(command)
    assert command.argv == argv


# --------------------------------------------------------------------------- MySQL option files


def _cnf(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_mysql_client_groups_and_normalised_keys(tmp_path: Path) -> None:
    path = _cnf(
        tmp_path / "my.cnf",
        "[mysqld]\nuser=server\n"
        '[client]\nuser = alice\npassword="p#ss word" # comment\nhost=db.example\n'
        "[mysql]\nuser=ignored\n"
        "[client-server]\nport = 3307\n"
        "[CLIENT-MARIADB]\nloose_database=app\nsocket=/run/mysqld/mysqld.sock\n",
    )
    assert read_mysql_option_files([path]) == {
        "user": "alice",
        "password": "p#ss word",
        "host": "db.example",
        "port": "3307",
        "database": "app",
        "socket": "/run/mysqld/mysqld.sock",
    }


def test_mysql_values_quotes_escapes_and_comments(tmp_path: Path) -> None:
    path = _cnf(
        tmp_path / "my.cnf",
        "# leading comment\n; another\n[client]\n"
        "user='it\\'s'\n"
        "password=tab\\there\\\\ # trailing comment\n"
        'host="a\\sb"\n'
        "password\n",
    )
    assert read_mysql_option_files([path]) == {
        "user": "it's",
        "password": "tab\there\\",
        "host": "a b",
    }


def test_mysql_later_lines_and_files_win(tmp_path: Path) -> None:
    first = _cnf(tmp_path / "a.cnf", "[client]\nuser=a\npassword=one\n[client]\npassword=two\n")
    second = _cnf(tmp_path / "b.cnf", "[client]\nuser=b\n")
    assert read_mysql_option_files([first, second]) == {"user": "b", "password": "two"}


def test_mysql_include_and_includedir(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    _cnf(conf_d / "20-pw.cnf", "[client]\npassword=fromdir\n")
    _cnf(conf_d / "10-user.cnf", "[client]\nuser=fromdir\n")
    _cnf(conf_d / "README", "[client]\nuser=not-a-cnf\n")
    _cnf(tmp_path / "extra.cnf", "[client]\nhost=included\n")
    main = _cnf(
        tmp_path / "my.cnf", "[client]\nuser=main\n!include extra.cnf\n!includedir conf.d\n"
    )
    assert read_mysql_option_files([main]) == {
        "user": "fromdir",
        "password": "fromdir",
        "host": "included",
    }


def test_mysql_include_cycle(tmp_path: Path) -> None:
    _cnf(tmp_path / "a.cnf", "!include b.cnf\n")
    _cnf(tmp_path / "b.cnf", "!include a.cnf\n")
    with pytest.raises(ConfigError, match="includes itself"):
        read_mysql_option_files([str(tmp_path / "a.cnf")])


def test_mysql_default_path_from_home(tmp_path: Path) -> None:
    assert read_mysql_option_files(environ={"HOME": str(tmp_path)}) == {}
    _cnf(tmp_path / ".my.cnf", "[client]\nuser=homeuser\n")
    assert read_mysql_option_files(environ={"HOME": str(tmp_path)}) == {"user": "homeuser"}


def test_mysql_world_writable_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _cnf(tmp_path / "my.cnf", "[client]\nuser=x\n", 0o666)
    with caplog.at_level(logging.WARNING):
        assert read_mysql_option_files([path]) == {}
    assert "World-writable config file" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[client\nuser=x\n", "without ']'"),
        ("[client]\npassword='open\n", "unterminated quoted value"),
        ("[client]\nuser='a' b\n", "after the closing quote"),
        ("!bogus x\n", "unknown directive"),
    ],
)
def test_mysql_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = _cnf(tmp_path / "my.cnf", text)
    with pytest.raises(ConfigError, match=message):
        read_mysql_option_files([path])


def test_mysql_malformed_password_is_not_echoed(tmp_path: Path) -> None:
    path = _cnf(tmp_path / "my.cnf", "[client]\npassword='hunter2\n")
    with pytest.raises(ConfigError) as caught:
        read_mysql_option_files([path])
    assert "hunter2" not in str(caught.value)
