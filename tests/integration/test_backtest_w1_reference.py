"""Workload W1 checked against an independent reference written from SPEC §6 alone.

The reference below imports nothing from the engine or the strategy: it reads the gzip CSV
with ``csv`` and ``Decimal``, compares SMAs through integer-exact sums (never floats), floors
quantities with ``Fraction`` and traps every inexact ``Decimal`` operation, so its numbers are
exact by construction. W1 as SPEC §6 states it:

* SMA(10) / SMA(30) on closes, d = SMA_fast - SMA_slow; buy when flat and d goes from <= 0
  to > 0; sell the whole position when long and d goes from >= 0 to < 0;
* decision at bar t's close, market order filled at bar t+1's open; a signal on the last bar
  is not filled;
* buy quantity floor(0.1 x free cash / fill price) to the 0.00001 BTC step;
* fee 0.1 % of the notional, in USDT, on each side; start with 10,000 USDT;
* an open position at the end is marked to the last close.

The real backtest runs through ``ledger.bootstrap.run_backtest_request`` into a temp SQLite
ledger; its stored ``OrderFilled`` events must equal the reference's fills exactly, and its
final equity must equal the reference's, exactly (so in particular to the cent).
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import pytest

from ledger.adapters.store import LedgerStore
from ledger.bootstrap import BacktestRequest, bundled_sample, run_backtest_request
from ledger.domain.events import DecisionMade, OrderFilled, RunEnded

FAST, SLOW = 10, 30
SIZE = Decimal("0.1")
STEP = Decimal("0.00001")
FEE_RATE = Decimal("0.001")
CASH = Decimal("10000")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
E = TypeVar("E")
# Every reference operation must be exact: Inexact is trapped, so a rounding raises.
EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, FloatOperation, DivisionByZero, Overflow])

REPO = Path(__file__).resolve().parents[2]
FULL_W1_FILE = (
    REPO.parent / "shared" / "data" / "candles" / "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"
)


@dataclass(frozen=True)
class RefFill:
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    at: datetime


@dataclass(frozen=True)
class Reference:
    bars: int
    decisions: list[tuple[datetime, str]]
    fills: list[RefFill]
    cash: Decimal
    qty: Decimal
    last_close: Decimal
    equity_final: Decimal


def _bars(path: Path) -> tuple[list[int], list[Decimal], list[Decimal]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stamps = [int(r["timestamp"]) for r in rows]
    opens = [Decimal(r["open"]) for r in rows]
    closes = [Decimal(r["close"]) for r in rows]
    return stamps, opens, closes


def _sign_of_d(closes: list[Decimal]) -> list[int | None]:
    # sign(SMA_fast - SMA_slow) = sign(sum_fast * SLOW - sum_slow * FAST): no division at all.
    signs: list[int | None] = [None] * len(closes)
    for t in range(SLOW - 1, len(closes)):
        diff = sum(closes[t - FAST + 1 : t + 1]) * SLOW - sum(closes[t - SLOW + 1 : t + 1]) * FAST
        signs[t] = (diff > 0) - (diff < 0)
    return signs


def _floor_to_step(amount: Decimal, price: Decimal) -> Decimal:
    units = math.floor(Fraction(amount) / (Fraction(price) * Fraction(STEP)))
    return units * STEP


def reference_w1(path: Path) -> Reference:
    """Return the W1 fills and final equity of ``path``, computed exactly."""
    with localcontext(EXACT):
        stamps, opens, closes = _bars(path)
        signs = _sign_of_d(closes)
        minute = timedelta(milliseconds=stamps[1] - stamps[0])
        cash, qty = CASH, Decimal(0)
        pending: tuple[str, Decimal] | None = None
        decisions: list[tuple[datetime, str]] = []
        fills: list[RefFill] = []
        last = len(stamps) - 1
        for t in range(len(stamps)):
            opened_at = EPOCH + timedelta(milliseconds=stamps[t])
            if pending is not None:  # fill the previous bar's order at this bar's open
                side, amount = pending
                pending = None
                price = opens[t]
                fill_qty = _floor_to_step(amount, price) if side == "buy" else amount
                fee = fill_qty * price * FEE_RATE
                if side == "buy":
                    cash -= fill_qty * price + fee
                    qty += fill_qty
                else:
                    cash += fill_qty * price - fee
                    qty -= fill_qty
                fills.append(RefFill(side, fill_qty, price, fee, opened_at))
            previous, current = (signs[t - 1], signs[t]) if t >= 1 else (None, None)
            if t == last or previous is None or current is None:
                continue
            if qty == 0 and previous <= 0 < current:
                pending = ("buy", SIZE * cash)
            elif qty > 0 and previous >= 0 > current:
                pending = ("sell", qty)
            if pending is not None:
                decisions.append((opened_at + minute, pending[0]))
        equity = cash + qty * closes[-1]
    return Reference(len(stamps), decisions, fills, cash, qty, closes[-1], equity)


def _events(store: LedgerStore, kind: type[E]) -> list[E]:
    found: list[E] = []
    after = 0
    while True:
        page = store.read_log(after, 5000)
        if not page:
            return found
        found.extend(event for _, event in page if isinstance(event, kind))
        after = page[-1][0]


def _check_against_reference(data: Path, ledger: str) -> None:
    expected = reference_w1(data)
    result, store = run_backtest_request(
        BacktestRequest(
            ledger_url=ledger,
            data_path=data,
            symbol="BTC/USDT",
            strategy="sma",
            params={"fast": "10", "slow": "30"},
            cash="10000",
            fee="0.001",
        )
    )
    try:
        fills = _events(store, OrderFilled)
        got = [RefFill(f.side.value, f.qty, f.price, f.fee, f.occurred_at) for f in fills]
        assert len(got) == len(expected.fills)
        for number, (mine, theirs) in enumerate(zip(got, expected.fills, strict=True)):
            assert mine == theirs, f"fill {number} differs: ledger {mine} != reference {theirs}"
        assert all(f.fee_asset == "USDT" and f.run_id == result.run_id for f in fills)

        decisions = _events(store, DecisionMade)
        assert [(d.occurred_at, d.action.value) for d in decisions] == expected.decisions

        [ended] = _events(store, RunEnded)
        assert ended.equity_final == expected.equity_final
        assert ended.equity_final.quantize(Decimal("0.01")) == expected.equity_final.quantize(Decimal("0.01"))
        assert ended.price_mark == expected.last_close

        run = result.view
        position = run.positions["BTC/USDT"]
        assert position.qty_open == expected.qty
        assert run.balance("USDT").total == expected.cash
        assert run.equity_now() == expected.equity_final
        assert run.fills == len(expected.fills)
        assert run.orders == len(expected.decisions)
    finally:
        store.close()


def test_reference_is_self_consistent_on_a_tiny_hand_checked_series(tmp_path: Path) -> None:
    """Hand-check the reference on closes 100 x 30, then 101, 99, 99.

    d is 0 until bar 30 (a tie is never a cross), then
    SMA10 = (9 x 100 + 101) / 10 = 100.1 > SMA30 = (29 x 100 + 101) / 30 = 100.0333... : buy at
    bar 30's close, filled at bar 31's open 101 with floor(1000 / 101 / 0.00001) x 0.00001 =
    9.90099 BTC (999.99999 USDT), fee 999.99999 x 0.001 = 0.99999999 (exact, never rounded).
    At bar 31, SMA10 = (8 x 100 + 101 + 99) / 10 = 100 and SMA30 = (28 x 100 + 101 + 99) / 30 =
    100: d = 0 (no cross down from > 0 to 0). At bar 32 (the last bar) d < 0 but a signal on
    the last bar is not filled.
    """
    rows = ["timestamp,open,high,low,close,volume"]
    closes = ["100"] * 30 + ["101", "99", "99"]
    opens = ["100"] * 31 + ["101", "99"]
    for i, (o, c) in enumerate(zip(opens, closes, strict=True)):
        rows.append(
            f"{1_700_000_000_000 + 60_000 * i},{o},{max(o, c, key=Decimal)},{min(o, c, key=Decimal)},{c},1"
        )
    path = tmp_path / "tiny.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))

    ref = reference_w1(path)

    assert [(f.side, f.qty, f.price) for f in ref.fills] == [("buy", Decimal("9.90099"), Decimal("101"))]
    assert ref.fills[0].fee == Decimal("0.99999999")
    assert (
        ref.equity_final == CASH - Decimal("9.90099") * 101 - Decimal("0.99999999") + Decimal("9.90099") * 99
    )


def test_w1_on_the_bundled_sample_matches_the_reference_exactly(sqlite_ledger: str) -> None:
    _check_against_reference(bundled_sample(), sqlite_ledger)


def test_tiny_series_backtest_matches_the_reference(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    closes = ["100"] * 30 + ["101", "99", "98", "97", "103", "104", "100", "90", "90", "90"]
    for i, c in enumerate(closes):
        o = closes[i - 1] if i else c
        rows.append(
            f"{1_700_000_000_000 + 60_000 * i},{o},{max(o, c, key=Decimal)},{min(o, c, key=Decimal)},{c},1"
        )
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(rows) + "\n")
    gz = tmp_path / "tiny.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))

    assert len(reference_w1(gz).fills) >= 2
    _check_against_reference(gz, str(tmp_path / "ledger.db"))


@pytest.mark.slow
def test_w1_on_the_full_real_file_matches_the_reference_exactly(sqlite_ledger: str) -> None:
    if not FULL_W1_FILE.exists():
        pytest.skip(f"the W1 data file is not here: {FULL_W1_FILE} (CI mounts shared/ beside the repo)")
    assert reference_w1(FULL_W1_FILE).bars == 130_708
    _check_against_reference(FULL_W1_FILE, sqlite_ledger)
