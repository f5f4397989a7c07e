"""Build the golden replay scenarios under ``replays/`` (deterministic; run from the repo root).

    python replays/make_golden.py                      # every scenario
    python replays/make_golden.py bundled_sma_first_day

What it writes, per scenario directory:

* ``events.jsonl`` -- the stored rows, in notification order, exactly as the store holds them:
  ``seq``, ``topic``, ``originator_id`` (hex, as SQLite stores it), ``originator_version`` and
  ``state`` (the stored envelope bytes as a string; the hash chain covers those exact bytes).
  History is never rewritten by accident: an existing ``events.jsonl`` is kept (with a note
  when a rebuild differs) unless ``--rewrite-history`` is given.
* ``expected/portfolio.json`` -- the portfolio projection folded from ``events.jsonl``.
* ``expected/export.jsonl`` (backtest scenarios) -- ``tradeledger export`` of the re-run.

``tests/replay/test_replays.py`` imports this module, so the rendering the test compares and
the rendering written here are the same function. ``LEDGER_UPDATE_GOLDEN=1`` in that test
rewrites ``expected/`` only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from ledger.adapters import audit, codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store import LedgerStore, open_store
from ledger.bootstrap import BacktestRequest, bundled_sample, run_backtest_request
from ledger.domain.events import (
    LedgerEvent,
    OrderAccepted,
    OrderFilled,
    OrderPlaced,
    OrderSubmitted,
    OrderType,
    PriceMarked,
    RunEnded,
    RunStarted,
    Side,
    TradingMode,
)
from ledger.domain.identifiers import order_stream_id, run_id_for, run_stream_id
from ledger.domain.numbers import D
from projections.portfolio import PortfolioProjection

REPLAYS = Path(__file__).resolve().parent
_PAYLOAD = msgspec.json.Encoder(decimal_format="string")


# -- stored rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One stored event, as ``events.jsonl`` holds it."""

    seq: int
    topic: str
    originator_id: UUID
    originator_version: int
    state: bytes

    def line(self) -> str:
        """Return the row as one canonical JSON line (sorted keys, no spaces)."""
        record = {
            "originator_id": self.originator_id.hex,
            "originator_version": self.originator_version,
            "seq": self.seq,
            "state": self.state.decode(),
            "topic": self.topic,
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"


def load_rows(path: Path) -> list[Row]:
    """Return the rows of an ``events.jsonl`` file, in file order."""
    rows = []
    for text in path.read_text().splitlines():
        record = json.loads(text)
        rows.append(
            Row(
                seq=record["seq"],
                topic=record["topic"],
                originator_id=UUID(record["originator_id"]),
                originator_version=record["originator_version"],
                state=record["state"].encode(),
            )
        )
    return rows


def rows_text(rows: Iterable[Row]) -> str:
    """Return the ``events.jsonl`` text of ``rows``."""
    return "".join(row.line() for row in rows)


def encode_old(
    event: LedgerEvent, head: ChainHead, *, schema_version: int, dropped: tuple[str, ...]
) -> bytes:
    """Return the stored state an older schema version of ``event`` was written as.

    The payload is today's encoding without the fields that version did not have; the link
    commits to ``schema_version``, exactly as the codec of that time wrote it.
    """
    fields = msgspec.json.decode(_PAYLOAD.encode(event))
    for name in dropped:
        del fields[name]
    payload = msgspec.json.encode(fields)
    n = head.n + 1
    topic = codec.TOPICS[type(event)]
    digest = codec.chain_hash(
        head.hash, topic, event.originator_id, event.originator_version, schema_version, n, payload
    )
    return b'{"r":"%s","n":%d,"p":"%s","h":"%s","v":%d,"e":%s}' % (
        event.run_id.hex.encode(),
        n,
        head.hash.encode(),
        digest.encode(),
        schema_version,
        payload,
    )


def decode_rows(rows: Iterable[Row]) -> Iterator[LedgerEvent]:
    """Yield each row's event through the production decoder (upcasters included)."""
    for row in rows:
        yield codec.decode(row.topic, row.state)


def store_rows(store: LedgerStore) -> list[Row]:
    """Return every row of a ledger, in notification order."""
    return [
        Row(r.seq, r.topic, r.originator_id, r.originator_version, bytes(r.state))
        for r in audit.iter_rows(store)
    ]


def insert_rows(sqlite_path: Path, rows: list[Row]) -> None:
    """Write ``rows`` (with their seqs) and each run's committed head into a fresh SQLite ledger."""
    open_store(str(sqlite_path), create=True).close()
    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        envelope = codec.decode_envelope(row.state)
        heads[envelope.r] = (envelope.n, envelope.h)
    connection = sqlite3.connect(sqlite_path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?, ?)",
                [(r.seq, r.originator_id.hex, r.originator_version, r.topic, r.state) for r in rows],
            )
            connection.executemany(
                "INSERT INTO chain_segments (run_id, n_from, n_to, hash_to) VALUES (?, 0, ?, ?)",
                [(run, n, h) for run, (n, h) in heads.items()],
            )
    finally:
        connection.close()


