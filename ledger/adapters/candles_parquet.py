"""Read candle Parquet files through DuckDB, with exactly the CSV loader's checks.

The file's columns ``timestamp, open, high, low, close, volume`` (any order, any case; other
columns are ignored) are rendered as the canonical CSV lines and validated by
``candles_csv.candles_from_lines``, so both formats refuse the same things with the same words;
errors name the Parquet row (1 is the first row under the schema).

Exactness, by column type:

- ``DECIMAL`` and integer columns are exact; ``VARCHAR`` is read as written (like a CSV field).
- ``DOUBLE`` values are written as the shortest decimal that round-trips to the float64 (Python's
  ``repr``), which is the exchange's own decimal whenever it had at most 15 significant digits,
  as ``shared/data/MANIFEST.md`` documents for the freqtrade files. ``FLOAT`` (32-bit) is
  refused: it cannot hold a price like 105573.73.
- Numbers are written without trailing zeros (``DECIMAL(18,8)`` 105573.73000000 is 105573.73),
  the shared data's convention, so a Parquet copy of a CSV file gives the same prices.
- ``timestamp`` is integer epoch milliseconds, or a Parquet ``TIMESTAMP`` (UTC).

The digest is the sha256 of the Parquet file's bytes: a replay re-reads the same file.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import duckdb

from ledger.adapters.candles_csv import COLUMNS, candles_from_lines, plain_decimal
from ledger.application.candles import Candles
from ledger.domain.errors import DataFileError

PARQUET_MAGIC = b"PAR1"
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE")
_NUMBER_TYPES = ("DOUBLE", "VARCHAR", "HUGEINT", *_INTEGER_TYPES)


def is_parquet(head: bytes) -> bool:
    """Return whether a file starting with ``head`` is Parquet (its ``PAR1`` magic)."""
    return head[: len(PARQUET_MAGIC)] == PARQUET_MAGIC


def load_parquet_candles(path: Path, *, label: str | None = None) -> Candles:
    """Return the validated candles of the Parquet file ``path``.

    Raises:
        DataFileError: unreadable, truncated or corrupt file, a missing column, a column type
            that cannot hold exact prices, or any row the CSV loader would refuse.
    """
    raw = _read_bytes(path)
    if not is_parquet(raw) or raw[-len(PARQUET_MAGIC) :] != PARQUET_MAGIC or len(raw) < 12:  # noqa: PLR2004 - two magics and a footer length
        msg = (
            f"{path}: the Parquet file is truncated or corrupt (it must start and end with PAR1); "
            "copy or export the file again"
        )
        raise DataFileError(msg)
    rows = _query_rows(path)
    lines = [",".join(COLUMNS), *(",".join(_text(value) for value in row) for row in rows)]
    if len(lines) == 1:
        msg = f"{path}: the Parquet file has no rows; give at least two candles"
        raise DataFileError(msg)
    return candles_from_lines(
        path,
        lines,
        digest=hashlib.sha256(raw).hexdigest(),
        label=label,
        where=lambda number: f"{path}: row {number - 1}",
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        msg = f"--data: {path} does not exist; give the path of a candle Parquet file"
        raise DataFileError(msg) from e
    except OSError as e:
        msg = f"--data: cannot read {path} ({e.strerror}); check the path and its permissions"
        raise DataFileError(msg) from e


def _query_rows(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect() as connection:
        try:
            schema = connection.execute(
                "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
                [str(path)],
            ).fetchall()
            columns = _select_list(path, {str(name).lower(): (str(name), str(kind)) for name, kind in schema})
            return connection.execute(
                f"SELECT {columns} FROM read_parquet(?)",  # noqa: S608 - quoted column names from the file's schema
                [str(path)],
            ).fetchall()
        except duckdb.Error as e:
            reason = str(e).split("\n", 1)[0]
            msg = f"{path}: not a readable Parquet file ({reason}); copy or export the file again"
            raise DataFileError(msg) from e


def _select_list(path: Path, schema: dict[str, tuple[str, str]]) -> str:
    missing = [c for c in COLUMNS if c not in schema]
    if missing:
        msg = (
            f"{path}: missing column(s) {', '.join(missing)}; the Parquet schema must name "
            f"{','.join(COLUMNS)}"
        )
        raise DataFileError(msg)
    expressions = []
    for column in COLUMNS:
        name, kind = schema[column]
        quoted = '"' + name.replace('"', '""') + '"'
        if column == "timestamp" and kind in _TIMESTAMP_TYPES:
            expressions.append(f"epoch_ms({quoted})")
        elif kind in _NUMBER_TYPES or kind.startswith("DECIMAL"):
            expressions.append(quoted)
        else:
            msg = (
                f"{path}: column {name} is {kind}, which cannot hold exact "
                f"{'epoch milliseconds' if column == 'timestamp' else 'prices'}; store "
                f"{'BIGINT or TIMESTAMP' if column == 'timestamp' else 'DECIMAL, DOUBLE or strings'}"
            )
            raise DataFileError(msg)
    return ", ".join(expressions)


def _text(value: object) -> str:
    # The CSV field this value stands for: exact, plain, without trailing zeros (see above).
    if isinstance(value, str):
        return value
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    text = repr(value)  # a float64: its shortest round-trip decimal ('nan' and 'inf' stay words)
    if text.endswith(".0"):
        return text[:-2]
    if "e" in text:
        return plain_decimal(Decimal(text))
    return text
