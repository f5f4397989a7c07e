"""`tradeledger paper|live --config F`: validate the config, recover, run a session, end it.

Start-up order, each step before any order can leave the process:

1. the TOML config is validated (pydantic; one sentence naming the field on error);
2. an exclusive lock on ``<ledger>.session.lock`` makes this the only session on the ledger;
3. the venue's markets are loaded (exchange rules for the symbol);
4. **recovery**: every order of an earlier paper or live run that the ledger saw submitted and
   not finished is looked up at the venue by client order id; a found order gets its
   ``OrderAccepted`` and its fills, a missing one an ``OrderRejected`` (``not_at_venue``), and
   each unfinished run gets its ``RunEnded``;
5. the session runs until ``duration_seconds`` pass or SIGINT/SIGTERM arrives.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import anyio
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ledger.adapters.clock import SystemClock
from ledger.adapters.exchange_ccxt import CcxtGateway, VenueConfig
from ledger.adapters.exchange_paper import PaperGateway
from ledger.adapters.ids import RandomIds
from ledger.adapters.keystore import LLM, KeyRefusedError, labeled_key
from ledger.adapters.store import LedgerStore, is_postgres_url
from ledger.adapters.tape import JsonlTape
from ledger.application.decisions import DecisionSource
from ledger.application.market_watch import MaintenanceWindow, WatchPolicy
from ledger.application.session import (
    Reconciliation,
    SessionSpec,
    SessionVenue,
    SessionWiring,
    TradingSession,
    VenueOrderAbsentError,
    VenueOrderUnknownError,
)
from ledger.bootstrap import code_version, http_chat, open_ledger, read_portfolio, safety
from ledger.bootstrap.promotion import PromotionRequest, from_backtest, promote
from ledger.domain.errors import BadInputError, ParameterError, TradingHaltedError
from ledger.domain.events import RunEnded, TradingMode
from ledger.domain.identifiers import CONTROL_RUN_ID, order_stream_id, run_stream_id
from ledger.domain.instruments import Instrument
from ledger.domain.order import OrderState, OrderStatus, evolve
from ledger.domain.order_answers import accepted, rejected
from ledger.domain.partial_fills import PartialFillPolicy
from ledger.domain.promotion import PromotionGates
from ledger.domain.trading_session import KillSwitchState, kill_switch_engaged
from ledger.strategies import build_strategy
from ledger.strategies.chat import RecordedChat
from projections.portfolio import PortfolioProjection, RunView

TIMEFRAMES_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
_OPEN = {
    OrderStatus.SUBMITTED,
    OrderStatus.ACCEPTED,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.CANCEL_REQUESTED,
}


def _positive_decimal(value: str, field: str) -> str:
    try:
        number = Decimal(value)
    except ArithmeticError as e:
        msg = f"{field} must be a decimal number written as a string, e.g. '10000'"
        raise ValueError(msg) from e
    if not number.is_finite() or number <= 0:
        msg = f"{field} must be a positive finite number"
        raise ValueError(msg)
    return value


class MaintenanceEntry(BaseModel):
    """One maintenance window (TOML datetimes with a zone)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class SessionSection(BaseModel):
    """``[session]``: what to trade and for how long."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = "BTC/USDT"
    strategy: str = "sma"
    params: dict[str, str] = Field(default_factory=dict)
    cash: str = "10000"  # paper: the starting quote balance (live uses the venue's)
    fee: str = "0.001"  # paper: the fee rate per fill
    seed: int = Field(default=0, ge=0)
    timeframe: Literal["1m", "5m", "15m", "1h"] = "1m"
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    duration_seconds: float = Field(default=0, ge=0)  # 0: until SIGINT/SIGTERM
    # The partial-fill policy of working limit orders (SPEC §7 defaults).
    partial_fill_finish_ratio: float = Field(default=0.8, gt=0, le=1)
    partial_fill_max_distance: float = Field(default=0.02, gt=0, lt=1)
    partial_fill_timeout_seconds: float = Field(default=300, gt=0)
    partial_fill_check_seconds: float = Field(default=5, ge=0)
    # Engage the kill switch when the run's equity falls this far below its peak (0.2 = 20 %).
    max_drawdown: float | None = Field(default=None, gt=0, lt=1)
    # Exchange health and halts (SPEC §7 defaults).
    health_check_seconds: float = Field(default=30, gt=0)
    health_failures_for_outage: int = Field(default=3, ge=1)
    halt_resume_check_seconds: float = Field(default=10, gt=0)
    # Announced maintenance windows, UTC: [{ start = 2026-12-01T02:00:00Z, end = ... }]
    maintenance: list[MaintenanceEntry] = Field(default_factory=list)

    @field_validator("cash")
    @classmethod
    def _cash(cls, value: str) -> str:
        return _positive_decimal(value, "cash")

    @field_validator("fee")
    @classmethod
    def _fee(cls, value: str) -> str:
        number = Decimal(value) if value.replace(".", "", 1).isdigit() else Decimal(-1)
        if not Decimal(0) <= number <= Decimal("0.1"):
            msg = "fee must be a rate between 0 and 0.1 written as a string, e.g. '0.001'"
            raise ValueError(msg)
        return value


class VenueSection(BaseModel):
    """``[venue]``: where orders and market data come from; secrets by environment name."""

    model_config = ConfigDict(extra="forbid")

    exchange: Literal["binance"] = "binance"
    api_url: str | None = None
    timeout_ms: int = Field(default=5000, ge=100, le=60_000)
    api_key_env: str = "TRADELEDGER_API_KEY"
    api_secret_env: str = "TRADELEDGER_API_SECRET"  # noqa: S105 - the name of a variable, not a secret
    # Or a key from the encrypted key store (`tradeledger keys add`): its label, and the file
    # (default $TRADELEDGER_KEYS, else ~/.tradeledger/keys.enc); the passphrase comes from
    # $TRADELEDGER_KEYS_PASSPHRASE.
    key_label: str | None = None
    keys_file: str | None = None


class PromotionSection(BaseModel):
    """Where a session's strategy was proven: the runs it is promoted from, and the gates.

    Live sessions name the paper run whose record earns live trading (gated, the seed's
    defaults). Paper sessions may name the backtest run they follow (recorded, not gated).
    """

    model_config = ConfigDict(extra="forbid")

    required: bool = True  # false waives the gates (recorded in the live run)
    paper_run: str | None = None  # live: run id or unique prefix of the paper run
    backtest_run: str | None = None  # paper: run id or unique prefix of the backtest run
    min_trades: int = Field(default=100, ge=1)
    min_win_rate: float = Field(default=0.55, ge=0, le=1)
    max_drawdown: float = Field(default=0.20, gt=0, le=1)  # the worst allowed drawdown, a fraction
    min_days: float = Field(default=30, ge=0)

    def gates(self) -> PromotionGates:
        """Return the thresholds as exact decimals."""
        return PromotionGates(
            min_trades=self.min_trades,
            min_win_rate=Decimal(str(self.min_win_rate)),
            max_drawdown=Decimal(str(self.max_drawdown)),
            min_days=Decimal(str(self.min_days)),
        )


class SessionConfig(BaseModel):
    """A paper or live session's config file."""

    model_config = ConfigDict(extra="forbid")

    session: SessionSection = Field(default_factory=SessionSection)
    venue: VenueSection = Field(default_factory=VenueSection)
    promotion: PromotionSection = Field(default_factory=PromotionSection)


