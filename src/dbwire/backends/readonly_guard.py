"""The read-only statement guard: refuses, before it reaches the server, any statement
that is not a plain read.

The rule fails closed. A statement passes only when

* it is ONE statement: no `;` outside string literals, quoted identifiers, dollar quotes
  and comments is followed by anything but whitespace and comments;
* its first keyword (after whitespace, comments and opening parentheses) is in the
  allow-list of reads for its dialect (`SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`,
  `EXPLAIN <read>`, `DESCRIBE`/`DESC`, `PRAGMA <known read pragma>` without `=`,
  DuckDB's `SUMMARIZE` and `FROM`, and the savepoint statements SQLAlchemy's
  begin_nested() sends);
* it holds no bare `INTO` (`SELECT ... INTO new_table`, `INTO OUTFILE`), no `INSERT`,
  `DELETE` or `MERGE` (data-modifying CTEs), no `UPDATE` except `FOR [NO KEY] UPDATE`,
  and calls none of the functions in `_REFUSED_FUNCTIONS` (session state, other
  connections, server files).

Where the server's lexer could read the text differently from this one (backslash
escapes, nested comments, MySQL's `--` rule), the text is scanned once per plausible
reading and must pass every one; MySQL's executable comments (`/*! ... */`) are refused.

What the guard cannot know about is a function with side effects that is not on the
list (a user-defined one, an extension's): the database's own read-only transaction
stops writes to data there, and only privileges stop everything (README, `dbwire check`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dbwire.errors import ReadOnlyError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# First keywords of reads, per dialect family. Anything else is refused.
_COMMON_READS = frozenset({"SELECT", "WITH", "VALUES"})
_ALLOWED: dict[str, frozenset[str]] = {
    "postgresql": _COMMON_READS | {"TABLE", "SHOW", "EXPLAIN"},
    "mysql": _COMMON_READS | {"TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"},
    "sqlite": _COMMON_READS | {"EXPLAIN", "PRAGMA"},
    "duckdb": _COMMON_READS
    | {"TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "PRAGMA", "SUMMARIZE", "FROM"},
}
_ALLOWED["mariadb"] = _ALLOWED["mysql"]
_GENERIC = _COMMON_READS | {"TABLE", "SHOW", "EXPLAIN"}
# Savepoints never end the transaction; SQLAlchemy's begin_nested() sends them as SQL.
_SAVEPOINT_WORDS = frozenset({"SAVEPOINT", "RELEASE"})

# What EXPLAIN / DESCRIBE may look at; EXPLAIN ANALYZE runs its statement, so only reads.
_EXPLAINABLE = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM"})
_EXPLAIN_OPTIONS = frozenset(
    {
        "ANALYZE",
        "ANALYSE",
        "VERBOSE",
        "EXTENDED",
        "PARTITIONS",
        "FORMAT",
        "QUERY",
        "PLAN",
        "JSON",
        "TREE",
        "TRADITIONAL",
        "TEXT",
        "XML",
        "YAML",
    }
)
# Words that start a statement: `DESCRIBE <one of these>` explains it, so it is refused.
_STATEMENT_WORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "REPLACE",
        "MERGE",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "CALL",
        "DO",
        "LOAD",
        "COPY",
        "FOR",
    }
)
# Functions that change session state, reach other connections or write files.
_REFUSED_FUNCTIONS = frozenset(
    {
        "set_config",  # PostgreSQL: SET by another name (default_transaction_read_only)
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_send_query",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_advisory_lock",  # session-level locks outlive the session in the pool
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "lo_import",
        "lo_export",
        "lo_unlink",
        "get_lock",  # MySQL: a session-level lock, same reason
        "load_extension",  # SQLite
        "checkpoint",  # DuckDB
        "force_checkpoint",
    }
)

# PRAGMAs that only read. The ones taking an argument in parentheses are listed apart:
# for a setting pragma `PRAGMA name(value)` sets it, exactly like `PRAGMA name = value`.
READ_PRAGMAS_WITH_ARGUMENT = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "storage_info",  # DuckDB
        "show",
    }
)
READ_PRAGMAS = READ_PRAGMAS_WITH_ARGUMENT | frozenset(
    {
        "database_list",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
        "compile_options",
        "user_version",
        "schema_version",
        "data_version",
        "application_id",
        "page_count",
        "page_size",
        "freelist_count",
        "encoding",
        "journal_mode",
        "foreign_keys",
        "query_only",
        "busy_timeout",
        "cache_size",
        "synchronous",
        "auto_vacuum",
        "show_tables",  # DuckDB
        "show_tables_expanded",
        "database_size",
        "version",
        "platform",
        "metadata_info",
        "user_agent",
    }
)


@dataclass(frozen=True)
class _Lexer:
    """How one reading of the SQL text treats quotes and comments."""

    single_backslash: bool = False  # '...' takes \-escapes (MySQL; PostgreSQL scs=off)
    double_backslash: bool = False  # "..." takes \-escapes (MySQL strings)
    e_strings: bool = True  # E'...' takes \-escapes (PostgreSQL, DuckDB)
    dollar_quotes: bool = True  # $tag$ ... $tag$
    nested_comments: bool = True  # /* /* */ */ (PostgreSQL, DuckDB)
    hash_comments: bool = False  # '# ...' (MySQL)
    dash_needs_space: bool = False  # MySQL: '--' starts a comment only before a space
    brackets: bool = False  # [identifier] (SQLite)
    backticks: bool = False  # `identifier` (MySQL, SQLite)
    executable_comments: bool = False  # MySQL runs the text of /*! ... */
    # MariaDB with multi-statements runs a comment after the last ';' as one more statement.
    comment_after_end: bool = True


_PG = _Lexer()
_MYSQL = _Lexer(
    single_backslash=True,
    double_backslash=True,
    e_strings=False,
    dollar_quotes=False,
    nested_comments=False,
    hash_comments=True,
    dash_needs_space=True,
    backticks=True,
    comment_after_end=False,
    executable_comments=True,
)
_SQLITE = _Lexer(
    e_strings=False, dollar_quotes=False, nested_comments=False, brackets=True, backticks=True
)
_LEXERS = {
    "postgresql": _PG,
    "duckdb": _PG,
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "sqlite": _SQLITE,
}


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A word, and a dollar-quote tag: compiled at the first check, not at import.

    re takes about 15 ms to compile these classes reaching U+10FFFF, and most processes
    that import the guard with the Database (a collect, a health check) never check one.
    """
    word = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
    tag = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
    return word, tag


