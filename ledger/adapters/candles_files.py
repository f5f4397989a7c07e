"""Open a candle file of any supported format: CSV (optionally gzip'd) or Parquet.

The format comes from the file's first bytes (Parquet's ``PAR1`` magic), then its name: a
``.parquet`` file without the magic is a broken Parquet file, not a CSV one.
"""

from __future__ import annotations

from pathlib import Path

from ledger.adapters import candles_csv, candles_parquet
from ledger.application.candles import Candles
from ledger.domain.errors import DataFileError


def load_candles(path: Path, *, label: str | None = None) -> Candles:
    """Return the validated candles of the CSV or Parquet file ``path``.

    Args:
        path: the candle file.
        label: recorded as the run's data source; default: the file's name.

    Raises:
        DataFileError: the file is missing, unreadable, malformed or truncated.
    """
    try:
        with path.open("rb") as file:
            head = file.read(len(candles_parquet.PARQUET_MAGIC))
    except FileNotFoundError as e:
        msg = f"--data: {path} does not exist; give the path of a candle CSV or Parquet file"
        raise DataFileError(msg) from e
    except OSError as e:
        msg = f"--data: cannot read {path} ({e.strerror}); check the path and its permissions"
        raise DataFileError(msg) from e
    if candles_parquet.is_parquet(head) or path.suffix.lower() == ".parquet":
        return candles_parquet.load_parquet_candles(path, label=label)
    return candles_csv.load_candles(path, label=label)
