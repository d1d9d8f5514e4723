"""Passwords printed by a command (vault CLIs, cloud IAM token helpers), cached for a TTL."""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Mapping, Sequence

from pydantic import SecretStr

from dbwire.errors import ConfigError, CredentialsError, scrub

__all__ = ["PasswordCommand"]

_SHOWN_STDERR = 200


class PasswordCommand:
    """Run a command that prints a password on stdout; cache the result for `ttl` seconds.

    A string command is split with shlex (no shell is ever used); a list is run as
    given.  `get()` is thread-safe: concurrent callers wait for one run instead of
    starting several.  Failures raise CredentialsError naming the command, never its
    output; at most the first line of stderr is quoted, with anything stdout printed
    removed from it, since helpers sometimes echo the secret in their diagnostics.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        ttl: float,
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(command, str):
            problem: str | None = None
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                problem = str(exc)  # "No closing quotation": names no part of the command
            if problem is not None:  # outside the except block: shlex's error is not chained
                raise ConfigError(
                    f"password command cannot be split into words ({problem}); "
                    "fix its quoting or pass a list of arguments"
                )
        else:
            argv = list(command)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError("password command must be a non-empty string or list of strings")
        if ttl < 0:
            raise ConfigError(f"password command ttl must be >= 0 seconds, not {ttl}")
        if timeout <= 0:
            raise ConfigError(f"password command timeout must be > 0 seconds, not {timeout}")
        self._argv = argv
        self.ttl = float(ttl)
        self.timeout = float(timeout)
        self._env = dict(env) if env is not None else None
        self._lock = threading.Lock()
        self._value: SecretStr | None = None
        self._expires = 0.0

    @property
    def argv(self) -> list[str]:
        """The program and its arguments."""
        return list(self._argv)

    def __repr__(self) -> str:
        return f"PasswordCommand({self._describe()!r}, ttl={self.ttl})"

    def describe(self) -> str:
        """The command as messages show it: the program's name and how many arguments."""
        return self._describe()

    def invalidate(self) -> None:
        """Forget the cached password (e.g. after the server rejected it)."""
        with self._lock:
            self._value = None
            self._expires = 0.0

    def get(self) -> SecretStr:
        """Return the cached password, running the command when the cache is empty or stale."""
        with self._lock:
            now = time.monotonic()
            if self._value is not None and now < self._expires:
                return self._value
            value = self._run()
            if self.ttl > 0:
                self._value = value
                self._expires = time.monotonic() + self.ttl
            return value

    def _describe(self) -> str:
        # The program's name only: an argument may be a token (--token=..., a vault path).
        program = os.path.basename(self._argv[0]) or self._argv[0]
        more = len(self._argv) - 1
        return repr(program) + (f" (and {more} argument{'s' * (more > 1)})" if more else "")

    def _run(self) -> SecretStr:
        import subprocess  # here: only a password command starts a program; a login does not

        name = self._describe()
        try:
            done = subprocess.run(
                self._argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CredentialsError(
                f"password command {name} did not finish within {self.timeout:g} s and was "
                "killed; check that it does not wait for input, or raise the timeout"
            ) from None
        except FileNotFoundError:
            raise CredentialsError(
                f"password command {name} could not be started: it was not "
                "found; install it or give its full path"
            ) from None
        except PermissionError:
            raise CredentialsError(
                f"password command {name} could not be started: it is not executable; fix its mode"
            ) from None
        except OSError as exc:
            raise CredentialsError(
                f"password command {name} could not be started ({exc.strerror})"
            ) from None
        stdout = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0:
            detail = _stderr_line(done.stderr, stdout, self._argv[1:])
            status = (
                f"was killed by signal {-done.returncode}"
                if done.returncode < 0
                else f"exited with status {done.returncode}"
            )
            raise CredentialsError(
                f"password command {name} {status}"
                + (f" ({detail})" if detail else "")
                + "; run it by hand to see why"
            )
        if stdout.endswith("\r\n"):
            stdout = stdout[:-2]
        elif stdout.endswith("\n"):
            stdout = stdout[:-1]
        if not stdout:
            raise CredentialsError(
                f"password command {name} printed nothing on stdout; it must print the password"
            )
        return SecretStr(stdout)


def _stderr_line(stderr: bytes, stdout: str, arguments: Sequence[str]) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    if not text:
        return ""
    first = text.splitlines()[0].strip()
    # Whatever reached stdout may be the secret; also hide its lines and words.
    words = [w for w in stdout.split() if len(w) >= 4]
    secrets = [stdout, stdout.strip(), *stdout.splitlines(), *words]
    # Longest first, so a secret is replaced whole before any of its words.
    ordered: list[str] = sorted(set(secrets), key=len, reverse=True)
    # Long arguments too: a helper may echo its --token argument in a usage message.
    tokens = sorted((a for a in arguments if len(a) >= 8), key=len, reverse=True)
    first = scrub(first, [*ordered, *tokens])
    if len(first) > _SHOWN_STDERR:
        first = first[:_SHOWN_STDERR] + "..."
    return "stderr: " + first
