"""Order-book snapshot files: the shared recordings load as exact, time-keyed books; bad ones are refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.adapters.orderbook_files import load_order_book_snapshots
from ledger.domain.errors import DataFileError

SHARED = Path("/work/shared/data/orderbook")
TARDIS = SHARED / "binance_usdm_futures_BTCUSDT_book_snapshot_25_20200901_tardis_sample.csv"
BINANCE_SNAPSHOT = SHARED / "binance_usdm_futures_BTCUSDT_depth_snapshot_20221101.csv"
BINANCE_UPDATES = SHARED / "binance_usdm_futures_BTCUSDT_depth_updates_20221101.csv"
LONG_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"


def _shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared data set)")
    return path


def test_tardis_wide_snapshots_load_best_first_and_exact() -> None:
    book = load_order_book_snapshots(_shared(TARDIS))

    assert len(book) == 10
    first = book.snapshots[0]
    assert first.time_us == 1598918403696000
    assert (len(first.bids), len(first.asks)) == (25, 25)
    assert first.bids[0] == (Decimal("11657.07"), Decimal("10.896"))
    assert first.asks[0] == (Decimal("11657.08"), Decimal("1.714"))
    assert first.asks[1] == (Decimal("11657.54"), Decimal("5.4"))
    assert all(a.time_us < b.time_us for a, b in zip(book.snapshots, book.snapshots[1:], strict=False))


def test_the_snapshot_at_a_time_is_the_last_one_recorded_by_then() -> None:
    book = load_order_book_snapshots(_shared(TARDIS))
    second = book.snapshots[1]  # 1598918403815000 us

    assert book.at_or_before(1598918403695) is None
    assert book.at_or_before(1598918403696) is book.snapshots[0]
    assert book.at_or_before(1598918403814) is book.snapshots[0]
    assert book.at_or_before(second.time_ms) is second
    assert book.at_or_before(1_700_000_000_000) is book.snapshots[-1]


def test_binance_long_snapshot_loads_its_bid_side() -> None:
    book = load_order_book_snapshots(_shared(BINANCE_SNAPSHOT))

    (only,) = book.snapshots
    assert only.time_ms == 1667346579146
    assert len(only.bids) == 100
    assert only.asks == ()
    assert only.bids[0] == (Decimal("20377.00"), Decimal("1.770"))
    assert str(only.bids[0][0]) == "20377.00"  # the recorded string, exactly


def test_diff_updates_are_refused() -> None:
    with pytest.raises(DataFileError, match=r"updates_20221101\.csv:2: update_type 'set' is a diff update"):
        load_order_book_snapshots(_shared(BINANCE_UPDATES))


def _long(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "book.csv"
    path.write_text("\n".join([LONG_HEADER, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        pytest.param(
            ("X,1000,1,1,b,snap,100,1,-1", "X,1000,1,1,b,snap,101,1,-1"),
            "book.csv:2: in the snapshot of 1000000 us from this line, bids price 101",
            id="bids_rising",
        ),
        pytest.param(
            ("X,1000,1,1,b,snap,101,1,-1", "X,1000,1,1,a,snap,100,1,-1"),
            "book.csv:2: the book is crossed",
            id="crossed",
        ),
        pytest.param(("X,1000,1,1,b,snap,100,0,-1",), "book.csv:2: bids level 100 x 0", id="zero_qty"),
        pytest.param(("X,1000,1,1,b,snap,abc,1,-1",), "bids price 'abc'", id="price_not_a_number"),
        pytest.param(("X,1000,1,1,q,snap,100,1,-1",), "side 'q'", id="unknown_side"),
        pytest.param(
            ("X,2000,1,1,b,snap,100,1,-1", "X,1000,1,1,b,snap,100,1,-1"),
            "book.csv:3: snapshot time",
            id="unsorted",
        ),
        pytest.param(("X,1000,1,1,b,snap,100",), "book.csv:2: expected 9 fields", id="truncated_row"),
    ],
)
def test_bad_snapshots_are_refused_naming_the_line(
    tmp_path: Path, rows: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(DataFileError) as refused:
        load_order_book_snapshots(_long(tmp_path, *rows))

    assert fragment in str(refused.value)


def test_an_unknown_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("time,bid,ask\n1,2,3\n")

    with pytest.raises(DataFileError, match=r"other\.csv:1: unknown order-book header"):
        load_order_book_snapshots(path)
