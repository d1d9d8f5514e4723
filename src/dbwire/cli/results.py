"""Result rows as text, streamed: CSV and JSON write each batch as it arrives.

Values: timestamps in ISO 8601 (`T` in JSON), bytes as base64 in JSON and `\\x` hex in
CSV and tables (as psql shows bytea), intervals as ISO 8601 durations (`P1DT2H`),
decimals and UUIDs as their exact text.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any


def iso_duration(value: dt.timedelta) -> str:
    """A timedelta as an ISO 8601 duration: `P1D`, `PT1H30M`, `-PT0.5S`, `PT0S`."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    days = value.days
    seconds = value.seconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    second_text = f"{secs}.{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if secs or value.microseconds:
        time += f"{second_text or secs}S"
    text = f"P{days}D" if days else "P"
    if time:
        text += f"T{time}"
    return sign + (text if text != "P" else "PT0S")


def json_value(value: Any) -> Any:
    """A value JSON can carry without losing what it is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def text_value(value: Any) -> str:
    """A value as one CSV or table cell (NULL is the empty string; tables say NULL)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(json_value(value))
    return str(value)


Write = Callable[[str], None]


def write_csv(
    write: Write, columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]
) -> int:
    """Header, then each batch as one write; returns the row count."""
    count = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    write(buffer.getvalue())
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([text_value(v) for v in row] for row in batch)
        count += len(batch)
        write(buffer.getvalue())
    return count


def write_json(
    write: Write, columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]
) -> int:
    """A JSON array of objects, one batch per write; returns the row count."""
    count = 0
    write("[")
    for batch in batches:
        parts = []
        for row in batch:
            item = {c: json_value(v) for c, v in zip(columns, row, strict=True)}
            parts.append(("\n  " if count == 0 else ",\n  ") + json.dumps(item))
            count += 1
        write("".join(parts))
    write("\n]\n" if count else "]\n")
    return count
