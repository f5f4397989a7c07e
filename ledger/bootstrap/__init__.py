"""Composition root: the only place that knows every concrete class."""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from uuid import UUID

import anyio

from ledger.adapters.candles_files import load_candles
from ledger.adapters.candles_gaps import GapReport, gap_report
from ledger.adapters.clock import SimulatedClock
from ledger.adapters.exchange_backtest import BacktestExchange, needs_volume
from ledger.adapters.ids import SeededIds
from ledger.adapters.store import CIPHER_KEY_ENV, LedgerStore, open_store
from ledger.application.backtest import BacktestResult, BacktestRun, BacktestSpec
from ledger.application.candles import Candles
from ledger.application.decisions import DecisionSource
from ledger.bootstrap.data import checked_gaps
from ledger.bootstrap.fill_options import FillOptions, fill_settings, recorded_options
from ledger.domain.errors import ParameterError
from ledger.domain.fill_models import FillModel, FillSettings, HashDraws
from ledger.domain.identifiers import CONTROL_RUN_ID, run_stream_id
from ledger.domain.instruments import instrument_for
from ledger.domain.numbers import plain
from ledger.domain.trading_session import kill_switch_engaged
from ledger.ports import EventStore
from ledger.strategies import build_strategy
from ledger.strategies.chat import ChatConnector, ChatEndpoint, ChatTransport
from projections.portfolio import PortfolioProjection, RunView
from projections.runner import ProjectionRunner

BUNDLED_SAMPLE = "binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz"
FILL_MODELS = tuple(m.value for m in FillModel)
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
    fill: FillOptions = field(default_factory=FillOptions)  # slippage, latency, failures, fees...
    gaps: str = "refuse"  # missing bars: refuse | allow (ledger.adapters.candles_gaps)


def code_version() -> str:
    """Return the package version recorded in every run."""
    from ledger import __version__  # noqa: PLC0415 - avoid a cycle at import time

    return __version__


def open_ledger(url: str, *, create: bool = False) -> LedgerStore:
    """Open the ledger at ``url``; only writers create a missing SQLite file.

    An encrypted ledger needs its key in ``$TRADELEDGER_CIPHER_KEY``; a new ledger opened with
    it set is created encrypted (``ledger.adapters.store.cipher``).
    """
    return open_store(url, create=create, cipher_key=os.environ.get(CIPHER_KEY_ENV))


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
        # The model and every non-default fill setting (README, Fill models): plain next-open
        # reads "next-open", as before those settings existed.
        "fill_model": fill_settings(request.fill_model, request.fill).describe(),
        "data_digest": candles.digest,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class PreparedBacktest:
    """A validated backtest: everything it needs except the ledger, its run id and kill switch."""

    request: BacktestRequest
    spec: BacktestSpec  # halted=False here; execute_backtest sets the ledger's state
    candles: Candles
    strategy: DecisionSource


def request_candles(request: BacktestRequest) -> Candles:
    """Return the validated candles a request names (the bundled sample by default)."""
    path = request_data_path(request)
    candles = load_candles(path, label=request.data_label)
    checked_gaps(path, candles, request.gaps)
    return candles


def request_data_path(request: BacktestRequest) -> Path:
    """Return the candle file a request names (the bundled sample by default)."""
    return request.data_path if request.data_path is not None else bundled_sample()


def http_chat(endpoint: ChatEndpoint) -> ChatTransport:
    """Return the HTTP chat-completions client for ``endpoint`` (the default ``ChatConnector``)."""
    from ledger.adapters.openai_chat import OpenAIChat  # noqa: PLC0415 - aiohttp loads only for agents

    return OpenAIChat.connect(endpoint)


def prepare_backtest(
    request: BacktestRequest, *, candles: Candles | None = None, chat: ChatConnector | None = None
) -> PreparedBacktest:
    """Validate every input of ``request`` without touching any ledger.

    ``candles``: the series ``request_candles(request)`` returned, when the caller already
    holds it (a sweep loads its file once); otherwise the file is read here. ``chat``: how an
    agent reaches its chat model (default: over HTTP; an audit replay serves recorded answers).

    Raises:
        BadInputError: (and subclasses) an invalid option, parameter, symbol or data file.
    """
    instrument = instrument_for(request.symbol)
    strategy = build_strategy(
        request.strategy, request.params, chat=http_chat if chat is None else chat, symbol=request.symbol
    )
    cash = _decimal_option("cash", request.cash, low=Decimal(0), high=None, inclusive_low=False)
    fee = _decimal_option("fee", request.fee, low=Decimal(0), high=FEE_RATE_MAX, inclusive_low=True)
    settings = fill_settings(request.fill_model, request.fill)
    if request.seed < 0:
        msg = f"--seed: {request.seed} is negative; use a whole number >= 0"
        raise ParameterError(msg)
    if candles is None:
        candles = request_candles(request)
    if needs_volume(settings) and candles.volume is None:
        msg = f"--data: {candles.source} has no volume column, which {settings.describe()!r} needs"
        raise ParameterError(msg)
    spec = BacktestSpec(
        instrument=instrument,
        cash_initial=cash,
        fee_rate=fee,
        seed=request.seed,
        config_hash=config_hash(request, candles, strategy.params()),
        code_version=code_version(),
        fill_model=settings.describe(),  # what RunStarted records and the venue is built from
    )
    return PreparedBacktest(request=request, spec=spec, candles=candles, strategy=strategy)


