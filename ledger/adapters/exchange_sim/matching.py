"""The simulated account and matching engine: balances, orders, fills and fees.

Rules, as on Binance spot unless said otherwise:

- A MARKET order walks the synthetic book (``book.py``) and takes what it finds; when the book
  runs out first, the order ends ``EXPIRED`` with what it got.
- A LIMIT order first takes the book levels at its price or better (taker). GTC leaves the rest
  resting (``PARTIALLY_FILLED`` or ``NEW``); IOC expires the rest; FOK expires unless the whole
  quantity is available. Resting orders fill in full at their limit price (maker) when a later
  bar trades through it: a buy when the bar's low is below the limit, a sell when the high is
  above it. Resting orders are not shown in the synthetic book.
- Funds: a LIMIT buy locks ``price * quantity`` of the quote asset, a sell locks the base
  quantity; a MARKET order needs its whole cost free before it matches (-2010 otherwise).
- Commission, as Binance charges it without BNB: in the asset received (base on a buy, quote on
  a sell), ``rate * amount`` rounded up to the symbol's commission precision (8 decimals).
- ``newClientOrderId`` must be unique among OPEN orders (Binance: "Orders with the same
  newClientOrderId can be accepted only when the previous one is filled"); a closed order's id
  may be reused, exactly as on Binance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal, localcontext

from ledger.adapters.exchange_sim import protocol as p
from ledger.adapters.exchange_sim.book import Book, BookModel, Take
from ledger.adapters.exchange_sim.filters import SymbolRules
from ledger.adapters.exchange_sim.market import MarketReplay
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
FEE_RATE_DEFAULT = D("0.001")


@dataclass(frozen=True)
class NewOrder:
    """A validated ``POST /api/v3/order`` request."""

    symbol: str
    side: str
    type: str
    qty: Decimal | None
    quote_qty: Decimal | None
    price: Decimal | None
    time_in_force: str | None
    client_order_id: str


@dataclass(frozen=True)
class SimTrade:
    """One execution of one order (what ``myTrades`` returns)."""

    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool


@dataclass
class SimOrder:
    """One order and its progress."""

    order_id: int
    request: NewOrder
    time_ms: int
    status: str = "NEW"
    qty_executed: Decimal = ZERO
    quote_executed: Decimal = ZERO
    locked: Decimal = ZERO
    update_ms: int = 0
    fills: list[SimTrade] = field(default_factory=list)


class MatchingEngine:
    """The account, its orders and the matching rules (see the module docstring).

    Args:
        rules: trading rules per symbol (from exchangeInfo).
        replay: the market clock and recorded bars.
        balances: starting free balance per asset.
        fee_maker: maker commission rate.
        fee_taker: taker commission rate.
        seed: seed of the synthetic books.
    """

    def __init__(
        self,
        rules: dict[str, SymbolRules],
        replay: MarketReplay,
        balances: dict[str, Decimal],
        fee_maker: Decimal = FEE_RATE_DEFAULT,
        fee_taker: Decimal = FEE_RATE_DEFAULT,
        seed: int = 0,
    ) -> None:
        self.rules = rules
        self.replay = replay
        self.free: dict[str, Decimal] = dict(balances)
        self.locked: dict[str, Decimal] = dict.fromkeys(balances, ZERO)
        self.fee_maker = fee_maker
        self.fee_taker = fee_taker
        self.seed = seed
        self.orders: list[SimOrder] = []
        self.trades: list[SimTrade] = []
        self.book_models: dict[str, BookModel] = {}
        self.halted: set[str] = set()
        self._books: dict[str, tuple[int, Book]] = {}

    # --- market ---------------------------------------------------------------------------
    def book(self, symbol: str) -> Book:
        """Return the live book of ``symbol`` for the current bar (empty without data)."""
        now = self.replay.current(symbol)
        if now is None:
            return Book([], [])
        index, bar = now
        cached = self._books.get(symbol)
        if cached is None or cached[0] != index:
            rules = self.rules[symbol]
            model = self.book_models.get(symbol, BookModel())
            book = Book.synthesize(
                bar,
                bar_index=index,
                symbol=symbol,
                tick=rules.tick,
                step=rules.step,
                seed=self.seed,
                model=model,
            )
            cached = (index, book)
            self._books[symbol] = cached
        return cached[1]

    def set_book_model(self, symbol: str, model: BookModel) -> None:
        """Use ``model`` for ``symbol`` from now on (redraws the current book)."""
        self.book_models[symbol] = model
        self._books.pop(symbol, None)

    def advance(self, bars: int, now_ms: int) -> int:
        """Move the market ``bars`` bars forward, filling resting orders bar by bar."""
        moved = 0
        for _ in range(bars):
            if self.replay.advance(1) == 0:
                break
            moved += 1
            self._match_resting(now_ms)
        return moved

    # --- orders ---------------------------------------------------------------------------
    def place(self, new: NewOrder, now_ms: int) -> SimOrder:
        """Accept ``new``, match it against the book and return it.

        Raises:
            BinanceError: closed market, duplicate client id, filter failure, insufficient funds.
        """
        rules = self.rules[new.symbol]
        if new.symbol in self.halted or self.replay.current(new.symbol) is None:
            raise p.MARKET_CLOSED.error()
        if any(o.request.client_order_id == new.client_order_id for o in self.open_orders(None)):
            raise p.DUPLICATE_ORDER.error()
        price_avg = self.replay.price_avg(new.symbol, rules.avg_price_mins)
        book = self.book(new.symbol)
        if new.type == "LIMIT" and new.price is not None and new.qty is not None:
            rules.check_limit(new.price, new.qty, price_avg, len(self.open_orders(new.symbol)))
            takes = book.plan(new.side, rules.step, new.qty, None, new.price)
            if new.time_in_force == "FOK" and sum((t.qty for t in takes), ZERO) < new.qty:
                takes = []
        else:
            rules.check_market(new.qty, new.quote_qty, price_avg)
            takes = book.plan(new.side, rules.step, new.qty, new.quote_qty, None)
        locked = self._reserve(new, rules, takes)
        order = SimOrder(
            order_id=len(self.orders) + 1, request=new, time_ms=now_ms, locked=locked, update_ms=now_ms
        )
        self.orders.append(order)
        book.consume(new.side, takes)
        for take in takes:
            self._fill(order, rules, take, now_ms, is_maker=False)
        order.status = self._status_after_taking(order, book)
        if order.status not in OPEN_STATUSES:
            self._release(order, rules)
        return order

    def find(self, symbol: str, order_id: int | None, client_order_id: str | None) -> SimOrder | None:
        """Return the order by venue id, else the newest with ``client_order_id``, else None."""
        for order in reversed(self.orders):
            if order.request.symbol != symbol:
                continue
            if order_id is not None and order.order_id == order_id:
                return order
            if order_id is None and order.request.client_order_id == client_order_id:
                return order
        return None

    def cancel(self, order: SimOrder, now_ms: int) -> None:
        """Cancel an open ``order`` and unlock its funds.

        Raises:
            BinanceError: -2011 when the order is no longer open.
        """
        if order.status not in OPEN_STATUSES:
            raise p.UNKNOWN_ORDER.error()
        order.status = "CANCELED"
        order.update_ms = now_ms
        self._release(order, self.rules[order.request.symbol])

    def open_orders(self, symbol: str | None) -> list[SimOrder]:
        """Return the open orders, of one symbol or all, oldest first."""
        return [o for o in self.orders if o.status in OPEN_STATUSES and symbol in (None, o.request.symbol)]

    # --- internals --------------------------------------------------------------------------
    def _reserve(self, new: NewOrder, rules: SymbolRules, takes: list[Take]) -> Decimal:
        with localcontext(LEDGER_CONTEXT):
            if new.type == "LIMIT" and new.price is not None and new.qty is not None:
                asset, amount = (
                    (rules.quote_asset, new.price * new.qty)
                    if new.side == "BUY"
                    else (rules.base_asset, new.qty)
                )
            elif new.side == "BUY":
                asset = rules.quote_asset
                amount = sum((t.price * t.qty for t in takes), ZERO)
                amount = max(amount, new.quote_qty if new.quote_qty is not None else ZERO)
            else:
                asset = rules.base_asset
                amount = sum((t.qty for t in takes), ZERO)
                amount = max(amount, new.qty if new.qty is not None else ZERO)
            if self.free.get(asset, ZERO) < amount:
                raise p.INSUFFICIENT_BALANCE.error()
            self.free[asset] = self.free.get(asset, ZERO) - amount
            self.locked[asset] = self.locked.get(asset, ZERO) + amount
        return amount

    def _fill(self, order: SimOrder, rules: SymbolRules, take: Take, now_ms: int, *, is_maker: bool) -> None:
        new = order.request
        rate = self.fee_maker if is_maker else self.fee_taker
        with localcontext(LEDGER_CONTEXT):
            quote = take.price * take.qty
            if new.side == "BUY":
                fee = (take.qty * rate).quantize(rules.commission_exponent, rounding=ROUND_UP)
                spent_asset, spent, got_asset, got = (
                    rules.quote_asset,
                    quote,
                    rules.base_asset,
                    take.qty - fee,
                )
                fee_asset = rules.base_asset
            else:
                fee = (quote * rate).quantize(rules.commission_exponent, rounding=ROUND_UP)
                spent_asset, spent, got_asset, got = (
                    rules.base_asset,
                    take.qty,
                    rules.quote_asset,
                    quote - fee,
                )
                fee_asset = rules.quote_asset
            order.locked -= spent
            self.locked[spent_asset] -= spent
            self.free[got_asset] = self.free.get(got_asset, ZERO) + got
            order.qty_executed += take.qty
            order.quote_executed += quote
        trade = SimTrade(
            trade_id=len(self.trades) + 1,
            order_id=order.order_id,
            symbol=new.symbol,
            price=take.price,
            qty=take.qty,
            commission=fee,
            commission_asset=fee_asset,
            time_ms=now_ms,
            is_buyer=new.side == "BUY",
            is_maker=is_maker,
        )
        self.trades.append(trade)
        order.fills.append(trade)
        order.update_ms = now_ms

    def _release(self, order: SimOrder, rules: SymbolRules) -> None:
        asset = rules.quote_asset if order.request.side == "BUY" else rules.base_asset
        with localcontext(LEDGER_CONTEXT):
            self.locked[asset] -= order.locked
            self.free[asset] += order.locked
        order.locked = ZERO

    def _status_after_taking(self, order: SimOrder, book: Book) -> str:
        new = order.request
        if new.type == "MARKET":
            levels_left = book.asks if new.side == "BUY" else book.bids
            done = (new.qty is not None and order.qty_executed == new.qty) or (
                new.qty is None and order.fills and levels_left
            )
            return "FILLED" if done else "EXPIRED"
        if order.qty_executed == new.qty:
            return "FILLED"
        if new.time_in_force in ("IOC", "FOK"):
            return "EXPIRED"
        return "PARTIALLY_FILLED" if order.fills else "NEW"

    def _match_resting(self, now_ms: int) -> None:
        for order in self.open_orders(None):
            new = order.request
            now = self.replay.current(new.symbol)
            if now is None or new.price is None or new.qty is None:
                continue
            bar = now[1]
            crossed = bar.low < new.price if new.side == "BUY" else bar.high > new.price
            if crossed:
                with localcontext(LEDGER_CONTEXT):
                    rest = new.qty - order.qty_executed
                self._fill(order, self.rules[new.symbol], Take(new.price, rest), now_ms, is_maker=True)
                order.status = "FILLED"
                self._release(order, self.rules[new.symbol])
