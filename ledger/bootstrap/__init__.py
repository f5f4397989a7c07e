"""Composition root: the only place that knows every concrete class."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from uuid import UUID

import anyio

from ledger.adapters.candles_csv import load_candles
from ledger.adapters.clock import SimulatedClock
from ledger.adapters.exchange_backtest import BacktestExchange
from ledger.adapters.ids import SeededIds
from ledger.adapters.store import LedgerStore, open_store
from ledger.application.backtest import BacktestResult, BacktestRun, BacktestSpec
from ledger.application.candles import Candles
from ledger.domain.errors import ParameterError
from ledger.domain.identifiers import CONTROL_RUN_ID, run_stream_id
from ledger.domain.instruments import instrument_for
from ledger.domain.numbers import plain
from ledger.domain.trading_session import kill_switch_engaged
from ledger.strategies import build_strategy
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner

BUNDLED_SAMPLE = "binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz"
FILL_MODELS = ("next-open",)
# Why 10%: no venue charges more; a larger value is a typo (1 instead of 0.001, say).
FEE_RATE_MAX = Decimal("0.1")


@dataclass(frozen=True, kw_only=True)
class RecordedStart:
    """What an audit replay pins to the recorded run: its id and the kill switch at its start."""

    run_id: UUID
    halted: bool


@dataclass(frozen=True, kw_only=True)
class BacktestRequest:
    """A backtest as a user asks for it (CLI options or the Python API)."""

    ledger_url: str
    data_path: Path | None = None  # None: the bundled real sample
    symbol: str = "BTC/USDT"
    strategy: str = "sma"
    params: Mapping[str, str] = field(default_factory=dict)
    cash: str = "10000"
    fee: str = "0.001"
    seed: int = 0
    fill_model: str = "next-open"
    data_label: str | None = None  # recorded as data_source; default: the file's name


def code_version() -> str:
    """Return the package version recorded in every run."""
    from ledger import __version__  # noqa: PLC0415 - avoid a cycle at import time

    return __version__


def open_ledger(url: str, *, create: bool = False) -> LedgerStore:
    """Open the ledger at ``url``; only writers create a missing SQLite file."""
    return open_store(url, create=create)


def bundled_sample() -> Path:
    """Return the path of the bundled real BTC/USDT sample."""
    return Path(str(resources.files("ledger") / "data" / BUNDLED_SAMPLE))


def _decimal_option(
    name: str, text: str, *, low: Decimal, high: Decimal | None, inclusive_low: bool
) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError) as e:
        msg = f"--{name}: {text!r} is not a decimal number; write it like 10000 or 0.001"
        raise ParameterError(msg) from e
    # Compare only finite values: NaN comparisons raise under the ledger's decimal traps.
    bad = not value.is_finite() or (value < low if inclusive_low else value <= low)
    if bad or (high is not None and value > high):
        bound = f">= {low}" if inclusive_low else f"> {low}"
        upper = "" if high is None else f" and <= {high}"
        msg = f"--{name}: {text} is out of range; it must be a finite number {bound}{upper}"
        raise ParameterError(msg)
    return value


def config_hash(request: BacktestRequest, candles: Candles, strategy_params: Mapping[str, str]) -> str:
    """Return the sha256 of everything that determines a backtest's events."""
    # Amounts as plain decimals: "10000" and "1E+4" are one input (an audit re-run passes the
    # recorded Decimal back as text).
    config = {
        "symbol": request.symbol,
        "strategy": request.strategy,
        "params": dict(sorted(strategy_params.items())),
        "cash": plain(Decimal(request.cash)),
        "fee": plain(Decimal(request.fee)),
        "fill_model": request.fill_model,
        "data_digest": candles.digest,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def run_backtest_request(
    request: BacktestRequest,
    progress: Callable[[int, int], None] | None = None,
    *,
    replay_of: RecordedStart | None = None,
) -> tuple[BacktestResult, LedgerStore]:
    """Validate every input, then run one backtest into the ledger.

    Nothing touches the ledger until the request, the data file and the parameters are all
    valid, so bad input leaves it exactly as it was. ``replay_of`` (audit replays only) pins
    the run id and the kill-switch state to what the recorded run had.

    Raises:
        BadInputError: (and subclasses) an invalid option, parameter, symbol or data file.
    """
    instrument = instrument_for(request.symbol)
    strategy = build_strategy(request.strategy, request.params)
    if "limit_offset_bps" in strategy.params():
        msg = "--param limit_offset_bps: backtests fill market orders only for now; use it in paper or live"
        raise ParameterError(msg)
    cash = _decimal_option("cash", request.cash, low=Decimal(0), high=None, inclusive_low=False)
    fee = _decimal_option("fee", request.fee, low=Decimal(0), high=FEE_RATE_MAX, inclusive_low=True)
    if request.fill_model not in FILL_MODELS:
        msg = f"--fill-model: {request.fill_model!r} is not available yet; use {', '.join(FILL_MODELS)}"
        raise ParameterError(msg)
    if request.seed < 0:
        msg = f"--seed: {request.seed} is negative; use a whole number >= 0"
        raise ParameterError(msg)
    path = request.data_path if request.data_path is not None else bundled_sample()
    candles = load_candles(path, label=request.data_label)
    digest = config_hash(request, candles, strategy.params())

    store = open_ledger(request.ledger_url, create=True)
    ids = SeededIds(request.seed)
    if replay_of is None:
        run_id = _free_run_id(store, ids, digest)
        halted = kill_switch_engaged(store.read_stream(run_stream_id(CONTROL_RUN_ID)))
    else:
        run_id, halted = replay_of.run_id, replay_of.halted
    spec = BacktestSpec(
        instrument=instrument,
        cash_initial=cash,
        fee_rate=fee,
        seed=request.seed,
        config_hash=digest,
        code_version=code_version(),
        fill_model=request.fill_model,
        halted=halted,
    )
    run = BacktestRun(
        spec=spec,
        candles=candles,
        strategy=strategy,
        store=store,
        venue=BacktestExchange(candles, instrument, fee),
        ids=ids,
        clock=SimulatedClock(candles.open_at(0)),
        run_id=run_id,
    )
    result = anyio.run(run.execute, progress)
    return result, store


def _free_run_id(store: LedgerStore, ids: SeededIds, digest: str) -> UUID:
    # The same inputs and seed give the same run id; repeating a run in one ledger takes the
    # next attempt number, so the second run's id is still reproducible.
    attempt = 1
    while True:
        run_id = ids.run_id(f"{digest}:{attempt}")
        if not store.read_stream(run_stream_id(run_id), limit=1):
            return run_id
        attempt += 1


def portfolio(store: LedgerStore, progress: Callable[[int, int], None] | None = None) -> PortfolioProjection:
    """Return the tracked portfolio projection, caught up with the log and saved (writers)."""
    runner = ProjectionRunner(store, store, PortfolioProjection())
    runner.load()
    runner.catch_up(progress=progress)
    return runner.projection  # type: ignore[return-value]


def read_portfolio(
    store: LedgerStore, progress: Callable[[int, int], None] | None = None, *, save: bool = False
) -> tuple[PortfolioProjection, int]:
    """Return the portfolio caught up in memory from the last checkpoint, and its log position.

    Readers (`query`, `sessions`, `positions`, `report`) never write to the ledger: events after
    the last checkpoint a writer saved are folded here without saving. Writers pass
    ``save=True`` to move the checkpoint forward.
    """
    projection = PortfolioProjection()
    runner = ProjectionRunner(store, store, projection)
    runner.load()
    runner.catch_up(progress=progress, save=save)
    return projection, runner.last_seq
