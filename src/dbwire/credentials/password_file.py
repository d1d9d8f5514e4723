"""Passwords kept in files, as container orchestrators mount secrets (`*_FILE` conventions)."""

from __future__ import annotations

import os

from pydantic import SecretStr

from dbwire.errors import CredentialsError

__all__ = ["read_password_file"]


def read_password_file(path: str | os.PathLike[str]) -> SecretStr:
    """Return the file's content as a secret, without one trailing newline (LF or CRLF).

    Only one newline is removed, because `echo secret > file` adds exactly one and
    a password may itself end in whitespace.  Raises CredentialsError when the file
    is missing, unreadable, not a regular file, empty or not UTF-8; the message
    names the path and the fix, never the content.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise CredentialsError(
            f"password file {name} does not exist; mount the secret there or fix the path"
        ) from None
    except IsADirectoryError:
        raise CredentialsError(
            f"password file {name} is a directory; point to the file inside it "
            "that holds the password"
        ) from None
    except PermissionError:
        raise CredentialsError(
            f"password file {name} is not readable by this user (uid {os.geteuid()}); "
            "fix its owner or mode (e.g. chmod 0400 and chown to this user)"
        ) from None
    except OSError as exc:
        raise CredentialsError(
            f"password file {name} could not be read ({exc.strerror}); check the mount"
        ) from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise CredentialsError(
            f"password file {name} is empty; write the password into it "
            "(an empty password cannot authenticate)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(
            f"password file {name} is not valid UTF-8; re-create it as UTF-8 text"
        ) from None
    return SecretStr(text)
