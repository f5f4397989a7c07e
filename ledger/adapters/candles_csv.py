"""Read candle files (CSV, optionally gzip'd) into exact integer series, refusing bad data.

Every refusal is one sentence naming the file, the line, the field and the fix; nothing is
returned (and so nothing is written) unless the whole file is valid.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import re
import zlib
from array import array
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from ledger.adapters.candles_fast import ParsedRows, parse_body
from ledger.application.candles import Candles
from ledger.domain.errors import DataFileError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
# Why 12: prices with more decimals than any venue's tick would overflow int64 units.
PRICE_SCALE_MAX = 12
_CANONICAL_HEADER = ",".join(COLUMNS).encode() + b"\n"
# Why 2**62: prices become int64 units and SMA sums multiply them; keep clear of 2**63.
PRICE_UNITS_MAX = 2**62


def load_candles(path: Path, *, label: str | None = None) -> Candles:
    """Return the validated candles of ``path`` (CSV with the header ``COLUMNS``).

    The digest is the sha256 of the file's bytes after gzip decompression.

    Raises:
        DataFileError: missing, truncated, malformed or unsorted file, or impossible prices.
    """
    raw = _read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    if raw.startswith(_CANONICAL_HEADER):  # the common case: no Python work per row
        parsed = parse_body(raw, len(_CANONICAL_HEADER))
        fast = None if parsed is None else _checked_series(parsed, label or path.name, digest)
        if fast is not None:
            return fast
    text = _decode(path, raw)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        msg = f"{path}: the file is empty; give a CSV with the header {','.join(COLUMNS)}"
        raise DataFileError(msg)
    return candles_from_lines(path, lines, digest=digest, label=label)


def candles_from_lines(
    path: Path,
    lines: list[str],
    *,
    digest: str,
    label: str | None = None,
    where: Callable[[int], str] | None = None,
) -> Candles:
    """Return the validated candles of CSV ``lines`` (a header, then one row per line).

    Args:
        path: the file the lines came from, named in every error.
        lines: the header line and the rows, without line ends.
        digest: recorded as the series' digest (what a replay checks the file against).
        label: recorded as the data source; default: the file's name.
        where: names line ``n`` (1 is the header) in errors; default ``"{path}:{n}"``.

    Raises:
        DataFileError: a missing column, a malformed or unsorted row, or impossible prices.
    """
    index = _header(path, lines[0])
    fast = _fast_series(lines, index, label or path.name, digest)
    if fast is not None:
        return fast
    # The careful path: row by row with Decimal, raising at the first bad field.
    place = where or functools.partial(_line_of, path)
    times, prices, scale, volumes = _rows(path, place, lines, index)
    candles = _series(path, place, label or path.name, digest, (times, prices, scale))
    return _with_volumes(candles, volumes)


def plain_decimal(value: Decimal) -> str:
    """Return ``value`` as a canonical field: no exponent, no trailing zeros (``105597.1``).

    Non-finite values keep their words (``NaN``) so the loader can name them.
    """
    # String work, not Decimal.normalize(), which rounds to the context's precision.
    if not value.is_finite():
        return str(value)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _line_of(path: Path, number: int) -> str:
    return f"{path}:{number}"


_PLAIN_ROW = re.compile(
    r"(\d+),(\d+)(?:\.(\d+))?,(\d+)(?:\.(\d+))?,(\d+)(?:\.(\d+))?,(\d+)(?:\.(\d+))?,(\d+)(?:\.(\d+))?"
)


def _fast_series(lines: list[str], index: list[int], label: str, digest: str) -> Candles | None:
    # Files in the canonical column order with plain decimal strings (the shared data and
    # the bundled sample) are parsed as integers without Decimal; anything else, or any row
    # that fails a check, returns None so the careful path reports the exact line and field.
    if index != list(range(len(COLUMNS))) or len(lines) < 3:  # noqa: PLR2004 - header + 2 rows
        return None
    parsed = _plain_units(lines)
    return None if parsed is None else _checked_series(parsed, label, digest)


def _checked_series(parsed: ParsedRows, label: str, digest: str) -> Candles | None:
    # The series of already-parsed units if every row is consistent, else None (the careful
    # path then names the first bad row).
    stamps, o, h, lo, c, volume = parsed.columns
    if stamps.size < 2:  # noqa: PLR2004 - the careful path explains why two are needed
        return None
    consistent = (
        bool(np.all(np.diff(stamps) > 0))
        and bool(np.all(np.minimum(np.minimum(o, h), np.minimum(lo, c)) > 0))
        and bool(np.all(h >= np.maximum(o, c)))
        and bool(np.all(lo <= np.minimum(o, c)))
    )
    if not consistent:
        return None
    scale = int(parsed.decimals[1:5].max())
    volume_scale = int(parsed.decimals[5])
    divisor = 10 ** (_FAST_SCALE - scale)
    return Candles(
        source=label,
        digest=digest,
        open_time_ms=stamps,
        open=o // divisor,
        high=h // divisor,
        low=lo // divisor,
        close=c // divisor,
        price_scale=scale,
        interval_ms=int(np.min(np.diff(stamps))),
        volume=volume // 10 ** (_FAST_SCALE - volume_scale),
        volume_scale=volume_scale,
    )


# The fast path reads prices at 8 decimals (a whole satoshi), rows straight into int64 arrays:
# keeping every row's strings until the end held ~0.7 GB for a year of 1m bars. Prices with
# more decimals, or more than 10 integer digits, take the careful path.
_FAST_SCALE = 8
_FAST_INT_DIGITS = 10


def _plain_units(lines: list[str]) -> ParsedRows | None:
    # Returns timestamps, prices and volumes at _FAST_SCALE decimals, and the most decimals
    # written in prices and in volumes (the scales the careful path would choose, so both paths
    # give the same Decimals).
    stamps = array("q")
    columns = [array("q"), array("q"), array("q"), array("q"), array("q")]
    pad = "0" * _FAST_SCALE
    unit = 10**_FAST_SCALE
    written = 0
    volume_written = 0
    for line in itertools.islice(lines, 1, None):
        match = _PLAIN_ROW.fullmatch(line)
        if match is None:
            return None
        groups: tuple[str, ...] = match.groups(default="")
        stamps.append(int(groups[0]))
        for column, position in zip(columns, (1, 3, 5, 7, 9), strict=True):
            whole, frac = groups[position], groups[position + 1]
            if len(whole) > _FAST_INT_DIGITS or len(frac) > _FAST_SCALE:
                return None
            if position == 9:  # noqa: PLR2004 - the volume's group
                volume_written = max(volume_written, len(frac))
            else:
                written = max(written, len(frac))
            column.append(int(whole) * unit + int((frac + pad)[:_FAST_SCALE]))
    return ParsedRows(
        [np.frombuffer(column, dtype=np.int64).copy() for column in (stamps, *columns)],
        np.array([0, written, written, written, written, volume_written], dtype=np.int64),
    )


def _read_bytes(path: Path) -> bytes:
    return read_data_file(path, what="a candle CSV file", option="--data: ")


def read_data_file(path: Path, *, what: str, option: str = "") -> bytes:
    """Return a data file's bytes, gunzipped when they are gzip's (market-data files of any kind).

    Raises:
        DataFileError: the file is missing or unreadable, or its gzip data is truncated;
            ``option`` prefixes the message and ``what`` names the file the user should give.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        msg = f"{option}{path} does not exist; give the path of {what}"
        raise DataFileError(msg) from e
    except OSError as e:
        msg = f"{option}cannot read {path} ({e.strerror}); check the path and its permissions"
        raise DataFileError(msg) from e
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        msg = f"{path}: the gzip data is truncated or corrupt ({e}); copy the file again"
        raise DataFileError(msg) from e


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as e:
        msg = f"{path}: byte {e.start} is not UTF-8; save the file as UTF-8 CSV"
        raise DataFileError(msg) from e


