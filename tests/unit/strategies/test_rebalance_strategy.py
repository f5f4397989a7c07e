"""The rebalancer as a decision source: parameters, and the decision it returns."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from factories import a_market_context
from ledger.domain.errors import ParameterError
from ledger.domain.events import DecisionAction
from ledger.strategies import build_strategy
from ledger.strategies.rebalance import ThresholdRebalancer

D = Decimal


def test_parameters_round_trip_canonically_with_the_seeds_defaults() -> None:
    source = build_strategy("rebalance", {"targets": "cash:0.40, btc:0.6"}, symbol="BTC/USDT")

    assert source.params() == {
        "targets": "BTC:0.6,CASH:0.4",
        "band": "0.05",
        "min_trade": "100",
        "every": "60",
    }


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"targets": "BTC:0.6,CASH:0.5"}, "sum to 1.1; make them sum to exactly 1"),
        ({"targets": "ETH:0.6,CASH:0.4"}, "ETH is not traded by this run"),
        ({"targets": "BTC:1.2,CASH:-0.2"}, "must be a weight from 0 to 1"),
        ({"targets": "BTC:0.6,BTC:0.4"}, "appears twice"),
        ({"targets": "BTC0.6"}, "write ASSET:WEIGHT pairs"),
        ({"targets": "CASH:1"}, "give BTC's weight"),
        ({"band": "0"}, "--param band=0"),
        ({"min_trade": "-1"}, "--param min_trade=-1"),
        ({"every": "0"}, "--param every=0"),
        ({"every": "hourly"}, "--param every=hourly"),
        ({"fast": "10"}, "--param fast: the rebalance strategy takes"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(params: dict[str, str], names: str) -> None:
    with pytest.raises(ParameterError, match=names.replace("(", r"\(").replace(")", r"\)")):
        ThresholdRebalancer.from_params(params, "BTC/USDT")


def test_a_drift_beyond_the_band_asks_the_engine_for_the_target_weight() -> None:
    source = ThresholdRebalancer.from_params({"targets": "BTC:0.6,CASH:0.4"}, "BTC/USDT")

    decision = anyio.run(source.decide, a_market_context(qty_open="0.08", quote_free="2000"))  # BTC at 0.8

    assert decision is not None
    assert decision.action is DecisionAction.SELL
    assert decision.weight_target == D("0.6")
    assert (decision.qty, decision.qty_quote) == (None, None)
    assert "BTC at 0.8 of equity vs target 0.6" in decision.rationale
    assert len(decision.input_digest) == 64


def test_within_the_band_it_stays_silent() -> None:
    source = ThresholdRebalancer.from_params({"targets": "BTC:0.6,CASH:0.4"}, "BTC/USDT")

    assert anyio.run(source.decide, a_market_context(qty_open="0.063", quote_free="3700")) is None