# -- golden renderings ---------------------------------------------------------------------------


def fold(events: Iterable[LedgerEvent]) -> PortfolioProjection:
    """Return a fresh portfolio projection with ``events`` applied in order."""
    projection = PortfolioProjection()
    for event in events:
        projection.apply(event)
    return projection


def render_portfolio(projection: PortfolioProjection) -> str:
    """Return the projection's state as canonical, reviewable JSON (Decimals as strings)."""
    return json.dumps(json.loads(projection.snapshot()), indent=2, sort_keys=True) + "\n"


def export_text(store: LedgerStore, run_id: UUID) -> bytes:
    """Return ``tradeledger export RUN --format jsonl`` of ``run_id``."""
    return b"".join(audit.export_jsonl(store, run_id))


# -- scenario: a version-1 OrderFilled, hand-built -----------------------------------------------

UPCAST = "upcast_orderfilled_v1"
UPCAST_RUN = run_id_for("replays:upcast_orderfilled_v1")
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def upcast_history() -> list[tuple[LedgerEvent, int]]:
    """Return the scenario's events with the schema version each was stored under.

    A paper run: a 0.05 BTC limit buy fills in two parts (stored as OrderFilled version 1,
    before ``price_expected`` existed), then a 0.02 BTC market sell fills once (version 2).
    """
    run_stream = run_stream_id(UPCAST_RUN)
    buy, sell = "tl-upcast-0000001", "tl-upcast-0000002"
    common: dict[str, Any] = {"run_id": UPCAST_RUN}
    b: dict[str, Any] = {"originator_id": order_stream_id(buy), "client_order_id": buy, **common}
    s: dict[str, Any] = {"originator_id": order_stream_id(sell), "client_order_id": sell, **common}
    fill: dict[str, Any] = {"venue": "paper", "instrument": "BTC/USDT", "fee_asset": "USDT"}
    return [
        (
            RunStarted(
                originator_id=run_stream,
                originator_version=1,
                occurred_at=_t(0),
                mode=TradingMode.PAPER,
                seed=0,
                venue="paper",
                instrument="BTC/USDT",
                base_asset="BTC",
                quote_asset="USDT",
                cash_initial=D("10000"),
                fee_rate=D("0.001"),
                strategy="manual",
                params="{}",
                data_source="hand-built",
                data_digest="0" * 64,
                config_hash="0" * 64,
                code_version="0.0.9",
                fill_model="next-open",
                **common,
            ),
            1,
        ),
        (
            OrderPlaced(
                originator_version=1,
                occurred_at=_t(10),
                decision_id=None,
                instrument="BTC/USDT",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                qty=D("0.05"),
                qty_quote=None,
                price_limit=D("100000"),
                price_expected=D("99950"),
                **b,
            ),
            1,
        ),
        (OrderSubmitted(originator_version=2, occurred_at=_t(10), venue="paper", **b), 1),
        (OrderAccepted(originator_version=3, occurred_at=_t(11), venue_order_id="p-1", **b), 1),
        (
            OrderFilled(
                originator_version=4,
                occurred_at=_t(20),
                venue_trade_id="p-t-1",
                side=Side.BUY,
                qty=D("0.02"),
                price=D("99990"),
                fee=D("1.9998"),
                price_expected=None,
                **fill,
                **b,
            ),
            1,
        ),
        (
            OrderFilled(
                originator_version=5,
                occurred_at=_t(35),
                venue_trade_id="p-t-2",
                side=Side.BUY,
                qty=D("0.03"),
                price=D("100000"),
                fee=D("3.000"),
                price_expected=None,
                **fill,
                **b,
            ),
            1,
        ),
        (
            OrderPlaced(
                originator_version=1,
                occurred_at=_t(600),
                decision_id=None,
                instrument="BTC/USDT",
                side=Side.SELL,
                order_type=OrderType.MARKET,
                qty=D("0.02"),
                qty_quote=None,
                price_limit=None,
                price_expected=D("101010"),
                **s,
            ),
            1,
        ),
        (OrderSubmitted(originator_version=2, occurred_at=_t(600), venue="paper", **s), 1),
        (OrderAccepted(originator_version=3, occurred_at=_t(600), venue_order_id="p-2", **s), 1),
        (
            OrderFilled(
                originator_version=4,
                occurred_at=_t(601),
                venue_trade_id="p-t-3",
                side=Side.SELL,
                qty=D("0.02"),
                price=D("101000"),
                fee=D("2.02"),
                price_expected=D("101010"),
                **fill,
                **s,
            ),
            2,
        ),
        (
            PriceMarked(
                originator_id=run_stream,
                originator_version=2,
                occurred_at=_t(3600),
                instrument="BTC/USDT",
                price=D("101000"),
                **common,
            ),
            1,
        ),
        (
            RunEnded(
                originator_id=run_stream,
                originator_version=3,
                occurred_at=_t(3600),
                reason="operator stop",
                equity_final=D("10043.1802"),
                price_mark=D("101000"),
                **common,
            ),
            1,
        ),
    ]