def _header(path: Path, line: str) -> list[int]:
    names = [name.strip().lower() for name in line.split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        msg = f"{path}:1: missing column(s) {', '.join(missing)}; the header must name {','.join(COLUMNS)}"
        raise DataFileError(msg)
    return [names.index(c) for c in COLUMNS]


def _rows(
    path: Path, where: Callable[[int], str], lines: list[str], index: list[int]
) -> tuple[list[int], list[list[Decimal]], int, list[Decimal]]:
    times: list[int] = []
    prices: list[list[Decimal]] = [[], [], [], []]
    volumes: list[Decimal] = []
    width = len(lines[0].split(","))
    scale = 0
    previous = -1
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) != width:
            msg = (
                f"{where(number)}: expected {width} fields, found {len(fields)}; "
                "the row is truncated or malformed"
            )
            raise DataFileError(msg)
        stamp = _timestamp(where(number), fields[index[0]])
        if stamp <= previous:
            word = "duplicates" if stamp == previous else "is earlier than"
            msg = (
                f"{where(number)}: timestamp {stamp} {word} the previous row; "
                "sort the file by time and drop duplicates"
            )
            raise DataFileError(msg)
        previous = stamp
        o, h, lo, c = (
            _price(where(number), name, fields[index[i + 1]]) for i, name in enumerate(PRICE_COLUMNS)
        )
        volume = _number(where(number), "volume", fields[index[5]])
        if volume < 0:
            msg = f"{where(number)}: volume {volume} is negative; fix or remove the row"
            raise DataFileError(msg)
        if h < max(o, c) or lo > min(o, c):
            msg = f"{where(number)}: high {h} / low {lo} do not contain open {o} and close {c}; fix the row"
            raise DataFileError(msg)
        volumes.append(volume)
        for series, value in zip(prices, (o, h, lo, c), strict=True):
            series.append(value)
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > scale:
                scale = -exponent
        times.append(stamp)
    if not times:
        msg = f"{path}: the header has no rows under it; give at least two candles"
        raise DataFileError(msg)
    if scale > PRICE_SCALE_MAX:
        msg = (
            f"{path}: prices carry {scale} decimals, more than {PRICE_SCALE_MAX}; "
            "round them to the venue's tick"
        )
        raise DataFileError(msg)
    return times, prices, scale, volumes


