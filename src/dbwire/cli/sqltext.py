"""SQL text as psql reads it: statements split at `;` outside literals, and `:name` binds.

The lexer knows single-quoted strings (`''` doubled, `E'...'` and MySQL backslash
escapes), quoted identifiers (`"..."`, backticks), PostgreSQL/DuckDB dollar quotes
(`$tag$ ... $tag$`), `--`, `#` (MySQL) and nested `/* */` comments. Only text outside
all of those is code; only code is split, and only code carries bind parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dbwire.backends.readonly_guard import block_comment_end, quoted_end
from dbwire.errors import ConfigError

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Span:
    """A piece of SQL text: `code`, `string`, `ident` or `comment`."""

    kind: str
    text: str


def _spans(sql: str, dialect: str) -> Iterator[Span]:
    mysql = dialect in ("mysql", "mariadb")
    dollar = dialect in ("postgresql", "duckdb")
    i, start, n = 0, 0, len(sql)

    def code_until(j: int) -> Iterator[Span]:
        if j > start:
            yield Span("code", sql[start:j])

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        end = -1
        kind = ""
        if c == "'" or (mysql and c == '"'):
            # E'...' (PostgreSQL) and every MySQL string take backslash escapes.
            prefixed = i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            end = _quoted_end(sql, i, c, backslash=mysql or prefixed)
            kind = "string"
        elif c == '"' or c == "`":
            end = _quoted_end(sql, i, c, backslash=False)
            kind = "ident"
        elif (c == "-" and nxt == "-") or (mysql and c == "#"):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline
            kind = "comment"
        elif c == "/" and nxt == "*":
            end = _block_comment_end(sql, i, nested=not mysql)
            kind = "comment"
        elif dollar and c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                tag = match.group()
                close = sql.find(tag, match.end())
                end = n if close < 0 else close + len(tag)
                kind = "string"
        if kind:
            yield from code_until(i)
            yield Span(kind, sql[i:end])
            i = start = end
        else:
            i += 1
    yield from code_until(n)


def _quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    # Unterminated: the rest is the literal, and the server names the error.
    return quoted_end(sql, start, quote, backslash=backslash) or len(sql)


def _block_comment_end(sql: str, start: int, *, nested: bool) -> int:
    return block_comment_end(sql, start, nested=nested) or len(sql)


@dataclass(frozen=True)
class Statement:
    """One statement: its spans, as written (without the terminating `;`)."""

    spans: tuple[Span, ...]

    @property
    def text(self) -> str:
        return "".join(span.text for span in self.spans).strip()

    @property
    def keywords(self) -> list[str]:
        """The leading words of the code, upper-cased (for command tags)."""
        code = " ".join(span.text for span in self.spans if span.kind == "code")
        return [word.upper() for word in _WORD.findall(code)[:6]]

    @property
    def streamable(self) -> bool:
        """A plain read, which a server-side cursor can stream (PostgreSQL refuses
        `DECLARE CURSOR` for anything else, data-modifying `WITH` included)."""
        words = self.keywords
        if not words or words[0] not in _READS:
            return False
        code = " ".join(span.text for span in self.spans if span.kind == "code").upper()
        return not any(w in _WRITES for w in _WORD.findall(code))

    def binds(self) -> set[str]:
        """The `:name` parameters written in code (never inside literals or comments)."""
        return {
            match.group(1)
            for span in self.spans
            if span.kind == "code"
            for match in _BIND.finditer(span.text)
        }

    def for_driver(
        self, params: Mapping[str, str], paramstyle: str
    ) -> tuple[str, dict[str, str] | list[str]]:
        """The statement in the driver's paramstyle, with only the given `:name`s bound."""
        named = paramstyle in ("named", "pyformat")
        values: dict[str, str] | list[str] = {} if named else []
        percent = paramstyle in ("pyformat", "format")
        out: list[str] = []
        for span in self.spans:
            text = span.text.replace("%", "%%") if percent else span.text
            if span.kind == "code":
                text = _BIND.sub(lambda m: _placeholder(m, params, paramstyle, values), text)
            out.append(text)
        return "".join(out).strip(), values


def _placeholder(
    match: re.Match[str],
    params: Mapping[str, str],
    paramstyle: str,
    values: dict[str, str] | list[str],
) -> str:
    name = match.group(1)
    if name not in params:
        return match.group()  # not a parameter the user gave: sent as written, like psql
    if isinstance(values, dict):
        values[name] = params[name]
        return f"%({name})s" if paramstyle == "pyformat" else f":{name}"
    values.append(params[name])
    return {"qmark": "?", "format": "%s", "numeric": f":{len(values)}"}.get(
        paramstyle, f"${len(values)}"
    )


def split(sql: str, dialect: str) -> list[Statement]:
    """The statements of `sql` in order; empty ones (only `;`, blanks, comments) dropped."""
    statements: list[Statement] = []
    current: list[Span] = []

    def flush() -> None:
        if any(span.kind != "comment" and span.text.strip() for span in current):
            statements.append(Statement(tuple(current)))
        current.clear()

    for span in _spans(sql, dialect):
        if span.kind != "code":
            current.append(span)
            continue
        pieces = span.text.split(";")
        for index, piece in enumerate(pieces):
            if index:
                flush()
            if piece:
                current.append(Span("code", piece))
    flush()
    return statements


def parse_params(pairs: Collection[str], database: str) -> dict[str, Any]:
    """`--param name=value` (a string, as psql's variables) and `--param name:=JSON` (a typed
    value: `id:=42`, `ok:=true`, `x:=null`, `tags:='["a"]'`, as httpie spells it) as a dict;
    anything else is a usage error."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        typed = sep and name.endswith(":")
        if typed:
            name = name[:-1]
        if not sep or not _WORD.fullmatch(name):
            raise ConfigError(
                f"database {database!r}: --param {pair!r} is not name=value or name:=JSON. "
                "Fix: write --param id=42 (a string) or --param id:=42 (a number) and use :id "
                "in the SQL",
                database=database,
            )
        if not typed:
            params[name] = value
            continue
        try:
            params[name] = json.loads(value)
        except ValueError:
            raise ConfigError(
                f"database {database!r}: --param {name}:= takes a JSON value, not {value!r}. "
                f"Fix: --param {name}:=42, {name}:=true, {name}:=null, or {name}:='\"text\"' "
                f"(or {name}={value} for a string)",
                database=database,
            ) from None
    return params


_READS = {"SELECT", "WITH", "VALUES", "TABLE", "FROM"}
_WRITES = {"INSERT", "UPDATE", "DELETE", "MERGE", "INTO"}
_OBJECT_MODIFIERS = {"OR", "REPLACE", "UNIQUE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL"}


def command_tag(statement: Statement, rowcount: int) -> str:
    """psql's command tag: `INSERT 0 1`, `UPDATE 3`, `DELETE 0`, `CREATE TABLE`, `BEGIN`."""
    words = statement.keywords or ["OK"]
    first = words[0]
    if first == "WITH":  # WITH ... INSERT/UPDATE/DELETE: tag of the main statement
        first = next((w for w in words if w in ("INSERT", "UPDATE", "DELETE", "MERGE")), first)
    count = max(rowcount, 0)
    if first == "INSERT":
        return f"INSERT 0 {count}"
    if first in ("UPDATE", "DELETE", "MERGE", "COPY", "MOVE", "FETCH"):
        return f"{first} {count}"
    if first in ("CREATE", "ALTER", "DROP") and len(words) > 1:
        rest = [w for w in words[1:] if w not in _OBJECT_MODIFIERS]
        return f"{first} {rest[0]}" if rest else first
    return first