_SPACE = " \t\n\r\f\v"


_UNTERMINATED = "(unterminated)"


class _Refused(Exception):
    """Internal: the statement is refused; args[0] is the keyword, args[1] the reason."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "ident" (quoted identifier), "string", "punct", "other"
    value: str  # words upper-cased, quoted identifiers as written, punctuation as is


def quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int | None:
    """The index after the literal or identifier opened by sql[start] == quote; None when
    it is never closed. Shared with the CLI's statement splitter, so both read SQL alike."""
    i = start + 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # a doubled quote stands for itself
                i += 2
                continue
            return i + 1
        i += 1
    return None


def block_comment_end(sql: str, start: int, *, nested: bool) -> int | None:
    """The index after the /* comment opened at sql[start]; None when it is never closed."""
    depth = 0
    i = start
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            if depth and not nested:
                i += 2
                continue
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return None


def _skip_quoted(sql: str, start: int, quote: str, backslash: bool) -> int:
    end = quoted_end(sql, start, quote, backslash=backslash)
    if end is None:
        raise _Refused(_UNTERMINATED, f"an unterminated {quote} quote")
    return end


def _skip_block_comment(sql: str, start: int, nested: bool) -> int:
    end = block_comment_end(sql, start, nested=nested)
    if end is None:
        raise _Refused(_UNTERMINATED, "an unterminated /* comment")
    return end


