"""The local Binance-protocol exchange, driven by the real ccxt binance async client.

Prices come from the bundled sample (read here independently of the server); the synthetic
book puts the best bid at the bar's close and the best ask one tick (0.01) above it.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest
from ccxt.base import errors as ccxt_errors

from ledger.adapters.exchange_sim import (
    FaultSpec,
    RunningExchangeSim,
    main_exchange_sim,
    make_venue,
    parse_faults,
    running_exchange_sim,
)
from ledger.adapters.exchange_sim.faults import FaultInjector
from ledger.domain.errors import DataFileError, ParameterError

pytestmark = pytest.mark.anyio

API_KEY = "sim-key"
API_SECRET = "sim-secret"  # noqa: S105 - the simulator's throwaway secret
START_BAR = 100
SAMPLE = "data/binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz"
TICK = Decimal("0.01")


def sample_rows() -> list[list[str]]:
    raw = resources.files("ledger").joinpath(SAMPLE).read_bytes()
    lines = gzip.decompress(raw).decode().split("\n")[1:]
    return [line.split(",") for line in lines if line]


ROWS = sample_rows()


def bar_close(index: int) -> Decimal:
    return Decimal(ROWS[index][4])


@asynccontextmanager
async def simulated(**options: Any) -> AsyncIterator[RunningExchangeSim]:
    venue = make_venue(API_KEY, API_SECRET, start_bar=START_BAR, **options)
    async with running_exchange_sim(venue) as sim:
        yield sim


@asynccontextmanager
async def binance(
    sim: RunningExchangeSim, *, api_key: str = API_KEY, secret: str = API_SECRET, timeout_ms: int = 5000
) -> AsyncIterator[Any]:
    exchange = ccxt_async.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "timeout": timeout_ms,
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    exchange.urls["api"] = {**exchange.urls["api"], "public": sim.api_url, "private": sim.api_url}
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def control(sim: RunningExchangeSim, method: str, path: str, **query: str) -> Any:
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, f"{sim.base_url}{path}", params=query) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def balances(exchange: Any) -> dict[str, tuple[Decimal, Decimal]]:
    account = await exchange.private_get_account()
    return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}


# --- market data ---------------------------------------------------------------------------------
async def test_load_markets_reads_the_recorded_exchange_info():
    async with simulated() as sim, binance(sim) as exchange:
        market = exchange.market("BTC/USDT")
        assert market["id"] == "BTCUSDT"
        assert market["precision"]["amount"] == 0.00001
        assert market["precision"]["price"] == 0.01
        assert market["limits"]["amount"]["min"] == 0.00001
        assert market["limits"]["cost"]["min"] == 10.0
        assert market["limits"]["market"]["max"] == 112.2110882
        assert set(exchange.markets) == {"BTC/USDT", "ETH/USDT"}


async def test_ticker_book_and_candles_come_from_the_current_bar():
    close = bar_close(START_BAR)  # 106602.15 at 2025-05-20 01:40 UTC
    async with simulated() as sim, binance(sim) as exchange:
        ticker = await exchange.fetch_ticker("BTC/USDT")
        book = await exchange.fetch_order_book("BTC/USDT", 5)
        candles = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert close == Decimal("106602.15")
    assert Decimal(ticker["info"]["lastPrice"]) == close
    assert Decimal(ticker["info"]["bidPrice"]) == close
    assert Decimal(ticker["info"]["askPrice"]) == close + TICK
    assert len(book["bids"]) == 5
    assert len(book["asks"]) == 5
    assert book["bids"][0][0] == float(close)
    assert [row[0] for row in candles] == [int(ROWS[i][0]) for i in (98, 99, 100)]
    assert [row[4] for row in candles] == [float(ROWS[i][4]) for i in (98, 99, 100)]


async def test_the_market_clock_only_serves_bars_up_to_now():
    async with simulated() as sim, binance(sim) as exchange:
        state = await control(sim, "POST", "/sim/advance", bars="5")
        candles = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=1000)
    assert state["moved"] == 5
    assert state["symbols"]["BTCUSDT"]["bar"] == START_BAR + 5
    assert len(candles) == START_BAR + 6
    assert candles[-1][0] == int(ROWS[START_BAR + 5][0])


# --- orders --------------------------------------------------------------------------------------
async def test_market_buy_with_client_id_fills_at_the_ask_and_charges_the_fee_in_btc():
    """Buy 0.001 BTC at the ask 106602.16: pay 106.60216 USDT, receive 0.001 - 0.000001 BTC."""
    async with simulated() as sim, binance(sim) as exchange:
        placed = await exchange.create_order(
            "BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "mkt-1"}
        )
        fetched = await exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "mkt-1"})
        after = await balances(exchange)
    assert placed["clientOrderId"] == "mkt-1"
    assert placed["status"] == "closed"
    fill = placed["info"]["fills"][0]
    assert Decimal(fill["price"]) == Decimal("106602.16")
    assert Decimal(fill["commission"]) == Decimal("0.000001")
    assert fill["commissionAsset"] == "BTC"
    assert fetched["id"] == placed["id"]
    assert fetched["status"] == "closed"
    assert Decimal(fetched["info"]["executedQty"]) == Decimal("0.001")
    assert after["BTC"] == (Decimal("0.000999"), Decimal(0))
    assert after["USDT"] == (Decimal(10000) - Decimal("106.60216"), Decimal(0))


async def test_limit_buy_fills_partly_then_rests_until_the_market_trades_through():
    """Buy 0.3 BTC at the ask 106602.16 with 100000 USDT.

    The ask level holds q0 BTC: taker fill q0 (fee q0 * 0.001), the rest rests. A later bar
    with a low under 106602.16 fills the rest at the limit (maker fee 0.001). In all:
    BTC = 0.3 - 0.3 * 0.001 = 0.2997; USDT = 100000 - 0.3 * 106602.16 = 68019.352.
    """
    limit = Decimal("106602.16")
    async with simulated(balances={"USDT": "100000"}) as sim, binance(sim) as exchange:
        book = await exchange.fetch_order_book("BTC/USDT", 1)
        level = await exchange.public_get_depth({"symbol": "BTCUSDT", "limit": 1})
        q0 = Decimal(level["asks"][0][1])
        assert book["asks"][0][0] == float(limit)
        assert q0 < Decimal("0.3")
        placed = await exchange.create_order(
            "BTC/USDT", "limit", "buy", 0.3, float(limit), {"clientOrderId": "lim-1"}
        )
        assert placed["status"] == "open"
        assert Decimal(placed["info"]["executedQty"]) == q0
        assert placed["info"]["status"] == "PARTIALLY_FILLED"
        locked = (await balances(exchange))["USDT"][1]
        assert locked == (Decimal("0.3") - q0) * limit
        crossing = next(i for i in range(START_BAR + 1, len(ROWS)) if Decimal(ROWS[i][3]) < limit)
        await control(sim, "POST", "/sim/advance", bars=str(crossing - START_BAR))
        done = await exchange.fetch_order(placed["id"], "BTC/USDT")
        trades = await exchange.fetch_my_trades("BTC/USDT")
        after = await balances(exchange)
    assert done["status"] == "closed"
    assert Decimal(done["info"]["executedQty"]) == Decimal("0.3")
    assert [t["takerOrMaker"] for t in trades] == ["taker", "maker"]
    assert after["BTC"] == (Decimal("0.2997"), Decimal(0))
    assert after["USDT"] == (Decimal("68019.352"), Decimal(0))


async def test_cancel_unlocks_the_funds_and_a_second_cancel_is_unknown():
    async with simulated() as sim, binance(sim) as exchange:
        placed = await exchange.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 100000, {"clientOrderId": "c-1"}
        )
        assert (await balances(exchange))["USDT"] == (Decimal(9000), Decimal(1000))
        assert [o["id"] for o in await exchange.fetch_open_orders("BTC/USDT")] == [placed["id"]]
        canceled = await exchange.cancel_order(placed["id"], "BTC/USDT")
        assert canceled["status"] == "canceled"
        assert (await balances(exchange))["USDT"] == (Decimal(10000), Decimal(0))
        with pytest.raises(ccxt_errors.OrderNotFound, match="-2011"):
            await exchange.cancel_order(placed["id"], "BTC/USDT")
        with pytest.raises(ccxt_errors.OrderNotFound, match="-2013"):
            await exchange.fetch_order("999", "BTC/USDT")


async def test_duplicate_client_id_of_an_open_order_is_refused_and_no_second_order_exists():
    async with simulated() as sim, binance(sim) as exchange:
        await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 100000, {"clientOrderId": "dup-1"})
        with pytest.raises(ccxt_errors.InvalidOrder, match="Duplicate order sent"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 100000, {"clientOrderId": "dup-1"})
        orders = await control(sim, "GET", "/sim/orders", clientOrderId="dup-1")
    assert len(orders) == 1


async def test_filter_failures_and_funds_are_refused_with_binance_codes():
    async with simulated() as sim, binance(sim) as exchange:
        # LOT_SIZE: 0.000015 is not a multiple of the 0.00001 step (sent raw, past ccxt's rounding).
        with pytest.raises(ccxt_errors.InvalidOrder, match="Filter failure: LOT_SIZE"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"quantity": "0.000015"})
        # PRICE_FILTER: off the 0.01 tick.
        with pytest.raises(ccxt_errors.InvalidOrder, match="Filter failure: PRICE_FILTER"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 100000, {"price": "100000.001"})
        # MIN_NOTIONAL: 0.00009 BTC is about 9.59 USDT, under 10. ccxt maps -1013 to BadRequest
        # when the URL is not api.binance.com (its body check knows only LOT_SIZE/PRICE_FILTER).
        with pytest.raises(ccxt_errors.BadRequest, match="Filter failure: MIN_NOTIONAL"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.00009)
        with pytest.raises(ccxt_errors.InsufficientFunds, match="insufficient balance"):
            await exchange.create_order("BTC/USDT", "market", "buy", 1)
        with pytest.raises(ccxt_errors.BadSymbol, match="-1121"):
            await exchange.private_get_order({"symbol": "NOPEUSDT", "orderId": 1})
        with pytest.raises(ccxt_errors.BadRequest, match="-1102"):
            await exchange.private_get_order({"symbol": "BTCUSDT"})
        state = await control(sim, "GET", "/sim/state")
    assert state["orders"] == 0
    assert state["balances"]["USDT"] == {"free": "10000", "locked": "0"}


async def test_empty_book_expires_a_market_order_and_a_halt_closes_the_market():
    async with simulated() as sim, binance(sim) as exchange:
        await control(sim, "POST", "/sim/market", symbol="BTCUSDT", book="empty")
        expired = await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        assert expired["status"] == "expired"
        assert Decimal(expired["info"]["executedQty"]) == 0
        await control(sim, "POST", "/sim/market", symbol="BTCUSDT", book="normal", status="BREAK")
        with pytest.raises(ccxt_errors.MarketClosed):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        assert (await balances(exchange))["USDT"] == (Decimal(10000), Decimal(0))


# --- authentication ------------------------------------------------------------------------------
async def test_bad_signature_unknown_key_and_stale_timestamp_are_refused():
    async with simulated() as sim:
        async with binance(sim, secret="not-the-secret") as exchange:  # noqa: S106 - a wrong one
            with pytest.raises(ccxt_errors.AuthenticationError, match="-1022"):
                await exchange.fetch_balance()
        async with binance(sim, api_key="someone-else") as exchange:
            with pytest.raises(ccxt_errors.AuthenticationError, match="-2015"):
                await exchange.fetch_balance()
        async with binance(sim) as exchange:
            exchange.options["timeDifference"] = 120_000  # requests stamped two minutes late
            with pytest.raises(ccxt_errors.InvalidNonce, match="-1021"):
                await exchange.fetch_balance()


# --- faults --------------------------------------------------------------------------------------
async def test_rate_limit_ban_and_5xx_replies_map_to_ccxt_network_errors():
    async with simulated() as sim, binance(sim) as exchange:
        for spec, error in (
            ("rate_limit=1", ccxt_errors.DDoSProtection),
            ("ban=1", ccxt_errors.DDoSProtection),
            ("http5xx=1", ccxt_errors.ExchangeNotAvailable),
            ("http500=1", ccxt_errors.OperationFailed),
        ):
            await control(sim, "POST", "/sim/faults", spec=spec)
            with pytest.raises(error):
                await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        state = await control(sim, "POST", "/sim/faults", spec="")
    assert state["orders"] == 0  # refused at the gate: nothing was executed


async def test_request_weight_limit_answers_429():
    async with simulated() as sim, binance(sim) as exchange:
        sim.venue.weight_limit = sim.venue.weight_used + 1
        await exchange.fetch_ticker("BTC/USDT")
        with pytest.raises(ccxt_errors.DDoSProtection, match="429"):
            await exchange.fetch_ticker("BTC/USDT")


async def test_truncated_reply_is_not_an_error_to_ccxt_but_the_order_was_executed():
    """Show what ccxt 4.5 does with a truncated JSON body: it does not raise.

    ``create_order`` returns an order with no id whose ``info`` is the raw text, and list calls
    fail with AttributeError. Callers must check the reply themselves; the order exists at the
    venue all the same.
    """
    async with simulated() as sim, binance(sim) as exchange:
        await control(sim, "POST", "/sim/faults", spec="malformed=1")
        placed = await exchange.create_order(
            "BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "bad-1"}
        )
        assert placed["id"] is None
        assert isinstance(placed["info"], str)
        assert placed["info"].startswith('{"symbol":"BTCUSDT","orderId":1,')
        with pytest.raises(AttributeError):
            await exchange.fetch_open_orders("BTC/USDT")
        await control(sim, "POST", "/sim/faults", spec="")
        found = await exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "bad-1"})
    assert found["id"] == "1"
    assert found["status"] == "closed"


async def test_timeout_after_accept_leaves_exactly_one_order_to_find_by_client_id():
    async with simulated() as sim, binance(sim, timeout_ms=300) as exchange:
        await control(sim, "POST", "/sim/faults", spec="timeout_after_accept=1,hang_ms=2000")
        with pytest.raises(ccxt_errors.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "to-1"})
        await control(sim, "POST", "/sim/faults", spec="")
        found = await exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "to-1"})
        orders = await control(sim, "GET", "/sim/orders", clientOrderId="to-1")
    assert found["status"] == "closed"
    assert Decimal(found["info"]["executedQty"]) == Decimal("0.001")
    assert len(orders) == 1


async def test_dropped_connection_after_accept_is_exchange_not_available():
    async with simulated() as sim, binance(sim) as exchange:
        await control(sim, "POST", "/sim/faults", spec="drop=1")
        with pytest.raises(ccxt_errors.ExchangeNotAvailable):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "drop-1"})
        orders = await control(sim, "GET", "/sim/orders", clientOrderId="drop-1")
    assert len(orders) == 1


def test_fault_draws_repeat_for_a_seed():
    spec = parse_faults("latency=5, rate_limit=0.2, http5xx=0.3, malformed=0.1, seed=7")
    assert spec == FaultSpec(latency=5, rate_limit=0.2, http5xx=0.3, malformed=0.1, seed=7)
    first, second = FaultInjector(spec), FaultInjector(spec)
    draws = [first.draw() for _ in range(200)]
    assert draws == [second.draw() for _ in range(200)]
    assert {"rate_limit", "http5xx", "malformed", None} == set(draws)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("latency=fast", "latency"),
        ("http5xx=1.5", "http5xx"),
        ("rate_limit=0.7,http5xx=0.7", "add up"),
        ("explode=0.1", "explode"),
        ("seed", "seed"),
    ],
)
def test_bad_fault_spec_names_the_field(text, field):
    with pytest.raises(ParameterError, match=field) as caught:
        parse_faults(text)
    assert str(caught.value).startswith("--faults:")


def test_bad_data_dir_and_options_are_refused_before_serving(tmp_path: Path):
    with pytest.raises(DataFileError, match="--data"):
        make_venue(API_KEY, API_SECRET, data_dir=tmp_path)
    with pytest.raises(DataFileError, match="not a directory"):
        make_venue(API_KEY, API_SECRET, data_dir=tmp_path / "missing")
    (tmp_path / "binance_spot_DOGEUSDT_1m_x.csv").write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(DataFileError, match="DOGEUSDT"):
        make_venue(API_KEY, API_SECRET, data_dir=tmp_path)
    with pytest.raises(ParameterError, match="--port"):
        main_exchange_sim(0, API_KEY, API_SECRET, None, None)
    with pytest.raises(ParameterError, match="--faults"):
        main_exchange_sim(8080, API_KEY, API_SECRET, None, "http5xx=2")
    with pytest.raises(ParameterError, match="--api-secret"):
        main_exchange_sim(8080, API_KEY, " ", None, None)