def load_session_config(path: Path) -> SessionConfig:
    """Read and validate a session config (TOML).

    Raises:
        BadInputError: the file is missing, not TOML, or a field is wrong (named in the message).
    """
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        msg = f"--config: no file at {path}; write one (see README, Paper and live sessions)"
        raise BadInputError(msg) from e
    except tomllib.TOMLDecodeError as e:
        msg = f"--config {path}: not valid TOML ({e}); fix the syntax"
        raise BadInputError(msg) from e
    try:
        config = SessionConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"--config {path}: {where}: {first['msg']}; fix that field (unknown keys are refused)"
        raise BadInputError(msg) from e
    section = config.session
    try:  # the strategy's own parameters (weights summing to 1, windows, ...), checked offline
        build_strategy(section.strategy, section.params, chat=RecordedChat(()).connect, symbol=section.symbol)
    except ParameterError as e:
        msg = f"--config {path}: session.params: {e}"
        raise BadInputError(msg) from e
    return config


def _credentials(venue: VenueSection, mode: TradingMode) -> tuple[str, str]:
    """Return the API key and secret: from the key store when a label is given, else the environment.

    Raises:
        ParameterError: the key store's passphrase is not set, the label is unknown, or it
            names an LLM agent's key.
        KeyStoreError: no key file, a wrong passphrase, a damaged file.
        KeyRefusedError: a live session's key lacks the trade permission (exit 4).
    """
    if venue.key_label is None:
        return os.environ.get(venue.api_key_env, ""), os.environ.get(venue.api_secret_env, "")
    stored = labeled_key(venue.key_label, field="venue.key_label", keys=venue.keys_file)
    if stored.exchange == LLM:
        msg = f"venue.key_label: key {venue.key_label!r} is an LLM agent's API key; name an exchange key"
        raise ParameterError(msg)
    if mode is TradingMode.LIVE and "trade" not in stored.permissions:
        msg = f"venue.key_label: key {venue.key_label!r} may only read; live trading needs a trade key"
        raise KeyRefusedError(msg)
    return stored.api_key, stored.api_secret.reveal()


