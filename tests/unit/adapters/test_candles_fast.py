"""The vectorised candle parser gives exactly the row-by-row parse, or declines."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.adapters import candles_fast
from ledger.adapters.candles_csv import candles_from_lines, load_candles
from ledger.adapters.candles_fast import parse_body
from ledger.bootstrap import bundled_sample

HEADER = "timestamp,open,high,low,close,volume"
FIELDS = ("open_time_ms", "open", "high", "low", "close", "volume")


def _row_by_row(text: str, path: Path) -> object:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return candles_from_lines(path, lines, digest="d")


def _same(a: object, b: object) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in FIELDS) and all(
        getattr(a, k) == getattr(b, k) for k in ("price_scale", "volume_scale", "interval_ms")
    )


def test_the_bundled_sample_parses_to_the_same_series_both_ways(tmp_path: Path) -> None:
    text = gzip.decompress(bundled_sample().read_bytes()).decode()

    assert _same(load_candles(bundled_sample()), _row_by_row(text, tmp_path / "s.csv"))


decimal_text = st.builds(
    lambda whole, fraction: whole if not fraction else f"{whole}.{fraction}",
    st.integers(1, 10**10 - 1).map(str),
    st.text("0123456789", max_size=8).map(lambda f: f.rstrip("0")),
)


@st.composite
def canonical_rows(draw: st.DrawFn) -> str:
    n = draw(st.integers(2, 40))
    start = draw(st.integers(0, 2 * 10**12))
    rows = []
    for i in range(n):
        o, c = draw(decimal_text), draw(decimal_text)
        extra_high, extra_low = draw(st.sampled_from(["0", "0.01", "5"])), draw(st.sampled_from(["0", "0.5"]))
        high = max(Decimal(o), Decimal(c)) + Decimal(extra_high)
        low = max(min(Decimal(o), Decimal(c)) - Decimal(extra_low), Decimal(min(o, c, key=Decimal)))
        volume = draw(st.sampled_from(["0", "10.82647", "1082.762445", "3", "0.00000001"]))
        rows.append(f"{start + i * 60_000},{o},{high:f},{low:f},{c},{volume}")
    return "\n".join([HEADER, *rows]) + draw(st.sampled_from(["\n", ""]))


@settings(max_examples=60, deadline=None)
@given(canonical_rows())
def test_any_canonical_file_parses_exactly_as_row_by_row(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("c") / "c.csv"
    path.write_text(text)

    assert _same(load_candles(path), _row_by_row(text, path))


def test_rows_spanning_many_chunks_parse_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(candles_fast, "CHUNK_BYTES", 100)  # the module's own knob, not a library's
    text = gzip.decompress(bundled_sample().read_bytes()).decode()
    head = "\n".join(text.split("\n")[:500]) + "\n"
    path = tmp_path / "c.csv"
    path.write_text(head)

    assert _same(load_candles(path), _row_by_row(head, path))


@pytest.mark.parametrize(
    "row",
    [
        "1747699200000,105573.73,105597.1,105554.31,105554.32,10.82647\r",  # CRLF
        "1747699200000,-105573.73,105597.1,105554.31,105554.32,10.82647",  # a sign
        "1747699200000,1.0573e5,105597.1,105554.31,105554.32,10.82647",  # an exponent
        "1747699200000,.5,105597.1,105554.31,105554.32,10.82647",  # no whole digits
        "1747699200000,5.,105597.1,105554.31,105554.32,10.82647",  # no fraction digits
        "1747699200000,105.573.73,105597.1,105554.31,105554.32,10.82647",  # two dots
        "1747699200000,105573.73,,105554.31,105554.32,10.82647",  # an empty field
        "1747699200000,105573.73,105597.1,105554.31,105554.32",  # a missing field
        "1747699200000,105573.73,105597.1,105554.31,105554.32,10.8,1",  # one field too many
        "1747699200000,105573.737373737,105597.1,105554.31,105554.32,10.82647",  # 9 decimals
        "1747699200000,12345678901,105597.1,105554.31,105554.32,10.82647",  # 11 whole digits
        "1747699200000.5,105573.73,105597.1,105554.31,105554.32,10.82647",  # a fractional time
    ],
)
def test_anything_not_canonical_is_declined_for_the_careful_path(row: str) -> None:
    good = "1747699260000,105554.32,105560,105550,105555,1.5"

    assert parse_body(f"{row}\n{good}\n".encode()) is None
    assert parse_body(f"{good}\n{row}\n".encode()) is None


def test_a_declined_file_still_loads_through_the_careful_path(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(
        f"{HEADER}\r\n1747699200000,105573.73,105597.1,105554.31,105554.32,10.82647\r\n"
        "1747699260000,105554.32,105560,105550,105555,1.5\r\n".encode()
    )

    candles = load_candles(path)

    assert candles.open_time_ms.tolist() == [1747699200000, 1747699260000]
    assert candles.price(candles.close[1]) == Decimal("105555.00")