def execute_backtest(
    prepared: PreparedBacktest,
    store: EventStore,
    *,
    run_id: UUID,
    halted: bool,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Run a prepared backtest into ``store`` as ``run_id`` (once: its strategy keeps state)."""
    spec, candles = replace(prepared.spec, halted=halted), prepared.candles
    run = BacktestRun(
        spec=spec,
        candles=candles,
        strategy=prepared.strategy,
        store=store,
        venue=backtest_venue(candles, spec),
        ids=SeededIds(spec.seed),
        clock=SimulatedClock(candles.open_at(0)),
        run_id=run_id,
    )
    # What is loaded by now (modules, the candles) lives as long as the run: freezing it keeps
    # the cyclic collector from scanning it again at every collection of the run's objects.
    gc.freeze()
    try:
        return anyio.run(run.execute, progress)
    finally:
        gc.unfreeze()


def run_backtest_request(
    request: BacktestRequest,
    progress: Callable[[int, int], None] | None = None,
    *,
    replay_of: RecordedStart | None = None,
    chat: ChatConnector | None = None,
    data_report: Callable[[GapReport], None] | None = None,
) -> tuple[BacktestResult, LedgerStore]:
    """Validate every input, then run one backtest into the ledger.

    Nothing touches the ledger until the request, the data file and the parameters are all
    valid, so bad input leaves it exactly as it was. ``replay_of`` (audit replays only) pins
    the run id and the kill-switch state to what the recorded run had; ``chat``: see
    ``prepare_backtest``; ``data_report`` receives the candles' gap report before the run.

    Raises:
        BadInputError: (and subclasses) an invalid option, parameter, symbol or data file.
    """
    prepared = prepare_backtest(request, chat=chat)
    if data_report is not None:
        data_report(gap_report(request_data_path(request), prepared.candles))
    store = open_ledger(request.ledger_url, create=True)
    if replay_of is None:
        run_id = free_run_id(store, SeededIds(request.seed), prepared.spec.config_hash)
        halted = ledger_halted(store)
    else:
        run_id, halted = replay_of.run_id, replay_of.halted
    result = execute_backtest(prepared, store, run_id=run_id, halted=halted, progress=progress)
    return result, store


def backtest_venue(candles: Candles, spec: BacktestSpec) -> BacktestExchange:
    """Return the backtest venue ``spec`` describes.

    Its fill settings are read back from ``spec.fill_model``, the text RunStarted records, so a
    run is simulated exactly as recorded.
    """
    model, options = recorded_options(spec.fill_model)
    settings: FillSettings = fill_settings(model, options)
    return BacktestExchange(
        candles, spec.instrument, spec.fee_rate, settings=settings, draws=HashDraws(spec.seed)
    )


def ledger_halted(store: LedgerStore) -> bool:
    """Return whether the ledger's kill switch is engaged (a backtest then denies every order)."""
    return kill_switch_engaged(store.read_stream(run_stream_id(CONTROL_RUN_ID)))


def free_run_id(store: LedgerStore, ids: SeededIds, digest: str, taken: Collection[UUID] = ()) -> UUID:
    """Return the id of the next attempt of the run with inputs ``digest``.

    The same inputs and seed give the same run id; repeating a run in one ledger takes the
    next attempt number, so the second run's id is still reproducible. ``taken``: ids already
    promised to runs not yet written (a sweep's earlier identical combinations).
    """
    attempt = 1
    while True:
        run_id = ids.run_id(f"{digest}:{attempt}")
        if run_id not in taken and not store.read_stream(run_stream_id(run_id), limit=1):
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


def save_portfolio_after(store: LedgerStore, result: BacktestResult) -> tuple[PortfolioProjection, int]:
    """Return the saved portfolio projection with ``result``'s run in it, and its log position.

    When the saved checkpoint ended right before the run's first event and the run's events
    are the only ones since, the run's own projection completes the checkpoint without
    reading the log again (``adopt_run``); otherwise the log is folded from the checkpoint as
    any writer does.
    """
    runner = ProjectionRunner(store, store, PortfolioProjection())
    runner.load()
    if result.seqs is None or not adopt_run(runner, result.view, result.seqs, result.events):
        runner.catch_up(save=False)
    runner.save()
    projection: PortfolioProjection = runner.projection  # type: ignore[assignment]
    return projection, runner.last_seq


def adopt_run(runner: ProjectionRunner, view: RunView, seqs: tuple[int, int], events: int) -> bool:
    """Put a finished run's own projection into ``runner``'s portfolio; False if it cannot be.

    The engine folded every event it wrote, in order, into ``view``; when those events are
    exactly the log's next ``events`` seqs after the runner's position (``seqs`` their first
    and last) and the run is new to the projection, adopting ``view`` equals folding them.
    """
    projection = runner.projection
    if not isinstance(projection, PortfolioProjection):
        return False
    fits = runner.last_seq == seqs[0] - 1 and seqs[1] - seqs[0] + 1 == events
    if not fits or view.run_id in projection.runs:
        return False
    projection.runs[view.run_id] = view
    runner.last_seq = seqs[1]
    return True