@dataclass(frozen=True, kw_only=True)
class SessionOutcome:
    """What a finished session wrote and recovered."""

    run: RunView
    recovered: dict[str, str]  # client order id -> what recovery found
    reconciled: Reconciliation | None  # live: the venue against the ledger at start-up


@contextmanager
def session_lock(ledger_url: str) -> Iterator[None]:
    """Hold the ledger's session lock: one paper or live session per ledger at a time."""
    name = "postgres" if is_postgres_url(ledger_url) else Path(ledger_url).name
    folder = Path() if is_postgres_url(ledger_url) else Path(ledger_url).resolve().parent
    path = folder / f".{name}.session.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            msg = f"another paper or live session holds {path}; stop it first (one session per ledger)"
            raise TradingHaltedError(msg) from e
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tapes_folder(ledger_url: str) -> Path:
    """Return where a ledger's market-data tapes live."""
    if is_postgres_url(ledger_url):
        return Path(os.environ.get("TRADELEDGER_TAPES", "tradeledger-tapes"))
    return Path(f"{ledger_url}.tapes")


def run_session(config_path: Path, mode: TradingMode, ledger_url: str) -> SessionOutcome:
    """Validate, lock, recover and run one session; see the module docstring."""
    config = load_session_config(config_path)
    section = config.session
    strategy = build_strategy(section.strategy, section.params, chat=http_chat, symbol=section.symbol)
    key, secret = _credentials(config.venue, mode)
    if mode is TradingMode.LIVE and not (key and secret):
        msg = (
            f"venue: live trading needs ${config.venue.api_key_env} and ${config.venue.api_secret_env} "
            "set to the exchange API key and secret"
        )
        raise ParameterError(msg)
    gateway = CcxtGateway(
        VenueConfig(
            exchange=config.venue.exchange,
            api_key=key,
            api_secret=secret,
            api_url=config.venue.api_url,
            timeout_ms=config.venue.timeout_ms,
        ),
        section.symbol,
        section.timeframe,
    )
    with session_lock(ledger_url):
        # Before the venue is contacted: a refusal touches nothing else.
        promotion = _promotion(config, mode, strategy, ledger_url)
        return anyio.run(_run, config, mode, ledger_url, gateway, strategy, promotion)


def _promotion(
    config: SessionConfig, mode: TradingMode, strategy: DecisionSource, ledger_url: str
) -> tuple[TradingMode, str] | None:
    """Return the switch this session records (from which mode, and why), if any.

    Raises:
        PromotionRefusedError: a live session's gates refused it (recorded, exit 4).
        BadInputError: a backtest run that is unknown or traded another strategy (exit 2).
    """
    section = config.promotion
    if mode is TradingMode.PAPER and section.backtest_run is None:
        return None
    if mode is TradingMode.LIVE and section.backtest_run is not None:
        msg = (
            "promotion.backtest_run: a live session is promoted from a paper run; name it in "
            "promotion.paper_run and give backtest_run to the paper session instead"
        )
        raise ParameterError(msg)
    store = open_ledger(ledger_url, create=True)
    try:
        request = PromotionRequest(
            run=section.paper_run if mode is TradingMode.LIVE else section.backtest_run,
            required=section.required,
            gates=section.gates(),
            strategy=strategy.name,
            params=json.dumps(strategy.params(), sort_keys=True),
            symbol=config.session.symbol,
        )
        portfolio, _ = read_portfolio(store)
        if mode is TradingMode.LIVE:
            return TradingMode.PAPER, promote(store, portfolio, request, SystemClock())
        return TradingMode.BACKTEST, from_backtest(portfolio, request)
    finally:
        store.close()