def _tokens(sql: str, lexer: _Lexer) -> list[_Token]:
    """The tokens of the first statement; refuses if anything but comments follows a `;`."""
    word_pattern, tag_pattern = _patterns()
    out: list[_Token] = []
    i = 0
    n = len(sql)
    ended = False  # a top-level ';' was seen: only whitespace and comments may follow
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i += 1
            continue
        if ended and not lexer.comment_after_end:
            raise _Refused("a second statement", "several statements in one string")
        if c == "-" and sql.startswith("--", i):
            after = sql[i + 2 : i + 3]
            if not lexer.dash_needs_space or after == "" or after in _SPACE:
                end = sql.find("\n", i)
                i = n if end < 0 else end + 1
                continue
        if c == "#" and lexer.hash_comments:
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            if lexer.executable_comments and (
                sql.startswith("/*!", i) or sql[i + 2 : i + 4].upper() == "M!"
            ):
                raise _Refused("/*!", "a MySQL executable comment")
            i = _skip_block_comment(sql, i, lexer.nested_comments)
            continue
        if c == ";" and not ended:
            ended = True
            i += 1
            continue
        if ended:
            # Only an unquoted word is named: a quoted one could be anything (a password).
            word = word_pattern.match(sql, i)
            named = word.group().upper() if word is not None else "a second statement"
            raise _Refused(named, "several statements in one string")
        if c == "'":
            end = _skip_quoted(sql, i, "'", lexer.single_backslash)
            out.append(_Token("string", ""))
            i = end
            continue
        if c == '"':
            end = _skip_quoted(sql, i, '"', lexer.double_backslash)
            out.append(_Token("ident", sql[i + 1 : end - 1].replace('""', '"')))
            i = end
            continue
        if c == "`" and lexer.backticks:
            end = _skip_quoted(sql, i, "`", False)
            out.append(_Token("ident", sql[i + 1 : end - 1].replace("``", "`")))
            i = end
            continue
        if c == "[" and lexer.brackets:
            end = sql.find("]", i + 1)
            if end < 0:
                raise _Refused(_UNTERMINATED, "an unterminated [ identifier")
            out.append(_Token("ident", sql[i + 1 : end]))
            i = end + 1
            continue
        if c == "$" and lexer.dollar_quotes:
            tag = tag_pattern.match(sql, i)
            if tag is not None:
                close = sql.find(tag.group(), tag.end())
                if close < 0:
                    raise _Refused(_UNTERMINATED, "an unterminated dollar quote")
                out.append(_Token("string", ""))
                i = close + len(tag.group())
                continue
        word = word_pattern.match(sql, i)
        if word is not None:
            text = word.group()
            end = word.end()
            if lexer.e_strings and text in ("E", "e") and end < n and sql[end] == "'":
                end = _skip_quoted(sql, end, "'", True)
                out.append(_Token("string", ""))
            else:
                out.append(_Token("word", text.upper()))
            i = end
            continue
        out.append(_Token("punct" if c in "(),.=;" else "other", c))
        i += 1
    return out


def _readings(sql: str, dialect: str) -> list[_Lexer]:
    """Every plausible reading of sql by this dialect's server; each must pass."""
    base = _LEXERS.get(dialect)
    # A third-party dialect: the strictest union of every reading.
    candidates = [_PG, _MYSQL, _SQLITE] if base is None else [base]
    readings = list(candidates)
    if "\\" in sql:
        # MySQL with NO_BACKSLASH_ESCAPES reads '\' as a whole literal; PostgreSQL with
        # standard_conforming_strings off reads it as an escape.
        if _MYSQL in candidates:
            readings.append(replace(_MYSQL, single_backslash=False, double_backslash=False))
        if base is None or dialect == "postgresql":  # DuckDB has no such setting
            readings.append(replace(_PG, single_backslash=True))
    return readings


def _classify(tokens: list[_Token], dialect: str) -> None:
    """Refuse unless the tokens are one read (see the module docstring)."""
    i = 0
    while i < len(tokens) and tokens[i].value == "(":
        i += 1
    if i == len(tokens):
        raise _Refused("(empty)", "no statement")
    first = tokens[i]
    if first.kind != "word":
        named = first.value if first.kind in ("punct", "other") else f"a {first.kind}"
        raise _Refused(named, "a statement must start with a keyword")
    keyword = first.value
    allowed = _ALLOWED.get(dialect, _GENERIC)
    rest = tokens[i + 1 :]
    if keyword in _SAVEPOINT_WORDS or (
        keyword == "ROLLBACK" and any(t.kind == "word" and t.value == "TO" for t in rest[:2])
    ):
        _check_savepoint(keyword, rest)
        return
    if keyword not in allowed:
        raise _Refused(keyword, "not a read")
    if keyword == "PRAGMA":
        _check_pragma(rest)
        return
    if keyword == "EXPLAIN":
        _check_explain(rest)
    elif keyword in ("DESCRIBE", "DESC") and rest:
        nxt = rest[0]
        explains_statement = nxt.value in _STATEMENT_WORDS or nxt.value in _EXPLAIN_OPTIONS
        if nxt.kind == "word" and explains_statement:
            raise _Refused(f"{keyword} {nxt.value}", "DESCRIBE of a statement runs it")
    _check_body(tokens[i:])


def _check_savepoint(keyword: str, rest: list[_Token]) -> None:
    # SAVEPOINT name | RELEASE [SAVEPOINT] name | ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name
    words = [t.value for t in rest if t.kind == "word"]
    if len(rest) > 4 or any(t.kind not in ("word", "ident") for t in rest) or not words:
        raise _Refused(keyword, "not a plain savepoint statement")