# The fields each event gained after its version 1 (what encode_old drops to write a v1 row).
ADDED_SINCE_V1: dict[type, tuple[str, ...]] = {
    OrderFilled: ("price_expected",),
    RunStarted: ("fill_model",),
}


def upcast_rows() -> list[Row]:
    """Return the scenario's stored rows, chained as the store would have chained them."""
    rows = []
    head = ChainHead(n=0, hash=GENESIS_HASH)
    for seq, (event, version) in enumerate(upcast_history(), start=1):
        if version == type(event).class_version:
            topic, state, head = codec.encode(event, head)
        else:
            state = encode_old(event, head, schema_version=version, dropped=ADDED_SINCE_V1[type(event)])
            topic = codec.TOPICS[type(event)]
            envelope = codec.decode_envelope(state)
            head = ChainHead(n=envelope.n, hash=envelope.h)
        rows.append(Row(seq, topic, event.originator_id, event.originator_version, state))
    return rows


# -- scenarios: slices of the bundled sample, backtested -----------------------------------------

BUNDLED = "bundled_sma_first_day"  # recorded by 0.1.0: RunStarted v1, no checkpoints
BUNDLED_BARS = 1440
TWO_DAYS = "bundled_sma_two_days"  # recorded by 0.2.0: RunStarted v2, daily checkpoints


@dataclass(frozen=True)
class BacktestScenario:
    """A backtest over the first ``bars`` one-minute bars of the bundled sample."""

    bars: int
    params: dict[str, str]
    origin: str


BACKTEST_SCENARIOS = {
    BUNDLED: BacktestScenario(
        bars=BUNDLED_BARS,
        params={},
        origin=(
            "backtest of the first 1,440 bars of "
            "ledger/data/binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz (2025-05-20 UTC), "
            "SMA(10)/SMA(30), seed 0, by replays/make_golden.py"
        ),
    ),
    TWO_DAYS: BacktestScenario(
        bars=2880,
        params={"fast": "8", "slow": "21"},
        origin=(
            "backtest of the first 2,880 bars of "
            "ledger/data/binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz (2025-05-20 and 21 UTC), "
            "SMA(8)/SMA(21), seed 0, by replays/make_golden.py"
        ),
    ),
}


def first_bars_csv(bars: int) -> str:
    """Return the header and the first ``bars`` one-minute bars of the bundled sample."""
    lines = gzip.decompress(bundled_sample().read_bytes()).decode().split("\n")
    return "\n".join(lines[: bars + 1]) + "\n"


def first_day_csv() -> str:
    """Return the header and the first 1,440 one-minute bars of the bundled sample."""
    return first_bars_csv(BUNDLED_BARS)


def backtest_request(scenario: Path, ledger_url: str) -> BacktestRequest:
    """Return the backtest the scenario's manifest records, writing into ``ledger_url``."""
    manifest = json.loads((scenario / "manifest.json").read_text())
    inputs = manifest["inputs"]
    return BacktestRequest(
        ledger_url=ledger_url,
        data_path=scenario / inputs["data"],
        symbol=inputs["symbol"],
        strategy=inputs["strategy"],
        params=inputs["params"],
        cash=inputs["cash"],
        fee=inputs["fee"],
        seed=inputs["seed"],
        fill_model=inputs["fill_model"],
    )


