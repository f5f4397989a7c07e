"""Candle files: CSV and Parquet give the same series and refuse the same bad data; gap policy."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ledger.adapters.candles_files import load_candles
from ledger.adapters.candles_gaps import GapPolicy, apply_gap_policy, gap_report
from ledger.bootstrap import bundled_sample
from ledger.domain.errors import DataFileError

HEADER = "timestamp,open,high,low,close,volume"
ROW_1 = "1747699200000,100,101,99,100,1"
ROW_2 = "1747699260000,100,101,99,100,1"
ROW_3 = "1747699320000,100.5,101,99,100,1.25"
SHARED_1H = Path("/work/shared/data/candles/binance_spot_BTCUSDT_1h_20170817_20240421.csv.gz")


def _csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "candles.csv"
    path.write_text(text)
    return path


def _to_parquet(csv_path: Path, *, types: str | None = None) -> Path:
    # Every column as text unless told: a bad field reaches the loader exactly as written.
    out = csv_path.with_suffix(".parquet")
    columns = "all_varchar=true" if types is None else f"columns={types}"
    with duckdb.connect() as con:
        con.execute("SET threads=1")
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, {columns})) TO '{out}' (FORMAT parquet)"
        )
    return out


def _arrays_equal(a, b) -> bool:
    return (
        all(
            np.array_equal(getattr(a, k), getattr(b, k))
            for k in ("open_time_ms", "open", "high", "low", "close")
        )
        and a.price_scale == b.price_scale
        and a.interval_ms == b.interval_ms
    )


# name -> (rows, fragments for CSV, fragments for Parquet)
BAD = {
    "unsorted": ((ROW_2, ROW_1), (":3", "timestamp", "sort"), ("row 2", "timestamp", "sort")),
    "duplicate": ((ROW_1, ROW_1), (":3", "duplicates", "drop duplicates"), ("row 2", "duplicates")),
    "high_below_low": (
        (ROW_1, "1747699260000,100,95,105,100,1"),
        (":3", "high 95", "low 105"),
        ("row 2", "high 95"),
    ),
    "open_above_high": ((ROW_1, "1747699260000,102,101,99,100,1"), (":3", "open 102"), ("row 2", "open 102")),
    "close_below_low": ((ROW_1, "1747699260000,100,101,99,98,1"), (":3", "close 98"), ("row 2", "close 98")),
    "negative_volume": (
        (ROW_1, "1747699260000,100,101,99,100,-1"),
        (":3", "volume", "negative"),
        ("row 2", "volume"),
    ),
    "non_numeric_price": (
        (ROW_1, "1747699260000,abc,101,99,100,1"),
        (":3", "open", "'abc'"),
        ("row 2", "open"),
    ),
    "non_numeric_timestamp": (
        (ROW_1, "soon,100,101,99,100,1"),
        (":3", "timestamp", "epoch"),
        ("row 2", "timestamp"),
    ),
    "nan_price": (
        (ROW_1, "1747699260000,100,NaN,99,100,1"),
        (":3", "high", "finite"),
        ("row 2", "high", "finite"),
    ),
    "zero_price": ((ROW_1, "1747699260000,100,101,99,0,1"), (":3", "close", "positive"), ("row 2", "close")),
    "single_row": ((ROW_1,), ("only 1 candle",), ("only 1 candle",)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_rows_are_refused_naming_the_line(tmp_path: Path, case: str) -> None:
    rows, fragments, _ = BAD[case]
    path = _write_csv(tmp_path, _csv_text(*rows))

    with pytest.raises(DataFileError) as refused:
        load_candles(path)

    message = str(refused.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_parquet_rows_are_refused_with_the_same_checks(tmp_path: Path, case: str) -> None:
    rows, _, fragments = BAD[case]
    path = _to_parquet(_write_csv(tmp_path, _csv_text(*rows)))

    with pytest.raises(DataFileError) as refused:
        load_candles(path)

    message = str(refused.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_column_is_refused_in_both_formats(tmp_path: Path) -> None:
    csv_path = _write_csv(
        tmp_path, _csv_text("1747699200000,100,101,99,1", header="timestamp,open,high,low,volume")
    )
    parquet = _to_parquet(csv_path)

    with pytest.raises(DataFileError, match=r"candles\.csv:1: missing column\(s\) close"):
        load_candles(csv_path)
    with pytest.raises(DataFileError, match=r"candles\.parquet: missing column\(s\) close"):
        load_candles(parquet)


def test_truncated_parquet_is_one_error_naming_the_file(tmp_path: Path) -> None:
    whole = _to_parquet(_write_csv(tmp_path, _csv_text(ROW_1, ROW_2, ROW_3)))
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(DataFileError, match=r"cut\.parquet: the Parquet file is truncated or corrupt"):
        load_candles(cut)


def test_parquet_with_a_broken_footer_is_refused_with_duckdbs_reason(tmp_path: Path) -> None:
    whole = _to_parquet(_write_csv(tmp_path, _csv_text(ROW_1, ROW_2, ROW_3))).read_bytes()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(whole[: len(whole) // 2] + whole[-8:])  # the magic is there, the footer is not

    with pytest.raises(DataFileError, match=r"broken\.parquet: not a readable Parquet file \(.+\); copy"):
        load_candles(broken)


def test_a_parquet_name_over_csv_bytes_is_not_read_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_text(_csv_text(ROW_1, ROW_2))

    with pytest.raises(DataFileError, match="truncated or corrupt"):
        load_candles(path)


def test_truncated_gzip_csv_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(_csv_text(ROW_1, ROW_2, ROW_3).encode() * 50, mtime=0)
    path = tmp_path / "half.csv.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(DataFileError, match=r"half\.csv\.gz: the gzip data is truncated"):
        load_candles(path)


def test_32_bit_float_prices_are_refused(tmp_path: Path) -> None:
    csv_path = _write_csv(tmp_path, _csv_text(ROW_1, ROW_2))
    types = (
        "{'timestamp':'BIGINT','open':'FLOAT','high':'DOUBLE','low':'DOUBLE',"
        "'close':'DOUBLE','volume':'DOUBLE'}"
    )

    with pytest.raises(DataFileError, match=r"column open is FLOAT.*DECIMAL, DOUBLE or strings"):
        load_candles(_to_parquet(csv_path, types=types))


@pytest.mark.parametrize(
    "types",
    [
        pytest.param(None, id="varchar"),
        pytest.param(
            "{'timestamp':'BIGINT','open':'DOUBLE','high':'DOUBLE','low':'DOUBLE','close':'DOUBLE','volume':'DOUBLE'}",
            id="double",
        ),
        pytest.param(
            "{'timestamp':'BIGINT','open':'DECIMAL(18,8)','high':'DECIMAL(18,8)','low':'DECIMAL(18,8)',"
            "'close':'DECIMAL(18,8)','volume':'DECIMAL(18,8)'}",
            id="decimal",
        ),
    ],
)
def test_parquet_copy_of_the_bundled_sample_gives_the_same_series(tmp_path: Path, types: str | None) -> None:
    csv_path = tmp_path / "sample.csv"
    csv_path.write_bytes(gzip.decompress(bundled_sample().read_bytes()))
    parquet = _to_parquet(csv_path, types=types)

    from_csv, from_parquet = load_candles(bundled_sample()), load_candles(parquet)

    assert len(from_parquet) == 43_200
    assert _arrays_equal(from_csv, from_parquet)
    assert from_parquet.price(from_parquet.high[0]) == from_csv.price(from_csv.high[0])
    assert str(from_parquet.price(from_parquet.high[0])) == "105597.10"  # scale 2, as the CSV
    assert from_parquet.digest == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert from_parquet.source == "sample.parquet"


def test_parquet_timestamp_column_is_read_as_epoch_milliseconds(tmp_path: Path) -> None:
    out = tmp_path / "ts.parquet"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT * FROM (VALUES (TIMESTAMP '2025-05-20 00:00:00', '100', '101', '99', '100', '1'),"
            " (TIMESTAMP '2025-05-20 00:01:00', '100', '101', '99', '100.5', '2'))"
            f" t(Timestamp, open, high, low, close, volume)) TO '{out}' (FORMAT parquet)"
        )

    candles = load_candles(out)

    assert candles.open_time_ms.tolist() == [1747699200000, 1747699260000]
    assert candles.interval_ms == 60_000
    assert str(candles.price(candles.close[1])) == "100.5"


# --- gaps -----------------------------------------------------------------------------------------
def test_a_gap_is_refused_by_default_with_its_size_and_place(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _csv_text(ROW_1, ROW_2, "1747699500000,100,101,99,100,1"))
    candles = load_candles(path)

    with pytest.raises(DataFileError) as refused:
        apply_gap_policy(path, candles, GapPolicy.REFUSE)

    assert str(refused.value) == (
        f"{path}: 3 bars of 1m, 1 gap(s) with 3 missing bar(s); the largest is 3m after the bar "
        "opening 2025-05-20 00:01 UTC; pass --gaps allow to run on the bars as recorded, or choose "
        "a range without gaps"
    )


def test_allowed_gaps_are_reported(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _csv_text(ROW_1, ROW_2, "1747699500000,100,101,99,100,1"))

    report = apply_gap_policy(path, load_candles(path), GapPolicy.ALLOW)

    assert (report.bars, report.gaps, report.missing_bars, report.largest_missing_ms) == (3, 1, 3, 180_000)
    assert report.largest_after_ms == 1747699260000


def test_bars_off_the_interval_grid_are_refused_under_any_policy(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _csv_text(ROW_1, ROW_2, "1747699350000,100,101,99,100,1"))
    candles = load_candles(path)

    for policy in GapPolicy:
        with pytest.raises(DataFileError, match="not a whole number of the series' 1m interval"):
            apply_gap_policy(path, candles, policy)


def test_the_shared_hourly_file_has_the_manifests_gaps() -> None:
    if not SHARED_1H.is_file():
        pytest.skip(f"{SHARED_1H} is not here (the shared data set)")
    report = gap_report(SHARED_1H, load_candles(SHARED_1H))

    # MANIFEST.md: 28 gaps, 128 missing hourly bars, largest 33 h from 2018-02-08 00:00.
    assert (report.bars, report.gaps, report.missing_bars) == (58_419, 28, 128)
    assert report.largest_missing_ms == 33 * 3_600_000
    assert report.largest_after_ms == 1518048000000  # 2018-02-08 00:00 UTC


def test_the_bundled_sample_has_no_gaps() -> None:
    report = apply_gap_policy(bundled_sample(), load_candles(bundled_sample()), GapPolicy.REFUSE)

    assert (report.bars, report.gaps) == (43_200, 0)