def _with_volumes(candles: Candles, volumes: list[Decimal]) -> Candles:
    # Volumes as integer units at the most decimals written; a series whose units would not fit
    # int64 keeps no volumes (only the fill models that read them refuse it, by name).
    scale = max(max(0, -int(v.as_tuple().exponent)) for v in volumes)
    units = [int(v.scaleb(scale)) for v in volumes]
    if scale > PRICE_SCALE_MAX or max(units) >= PRICE_UNITS_MAX:
        return candles
    return replace(candles, volume=np.array(units, dtype=np.int64), volume_scale=scale)


def _timestamp(place: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        msg = f"{place}: timestamp {text!r} is not integer epoch milliseconds; fix the row"
        raise DataFileError(msg) from e


def _number(place: str, name: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        msg = f"{place}: {name} {text!r} is not a decimal number; fix the row"
        raise DataFileError(msg) from e
    if not value.is_finite():
        msg = f"{place}: {name} is {text}; prices and volumes must be finite numbers"
        raise DataFileError(msg)
    return value


def _price(place: str, name: str, text: str) -> Decimal:
    value = _number(place, name, text)
    if value <= 0:
        msg = f"{place}: {name} {text} is not positive; prices must be above zero"
        raise DataFileError(msg)
    return value


def _series(
    path: Path,
    where: Callable[[int], str],
    label: str,
    digest: str,
    rows: tuple[list[int], list[list[Decimal]], int],
) -> Candles:
    times, prices, scale = rows
    if len(times) < 2:  # noqa: PLR2004 - a fill needs a next bar
        msg = f"{path}: only {len(times)} candle; a backtest needs at least two"
        raise DataFileError(msg)
    stamps = np.array(times, dtype=np.int64)
    as_units = [[int(v.scaleb(scale)) for v in series] for series in prices]
    for name, series in zip(PRICE_COLUMNS, as_units, strict=True):
        biggest = max(series)
        if biggest >= PRICE_UNITS_MAX:
            number = series.index(biggest) + 2
            msg = (
                f"{where(number)}: {name} {prices[PRICE_COLUMNS.index(name)][number - 2]} is too large "
                f"at {scale} decimals; fix the row or rescale the prices"
            )
            raise DataFileError(msg)
    units = [np.array(series, dtype=np.int64) for series in as_units]
    interval = int(np.min(np.diff(stamps)))
    return Candles(
        source=label,
        digest=digest,
        open_time_ms=stamps,
        open=units[0],
        high=units[1],
        low=units[2],
        close=units[3],
        price_scale=scale,
        interval_ms=interval,
    )
