"""Read recorded L2 order-book snapshots, keyed by time, for the order-book fill model.

Two CSV layouts (optionally gzip'd) are recognised by their header:

- **wide** (Tardis ``book_snapshot_N``): one snapshot per row, ``timestamp`` in epoch
  *microseconds*, then ``asks[i].price, asks[i].amount, bids[i].price, bids[i].amount`` for
  ``i = 0..N-1``, best level first; empty cells (a thin book) are skipped.
- **long** (Binance depth CSV, ``symbol,timestamp,...,side,update_type,price,qty``): one level
  per row, ``timestamp`` in epoch *milliseconds*, ``side`` ``b``/``a`` (or ``bid``/``ask``); the
  rows of one timestamp form one snapshot. Diff updates (``update_type`` other than ``snap``)
  are refused: without the snapshot they apply to they rebuild no book.

Every price and quantity is an exact ``Decimal`` from the recorded string. A snapshot must have
positive prices and quantities, bids strictly falling and asks strictly rising from the best,
and an uncrossed book (best bid below best ask); a side may be empty (a one-sided recording).
Snapshot times must strictly increase. Any violation is one ``DataFileError`` naming the file,
the line and the fix; nothing is returned unless the whole file is valid.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import itertools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ledger.adapters.candles_csv import read_data_file
from ledger.domain.errors import DataFileError

Level = tuple[Decimal, Decimal]  # (price, quantity)
_WIDE_LEVEL = re.compile(r"(asks|bids)\[(\d+)\]\.(price|amount)")
_LONG_COLUMNS = ("timestamp", "side", "price", "qty")
_SIDES = {"b": "bids", "bid": "bids", "bids": "bids", "a": "asks", "ask": "asks", "asks": "asks"}
_US_PER_MS = 1000


@dataclass(frozen=True, kw_only=True)
class BookSnapshot:
    """One recorded book: ``(price, qty)`` levels per side, best first, at ``time_us``."""

    time_us: int  # epoch microseconds, UTC (the exchange's timestamp)
    bids: tuple[Level, ...]  # highest price first
    asks: tuple[Level, ...]  # lowest price first

    @property
    def time_ms(self) -> int:
        """Return the snapshot time in epoch milliseconds (rounded down)."""
        return self.time_us // _US_PER_MS


@dataclass(frozen=True, kw_only=True)
class BookSnapshots:
    """The snapshots of one file in time order, with the file's name and sha256."""

    source: str
    digest: str  # sha256 of the file's bytes after gzip decompression
    snapshots: tuple[BookSnapshot, ...]

    def __len__(self) -> int:
        """Return the number of snapshots."""
        return len(self.snapshots)

    def at_or_before(self, time_ms: int) -> BookSnapshot | None:
        """Return the latest snapshot taken at or before ``time_ms`` (None: before the first).

        A fill at a bar's time sees the book as last recorded, never a later one.
        """
        last_us = time_ms * _US_PER_MS + _US_PER_MS - 1
        index = bisect.bisect_right(self.snapshots, last_us, key=lambda s: s.time_us) - 1
        return None if index < 0 else self.snapshots[index]


def load_order_book_snapshots(path: Path) -> BookSnapshots:
    """Return the validated snapshots of the order-book CSV ``path`` (wide or long layout).

    Raises:
        DataFileError: missing or unreadable file, unknown header, diff updates, a malformed
            level, a crossed or unsorted book, or snapshot times that do not increase.
    """
    raw = read_data_file(path, what="an order-book CSV file")
    rows = list(csv.reader(io.StringIO(_decode(path, raw))))
    if not rows:
        msg = f"{path}: the file is empty; give an order-book CSV with a header"
        raise DataFileError(msg)
    header = [name.strip() for name in rows[0]]
    if any(_WIDE_LEVEL.fullmatch(name) for name in header):
        snapshots = _wide(path, header, rows[1:])
    elif all(c in [h.lower() for h in header] for c in _LONG_COLUMNS):
        snapshots = _long(path, [h.lower() for h in header], rows[1:])
    else:
        msg = (
            f"{path}:1: unknown order-book header; give Tardis book_snapshot columns "
            "(timestamp, asks[0].price, asks[0].amount, ...) or timestamp,side,price,qty rows"
        )
        raise DataFileError(msg)
    if not snapshots:
        msg = f"{path}: the header has no rows under it; give at least one snapshot"
        raise DataFileError(msg)
    for before, after in itertools.pairwise(snapshots):
        if after[1].time_us <= before[1].time_us:
            msg = (
                f"{path}:{after[0]}: snapshot time {after[1].time_us} us is not after the previous "
                f"snapshot's {before[1].time_us} us; sort the file by time and drop duplicates"
            )
            raise DataFileError(msg)
    return BookSnapshots(
        source=path.name, digest=hashlib.sha256(raw).hexdigest(), snapshots=tuple(s for _, s in snapshots)
    )