async def _run(
    config: SessionConfig,
    mode: TradingMode,
    ledger_url: str,
    gateway: CcxtGateway,
    strategy: object,
    promotion: tuple[TradingMode, str] | None,
) -> SessionOutcome:
    section = config.session
    try:
        rules = await gateway.open()  # an unknown symbol stops here, before the ledger is touched
    except BaseException:
        await gateway.close()
        raise
    store = open_ledger(ledger_url, create=True)
    try:
        instrument = Instrument(
            symbol=rules.symbol,
            base_asset=rules.base,
            quote_asset=rules.quote,
            qty_step=rules.qty_step,
            price_tick=rules.price_tick if rules.price_tick is not None else rules.tick_for(Decimal(1)),
            qty_min=rules.qty_min,
            notional_min=rules.notional_min,
        )
        fee = Decimal(section.fee)
        venue: SessionVenue = gateway if mode is TradingMode.LIVE else PaperGateway(instrument, fee)
        cash = Decimal(section.cash)
        venue_balances: dict[str, Decimal] = {}
        if mode is TradingMode.LIVE:
            venue_balances = await gateway.balances()
            cash = venue_balances.get(instrument.quote_asset, Decimal(0))
        ids = RandomIds()
        run_id = ids.run_id(config.model_dump_json())
        spec = SessionSpec(
            mode=mode,
            instrument=instrument,
            rules=rules,
            cash_initial=cash if cash > 0 else Decimal("0.00000001"),
            fee_rate=fee,
            seed=section.seed,
            config_hash=_config_hash(config),
            code_version=code_version(),
            interval_ms=TIMEFRAMES_MS[section.timeframe],
            data_source=f"{gateway.venue}:{instrument.symbol}:{section.timeframe}",
            halted=kill_switch_engaged(store.read_stream(run_stream_id(CONTROL_RUN_ID))),
            max_drawdown=None if section.max_drawdown is None else Decimal(str(section.max_drawdown)),
            watch=WatchPolicy(
                health_every_s=section.health_check_seconds,
                failures_for_outage=section.health_failures_for_outage,
                resume_every_s=section.halt_resume_check_seconds,
            ),
            maintenance=tuple(MaintenanceWindow(start=m.start, end=m.end) for m in section.maintenance),
            promotion=None if promotion is None else promotion[1],
            promotion_from=TradingMode.PAPER if promotion is None else promotion[0],
            partial_fills=PartialFillPolicy(
                finish_ratio=Decimal(str(section.partial_fill_finish_ratio)),
                max_distance=Decimal(str(section.partial_fill_max_distance)),
                timeout_s=section.partial_fill_timeout_seconds,
                check_every_s=section.partial_fill_check_seconds,
            ),
        )
        wiring = SessionWiring(
            store=store,
            venue=venue,
            feed=gateway,
            ids=ids,
            clock=SystemClock(),
            tape=JsonlTape(tapes_folder(ledger_url), f"{run_id}.jsonl"),
            kill_switch=LedgerKillSwitch(store),
        )
        session = TradingSession(spec=spec, strategy=strategy, wiring=wiring, run_id=run_id)  # type: ignore[arg-type]
        portfolio, _ = read_portfolio(store)  # in memory: the ledger is not written by folding
        recovered = await recover_orders(store, session, mode, venue, portfolio)
        reconciled = None
        if mode is TradingMode.LIVE:
            reconciled = Reconciliation(
                venue=venue_balances,
                ledger=_ledger_balances(read_portfolio(store)[0], gateway.venue),
                orders_unknown=[
                    cid
                    for cid in await gateway.open_client_order_ids()
                    if not store.read_stream(order_stream_id(cid), limit=1)
                ],
            )
        stop = _StopFlag(section.duration_seconds)
        with stop.on_signals():
            run = await session.run(
                stop=stop, poll_s=section.poll_seconds, reconciled=reconciled, signalled=stop.signalled
            )
        return SessionOutcome(run=run, recovered=recovered, reconciled=reconciled)
    finally:
        await gateway.close()
        store.close()