def _check_pragma(rest: list[_Token]) -> None:
    # PRAGMA [schema.]name [( argument )], never `= value`
    if len(rest) >= 2 and rest[1].value == ".":
        rest = rest[2:]
    if not rest or rest[0].kind not in ("word", "ident"):
        raise _Refused("PRAGMA", "a PRAGMA needs a name")
    name = rest[0].value.lower()
    if rest[0].kind != "word" and name not in READ_PRAGMAS:
        raise _Refused("PRAGMA", "not a read-only pragma")
    tail = rest[1:]
    if name not in READ_PRAGMAS:
        raise _Refused(f"PRAGMA {name}", "not a read-only pragma")
    if any(t.value == "=" for t in tail):
        raise _Refused(f"PRAGMA {name}", "a pragma with '=' sets it")
    if tail:
        inner = tail[1:-1]
        shape_ok = (
            name in READ_PRAGMAS_WITH_ARGUMENT
            and tail[0].value == "("
            and tail[-1].value == ")"
            and all(t.value not in ("(", ")") for t in inner)
        )
        if not shape_ok:
            raise _Refused(f"PRAGMA {name}", "a pragma with an argument sets it")


def _check_explain(rest: list[_Token]) -> None:
    depth = 0
    for token in rest:
        if token.value == "(":
            depth += 1
        elif token.value == ")":
            depth -= 1
        elif depth == 0 and token.kind == "word":
            if token.value in _EXPLAIN_OPTIONS:
                continue
            if token.value in _EXPLAINABLE:
                return
            raise _Refused(f"EXPLAIN {token.value}", "EXPLAIN ANALYZE runs its statement")
    raise _Refused("EXPLAIN", "nothing to explain")


def _check_body(tokens: list[_Token]) -> None:
    previous = ""
    for index, token in enumerate(tokens):
        value = token.value
        if token.kind == "word":
            if value == "INTO":
                raise _Refused("INTO", "SELECT ... INTO creates a table or writes a file")
            if value in ("INSERT", "DELETE", "MERGE") or (
                value == "UPDATE" and previous not in ("FOR", "KEY")
            ):
                raise _Refused(value, "a data-modifying statement inside a read")
        if token.kind in ("word", "ident"):
            name = value.lower()
            if name in _REFUSED_FUNCTIONS:
                following = tokens[index + 1] if index + 1 < len(tokens) else None
                if following is not None and following.value == "(":
                    raise _Refused(f"{name}()", "a function that changes session state")
        previous = value if token.kind == "word" else ""


@functools.lru_cache(maxsize=2048)
def _verdict(sql: str, dialect: str) -> tuple[str, str] | None:
    """None when sql is one read; otherwise (first keyword, reason). Cached: ORM and
    application statements repeat."""
    unterminated: list[tuple[str, str]] = []
    readings = _readings(sql, dialect)
    for lexer in readings:
        try:
            _classify(_tokens(sql, lexer), dialect)
        except _Refused as refused:
            keyword, reason = (str(arg) for arg in refused.args)
            if keyword != _UNTERMINATED:
                return keyword[:40], reason
            # A server reading the text this way rejects it as a syntax error, which is
            # safe; only when no reading ends its literals is it refused (failing closed).
            unterminated.append((keyword, reason))
    if len(unterminated) == len(readings):
        return unterminated[0]
    return None


def check_statement(sql: str, *, database: str, dialect: str) -> None:
    """Raise ReadOnlyError unless sql is a single read statement (module docstring)."""
    verdict = _verdict(sql, dialect)
    if verdict is None:
        return
    keyword, reason = verdict
    raise ReadOnlyError(
        f"database {database!r} is read-only: refused {keyword} before it reached the "
        f"server ({reason}). Read-only mode runs one SELECT, WITH, VALUES, SHOW, EXPLAIN "
        "or DESCRIBE statement at a time; run writes in session(readonly=False) on a "
        "database without readonly = true",
        database=database,
    )


def install(engine: Engine, *, database: str, dialect: str) -> None:
    """Check every statement SQLAlchemy sends through this engine's cursors.

    dbwire's own read-only setup (begin_readonly) runs on the DBAPI connection directly
    and is never seen here; SQLAlchemy's BEGIN/COMMIT/ROLLBACK go through the DBAPI's
    methods, not cursors.
    """

    def _guard(
        _conn: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> tuple[str, Any]:
        check_statement(statement, database=database, dialect=dialect)
        return statement, parameters

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", _guard, retval=True)