def _wide(path: Path, header: list[str], rows: list[list[str]]) -> list[tuple[int, BookSnapshot]]:
    if "timestamp" not in header:
        msg = f"{path}:1: missing column timestamp (epoch microseconds); add it"
        raise DataFileError(msg)
    stamp = header.index("timestamp")
    columns: dict[tuple[str, int], dict[str, int]] = {}
    for position, name in enumerate(header):
        match = _WIDE_LEVEL.fullmatch(name)
        if match is not None:
            columns.setdefault((match[1], int(match[2])), {})[match[3]] = position
    for (side, depth), pair in columns.items():
        if len(pair) != 2:  # noqa: PLR2004 - a price and an amount
            msg = f"{path}:1: {side}[{depth}] needs both .price and .amount columns; add the missing one"
            raise DataFileError(msg)
    snapshots = []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            msg = f"{path}:{number}: expected {len(header)} fields, found {len(row)}; the row is truncated"
            raise DataFileError(msg)
        sides: dict[str, list[Level]] = {"bids": [], "asks": []}
        for (side, depth), where in sorted(columns.items()):
            price, amount = row[where["price"]], row[where["amount"]]
            if price.strip() == "" and amount.strip() == "":
                continue  # a thin book: fewer levels than columns
            sides[side].append(_level(path, number, f"{side}[{depth}]", price, amount))
        time_us = _integer(path, number, "timestamp", row[stamp])
        snapshots.append((number, _snapshot(path, number, time_us, sides)))
    return snapshots


def _long(path: Path, header: list[str], rows: list[list[str]]) -> list[tuple[int, BookSnapshot]]:
    at = {name: header.index(name) for name in (*_LONG_COLUMNS, "update_type") if name in header}
    groups: list[tuple[int, int, dict[str, list[Level]]]] = []  # first line, time ms, sides
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            msg = f"{path}:{number}: expected {len(header)} fields, found {len(row)}; the row is truncated"
            raise DataFileError(msg)
        kind = row[at["update_type"]].strip() if "update_type" in at else "snap"
        if kind != "snap":
            msg = (
                f"{path}:{number}: update_type {kind!r} is a diff update, not a snapshot; it cannot "
                "rebuild a book without the snapshot it applies to: give snapshot rows (update_type snap)"
            )
            raise DataFileError(msg)
        side = _SIDES.get(row[at["side"]].strip().lower())
        if side is None:
            msg = f"{path}:{number}: side {row[at['side']]!r} is not b/a (bid/ask); fix the row"
            raise DataFileError(msg)
        time_ms = _integer(path, number, "timestamp", row[at["timestamp"]])
        if not groups or groups[-1][1] != time_ms:
            groups.append((number, time_ms, {"bids": [], "asks": []}))
        groups[-1][2][side].append(_level(path, number, side, row[at["price"]], row[at["qty"]]))
    return [(line, _snapshot(path, line, time_ms * _US_PER_MS, sides)) for line, time_ms, sides in groups]


def _snapshot(path: Path, number: int, time_us: int, sides: dict[str, list[Level]]) -> BookSnapshot:
    bids, asks = sides["bids"], sides["asks"]
    for name, levels, falling in (("bids", bids, True), ("asks", asks, False)):
        for better, worse in itertools.pairwise(levels):
            if (worse[0] >= better[0]) if falling else (worse[0] <= better[0]):
                order = "falling" if falling else "rising"
                msg = (
                    f"{path}:{number}: in the snapshot of {time_us} us from this line, {name} price "
                    f"{worse[0]} after {better[0]} is not strictly {order} "
                    "from the best level; sort the levels best first and merge duplicates"
                )
                raise DataFileError(msg)
    if bids and asks and bids[0][0] >= asks[0][0]:
        msg = (
            f"{path}:{number}: the book is crossed (best bid {bids[0][0]} >= best ask {asks[0][0]}); "
            "the snapshot is corrupt: drop it"
        )
        raise DataFileError(msg)
    return BookSnapshot(time_us=time_us, bids=tuple(bids), asks=tuple(asks))


def _level(path: Path, number: int, name: str, price_text: str, qty_text: str) -> Level:
    price, qty = (
        _decimal(path, number, f"{name} price", price_text),
        _decimal(path, number, f"{name} qty", qty_text),
    )
    if price <= 0 or qty <= 0:
        msg = (
            f"{path}:{number}: {name} level {price_text} x {qty_text} is not a positive price and "
            "quantity; a snapshot holds only resting orders: fix or drop the level"
        )
        raise DataFileError(msg)
    return price, qty


def _decimal(path: Path, number: int, name: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as e:
        msg = f"{path}:{number}: {name} {text!r} is not a decimal number; fix the row"
        raise DataFileError(msg) from e
    if not value.is_finite():
        msg = f"{path}:{number}: {name} is {text}; prices and quantities must be finite numbers"
        raise DataFileError(msg)
    return value


def _integer(path: Path, number: int, name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError as e:
        msg = f"{path}:{number}: {name} {text!r} is not an integer epoch time; fix the row"
        raise DataFileError(msg) from e


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"{path}: byte {e.start} is not UTF-8; save the file as UTF-8 CSV"
        raise DataFileError(msg) from e
