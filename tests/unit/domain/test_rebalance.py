"""The threshold rebalancing rule (design supplement defaults: 5 % band, 100 minimum trade)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.events import Side
from ledger.domain.rebalance import CASH, rebalance_trades, weights

D = Decimal
TARGETS = {"BTC": D("0.4"), "ETH": D("0.3"), "BNB": D("0.2"), CASH: D("0.1")}
PRICES = {"BTC": D("100000"), "ETH": D("2500"), "BNB": D("600")}


def test_nothing_trades_while_every_weight_is_within_the_band() -> None:
    # 0.42 / 0.28 / 0.2 / 0.1 of 100000: every deviation is at most 0.02.
    holdings = {"BTC": D("0.42"), "ETH": D("11.2"), "BNB": D("33.333333333333333333")}

    assert rebalance_trades(targets=TARGETS, holdings=holdings, prices=PRICES, cash=D("10000")) == []


def test_one_drift_beyond_the_band_rebalances_every_asset_largest_deviation_first() -> None:
    # BTC rallied: 0.6 BTC = 60000, ETH 8 = 20000, BNB 25 = 15000, cash 5000; equity 100000.
    holdings = {"BTC": D("0.6"), "ETH": D("8"), "BNB": D("25")}

    trades = rebalance_trades(targets=TARGETS, holdings=holdings, prices=PRICES, cash=D("5000"))

    assert [(t.asset, t.side, t.value) for t in trades] == [
        ("BTC", Side.SELL, D("20000")),  # 0.6 vs 0.4: the largest deviation
        ("ETH", Side.BUY, D("10000")),  # 0.2 vs 0.3
        ("BNB", Side.BUY, D("5000")),  # 0.15 vs 0.2
    ]
    assert trades[0].qty == D("0.2")
    assert trades[1].qty == D("4")


def test_differences_below_the_minimum_trade_are_left_alone() -> None:
    # BTC is far off, BNB only 50 away from its target.
    holdings = {"BTC": D("0.3"), "ETH": D("12"), "BNB": D("33.25")}
    cash = D("100000") - D("30000") - D("30000") - D("19950")

    trades = rebalance_trades(targets=TARGETS, holdings=holdings, prices=PRICES, cash=cash)

    assert [t.asset for t in trades] == ["BTC"]


def test_weights_include_cash_and_sum_to_one() -> None:
    shares = weights({"BTC": D("0.5")}, {"BTC": D("100000")}, D("50000"))

    assert shares == {"BTC": D("0.5"), CASH: D("0.5")}


@given(
    btc=st.decimals(min_value=0, max_value=10, places=5),
    eth=st.decimals(min_value=0, max_value=100, places=4),
    cash=st.decimals(min_value=1, max_value=1_000_000, places=2),
)
def test_applying_the_trades_lands_every_weight_on_its_target(
    btc: Decimal, eth: Decimal, cash: Decimal
) -> None:
    targets = {"BTC": D("0.5"), "ETH": D("0.25"), CASH: D("0.25")}
    holdings = {"BTC": btc, "ETH": eth}
    prices = {"BTC": D("104000.5"), "ETH": D("2500.25")}

    trades = rebalance_trades(
        targets=targets, holdings=holdings, prices=prices, cash=cash, band=D(0), min_trade=D(0)
    )
    after = dict(holdings)
    for trade in trades:
        sign = 1 if trade.side is Side.BUY else -1
        after[trade.asset] += sign * trade.qty
        cash -= sign * trade.value

    shares = weights(after, prices, cash)
    for asset, target in targets.items():
        assert abs(shares[asset] - target) < D("1e-20")