def run_recorded_backtest(scenario: Path, workdir: Path) -> tuple[UUID, bytes, list[Row]]:
    """Re-run the scenario's backtest into a fresh ledger; return (run id, export, rows)."""
    result, store = run_backtest_request(backtest_request(scenario, str(workdir / "ledger.db")))
    try:
        return result.run_id, export_text(store, result.run_id), store_rows(store)
    finally:
        store.close()


def _inputs(params: dict[str, str]) -> dict[str, Any]:
    return {
        "data": "candles.csv",
        "symbol": "BTC/USDT",
        "strategy": "sma",
        "params": params,
        "cash": "10000",
        "fee": "0.001",
        "seed": 0,
        "fill_model": "next-open",
    }


# -- writing -------------------------------------------------------------------------------------


def _write_history(scenario: Path, rows: list[Row], *, rewrite: bool) -> None:
    # Histories are inputs of the regression suite: written once, then only on purpose.
    path = scenario / "events.jsonl"
    text = rows_text(rows)
    if not path.exists() or rewrite:
        path.write_text(text)
    elif path.read_text() != text:
        print(  # noqa: T201 - a build script
            f"note: {path} differs from a rebuild and was kept (history); "
            "pass --rewrite-history to replace it",
            file=sys.stderr,
        )


def write_expected(scenario: Path, rows: list[Row]) -> None:
    """Write ``expected/portfolio.json`` folded from ``rows``."""
    expected = scenario / "expected"
    expected.mkdir(exist_ok=True)
    (expected / "portfolio.json").write_text(render_portfolio(fold(decode_rows(rows))))


def build_upcast(*, rewrite: bool) -> None:
    """Write the hand-built version-1 fill scenario."""
    scenario = REPLAYS / UPCAST
    scenario.mkdir(exist_ok=True)
    rows = upcast_rows()
    manifest = {
        "run_id": str(UPCAST_RUN),
        "mode": "paper",
        "origin": "hand-built by replays/make_golden.py (upcast_history)",
        "schema_notes": (
            "seq 5 and 6 are OrderFilled schema version 1 (no price_expected); seq 10 is version 2"
        ),
    }
    (scenario / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _write_history(scenario, rows, rewrite=rewrite)
    write_expected(scenario, load_rows(scenario / "events.jsonl"))


def build_backtest(name: str, *, rewrite: bool) -> None:
    """Slice the bundled sample, run the recorded backtest and write the scenario."""
    spec = BACKTEST_SCENARIOS[name]
    scenario = REPLAYS / name
    scenario.mkdir(exist_ok=True)
    (scenario / "candles.csv").write_text(first_bars_csv(spec.bars))
    manifest_path = scenario / "manifest.json"
    recorded = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    inputs = _inputs(spec.params)
    manifest_path.write_text(json.dumps({"inputs": inputs}, indent=2, sort_keys=True) + "\n")
    with tempfile.TemporaryDirectory() as work:
        run_id, export, rows = run_recorded_backtest(scenario, Path(work))
    started = next(e for e in decode_rows(rows) if isinstance(e, RunStarted))
    manifest: dict[str, Any] = {
        "inputs": inputs,
        "run_id": str(run_id),
        "mode": started.mode.value,
        "seed": started.seed,
        "config_hash": started.config_hash,
        "data_digest": started.data_digest,
        "code_version": started.code_version,
        "events": len(rows),
        "origin": spec.origin,
    }
    if recorded and not rewrite:
        manifest = recorded  # the manifest describes the recorded history, which is kept
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _write_history(scenario, rows, rewrite=rewrite)
    write_expected(scenario, load_rows(scenario / "events.jsonl"))
    (scenario / "expected" / "export.jsonl").write_bytes(export)


BUILDERS: dict[str, Callable[..., None]] = {
    UPCAST: build_upcast,
    **{name: partial(build_backtest, name) for name in BACKTEST_SCENARIOS},
}


def main() -> None:
    """Build the scenarios named on the command line (default: all)."""
    parser = argparse.ArgumentParser(description="Build the golden replay scenarios under replays/.")
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(BUILDERS)} (default: all)")
    parser.add_argument("--rewrite-history", action="store_true", help="replace an existing events.jsonl")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; use {', '.join(BUILDERS)}")
    for name in args.scenarios or BUILDERS:
        BUILDERS[name](rewrite=args.rewrite_history)


if __name__ == "__main__":
    main()