def _ledger_balances(portfolio: PortfolioProjection, venue: str) -> dict[str, Decimal]:
    """Return what the ledger expects the venue account to hold: the last live run's balances."""
    live = [
        r for r in portfolio.runs.values() if r.started.mode is TradingMode.LIVE and r.started.venue == venue
    ]
    if not live:
        return {}
    return {asset: b.total for asset, b in live[-1].balances.items() if b.total != 0}


class LedgerKillSwitch:
    """The kill switch port over the ledger's control stream."""

    def __init__(self, store: LedgerStore) -> None:
        """Read and write the control stream of ``store``."""
        self._store = store

    def state(self) -> KillSwitchState:
        """Return the kill switch as the ledger holds it now."""
        return safety.control_state(self._store).kill_switch

    def engage(self, *, reason: str, actor: str, liquidate: bool) -> KillSwitchState:
        """Engage it for every process on the ledger."""
        return safety.engage(self._store, reason=reason, actor=actor, liquidate=liquidate)


def _config_hash(config: SessionConfig) -> str:
    import hashlib  # noqa: PLC0415 - only here

    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


class _StopFlag:
    """True once the duration has passed; SIGINT/SIGTERM are handed to the kill switch."""

    def __init__(self, duration_s: float) -> None:
        self._deadline = None if duration_s == 0 else anyio.current_time() + duration_s
        self._signal: str | None = None

    def __call__(self) -> bool:
        return self._deadline is not None and anyio.current_time() >= self._deadline

    def signalled(self) -> str | None:
        """Return the signal's name once after it arrived (the session engages the kill switch)."""
        name, self._signal = self._signal, None
        return name

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:  # noqa: ARG001 - signal API
            self._signal = signal.Signals(signum).name

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _order_state(store: LedgerStore, client_order_id: str) -> OrderState:
    state: OrderState | None = None
    for event in store.read_stream(order_stream_id(client_order_id)):
        state = evolve(state, event)
    if state is None:
        msg = f"order {client_order_id} has no events"
        raise BadInputError(msg)
    return state


async def recover_orders(
    store: LedgerStore,
    session: TradingSession,
    mode: TradingMode,
    venue: SessionVenue,
    portfolio: PortfolioProjection,
) -> dict[str, str]:
    """Settle what earlier sessions left open (see the module docstring); return what was found."""
    found: dict[str, str] = {}
    for run in portfolio.runs.values():
        if run.started.mode is not mode:
            continue
        for client_order_id in list(run.open_orders):
            state = _order_state(store, client_order_id)
            if state.status not in _OPEN:
                continue
            found[client_order_id] = await _recover_one(store, session, venue, state)
        await session.settle()  # fills of recovered orders, before their run is closed
        if run.ended is None:
            _end_unfinished(store, run, session.run_id)
    return found


async def _recover_one(
    store: LedgerStore, session: TradingSession, venue: SessionVenue, state: OrderState
) -> str:
    cid = state.client_order_id
    try:
        ack = await venue.recover(cid)
    except VenueOrderAbsentError as e:
        store.append([rejected(state, "not_at_venue", f"after a restart: {e}", session.ports.clock.now())])
        return "not at the venue: rejected"
    except VenueOrderUnknownError:
        return "still unknown (the venue did not answer); looked up again at the next start-up"
    if state.status is OrderStatus.SUBMITTED:
        event = accepted(state, ack.venue_order_id, session.ports.clock.now())
        store.append([event])
        state = evolve(state, event)
    session.adopt(state)
    return f"found at the venue as {ack.venue_order_id}"


def _end_unfinished(store: LedgerStore, run: RunView, by: object) -> None:
    version = len(store.read_stream(run_stream_id(run.run_id))) + 1
    store.append(
        [
            RunEnded(
                originator_id=run_stream_id(run.run_id),
                originator_version=version,
                occurred_at=SystemClock().now(),
                run_id=run.run_id,
                reason=f"the process stopped without ending the run; closed at the start-up of run {by}",
                equity_final=run.equity_now(),
                price_mark=None,
            )
        ]
    )
