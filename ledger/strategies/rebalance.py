"""Threshold rebalancer: hold target weights of the traded asset and CASH (ledger.domain.rebalance).

Parameters (``--param``): ``targets`` such as ``BTC:0.6,CASH:0.4`` (weights in [0, 1] that sum
to exactly 1; a run trades one instrument, so the assets are its base asset and CASH),
``band`` (0.05: rebalance once a weight is more than 5 points off), ``min_trade`` (100 quote
units: smaller differences are left alone) and ``every`` (60: look every 60th bar, hourly on
one-minute candles). It looks at the first bar's close too, so a run starts at its targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.errors import ParameterError
from ledger.domain.events import DecisionAction, Side
from ledger.domain.numbers import ZERO, plain
from ledger.domain.rebalance import BAND_DEFAULT, CASH, MIN_TRADE_DEFAULT, rebalance_trades, weights
from ledger.strategies.canonical import canonical_json, input_digest

EVERY_DEFAULT = 60
PARAMS = ("targets", "band", "min_trade", "every")


@dataclass
class ThresholdRebalancer:
    """Trades the run's instrument back to its target weight when it drifts past the band."""

    base_asset: str
    targets: dict[str, Decimal] = field(default_factory=dict)
    band: Decimal = BAND_DEFAULT
    min_trade: Decimal = MIN_TRADE_DEFAULT
    every: int = EVERY_DEFAULT
    name: str = "rebalance"

    @classmethod
    def from_params(cls, params: Mapping[str, str], symbol: str) -> ThresholdRebalancer:
        """Build from ``--param`` strings for a run trading ``symbol``.

        Raises:
            ParameterError: an unknown key, a malformed or out-of-range value, weights that do
                not sum to 1, or an asset the run does not trade.
        """
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            msg = f"--param {unknown[0]}: the rebalance strategy takes {', '.join(PARAMS)}"
            raise ParameterError(msg)
        base = symbol.split("/", maxsplit=1)[0]
        targets = _targets(params.get("targets", f"{base}:0.5,{CASH}:0.5"), base)
        band = _decimal(params, "band", BAND_DEFAULT)
        if not ZERO < band < 1:
            msg = f"--param band={params['band']}: the band is a fraction between 0 and 1, e.g. 0.05"
            raise ParameterError(msg)
        min_trade = _decimal(params, "min_trade", MIN_TRADE_DEFAULT)
        if min_trade < ZERO:
            msg = f"--param min_trade={params['min_trade']}: the minimum trade is a quote amount >= 0"
            raise ParameterError(msg)
        try:
            every = int(params.get("every", str(EVERY_DEFAULT)))
        except ValueError as e:
            msg = f"--param every={params['every']}: give a whole number of bars, e.g. 60"
            raise ParameterError(msg) from e
        if every < 1:
            msg = f"--param every={every}: look at least every bar (every >= 1)"
            raise ParameterError(msg)
        return cls(base_asset=base, targets=targets, band=band, min_trade=min_trade, every=every)

    def params(self) -> dict[str, str]:
        """Return the parameters as strings (targets in a canonical order)."""
        return {
            "targets": ",".join(f"{asset}:{plain(w)}" for asset, w in sorted(self.targets.items())),
            "band": plain(self.band),
            "min_trade": plain(self.min_trade),
            "every": str(self.every),
        }

    def candidate_bars(self, candles: Candles) -> npt.NDArray[np.int64]:
        """Return every ``every``-th bar from the first."""
        return np.arange(0, len(candles), self.every, dtype=np.int64)

    async def decide(self, context: MarketContext) -> Decision | None:
        """Return the trade back to the targets, or None while every weight is within the band."""
        holdings = {self.base_asset: context.qty_open}
        prices = {self.base_asset: context.price_close}
        trades = rebalance_trades(
            targets=self.targets,
            holdings=holdings,
            prices=prices,
            cash=context.quote_free,
            band=self.band,
            min_trade=self.min_trade,
        )
        if not trades:
            return None
        trade = trades[0]  # one instrument: at most one trade
        seen = {
            "bar": context.bar,
            "close": str(context.price_close),
            "qty_open": str(context.qty_open),
            "quote_free": str(context.quote_free),
            "weights": {
                a: plain(w) for a, w in sorted(weights(holdings, prices, context.quote_free).items())
            },
        }
        action = DecisionAction.BUY if trade.side is Side.BUY else DecisionAction.SELL
        output = {"action": action.value, "weight_target": plain(trade.weight_target)}
        return Decision(
            instrument=context.instrument,
            action=action,
            weight_target=trade.weight_target,  # the engine sizes it to the step (order_path.sized)
            confidence=Decimal(1),
            rationale=(
                f"{trade.asset} at {plain(trade.weight_now.quantize(Decimal('0.0001')))} of equity vs "
                f"target {plain(trade.weight_target)} (band {plain(self.band)}): "
                f"{action.value} {plain(trade.value.quantize(Decimal('0.01')))} worth"
            ),
            input_digest=input_digest(seen),
            output=canonical_json(output),
        )


def _decimal(params: Mapping[str, str], key: str, default: Decimal) -> Decimal:
    text = params.get(key)
    if text is None:
        return default
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        msg = f"--param {key}={text}: give a decimal number"
        raise ParameterError(msg) from e
    if not value.is_finite():
        msg = f"--param {key}={text}: give a finite decimal number"
        raise ParameterError(msg)
    return value


def _targets(text: str, base: str) -> dict[str, Decimal]:
    targets: dict[str, Decimal] = {}
    for item in text.split(","):
        asset, sep, weight = item.strip().partition(":")
        asset = asset.strip().upper()
        if not sep or not asset:
            msg = f"--param targets={text}: write ASSET:WEIGHT pairs, e.g. {base}:0.6,CASH:0.4"
            raise ParameterError(msg)
        if asset not in {base, CASH}:
            msg = f"--param targets: {asset} is not traded by this run; use {base} and CASH"
            raise ParameterError(msg)
        if asset in targets:
            msg = f"--param targets: {asset} appears twice; give each asset once"
            raise ParameterError(msg)
        try:
            value = Decimal(weight)
        except InvalidOperation as e:
            msg = f"--param targets: {asset}:{weight} is not a decimal weight such as 0.6"
            raise ParameterError(msg) from e
        if not value.is_finite() or not ZERO <= value <= 1:
            msg = f"--param targets: {asset}:{weight} must be a weight from 0 to 1"
            raise ParameterError(msg)
        targets[asset] = value
    total = sum(targets.values(), ZERO)
    if total != 1:
        msg = f"--param targets={text}: the weights sum to {plain(total)}; make them sum to exactly 1"
        raise ParameterError(msg)
    if base not in targets:
        msg = f"--param targets={text}: give {base}'s weight (0 to hold none)"
        raise ParameterError(msg)
    return targets
