"""SMA crossover, evaluated exactly (workload W1).

With d = SMA_fast - SMA_slow on closes: buy when flat and d goes from <= 0 to > 0; sell the
whole position when long and d goes from >= 0 to < 0. The sign of d is computed on integer
price units as ``sign(sum_fast * slow - sum_slow * fast)``, so an exact tie is never a cross,
as floats can make it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.errors import ParameterError
from ledger.domain.events import DecisionAction
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO
from ledger.strategies.canonical import canonical_json, input_digest

# Why 2**62: products of int64 sums must not overflow; beyond this, fall back to Python ints.
_INT64_SAFE = 2**62


@dataclass
class SmaCrossover:
    """Long-only SMA(fast)/SMA(slow) crossover, sized as a fraction of free quote cash."""

    fast: int = 10
    slow: int = 30
    size: Decimal = Decimal("0.1")
    # Optional: place limit orders this many basis points on the passive side of the close
    # (paper and live only; the backtest venue simulates market orders).
    limit_offset_bps: Decimal | None = None
    name: str = "sma"

    def __post_init__(self) -> None:
        """Refuse windows and sizes that cannot trade."""
        if self.fast < 1:
            msg = f"--param fast={self.fast}: the fast window must be at least 1"
            raise ParameterError(msg)
        if self.slow <= self.fast:
            msg = f"--param slow={self.slow}: the slow window must be longer than fast={self.fast}"
            raise ParameterError(msg)
        if not ZERO < self.size <= 1:
            msg = f"--param size={self.size}: size is a fraction of free cash in (0, 1]"
            raise ParameterError(msg)
        self._up: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._down: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._sums: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SmaCrossover:
        """Build from ``--param`` strings: fast, slow (integers) and size (a decimal).

        Raises:
            ParameterError: an unknown key or a value that is not a number.
        """
        unknown = sorted(set(params) - {"fast", "slow", "size", "limit_offset_bps"})
        if unknown:
            msg = f"--param {unknown[0]}: the sma strategy takes fast, slow, size and limit_offset_bps"
            raise ParameterError(msg)
        try:
            fast = int(params.get("fast", "10"))
            slow = int(params.get("slow", "30"))
        except ValueError as e:
            msg = f"--param fast/slow: windows are whole numbers of bars ({e})"
            raise ParameterError(msg) from e
        try:
            size = Decimal(params.get("size", "0.1"))
        except InvalidOperation as e:
            msg = f"--param size={params.get('size')}: size is a decimal fraction such as 0.1"
            raise ParameterError(msg) from e
        if not size.is_finite():
            msg = f"--param size={size}: size is a decimal fraction such as 0.1"
            raise ParameterError(msg)
        offset = None
        if "limit_offset_bps" in params:
            try:
                offset = Decimal(params["limit_offset_bps"])
            except InvalidOperation as e:
                msg = "--param limit_offset_bps: give basis points as a number, e.g. 5"
                raise ParameterError(msg) from e
            if not offset.is_finite() or not ZERO <= offset < 10000:  # noqa: PLR2004 - 100 % in bps
                msg = f"--param limit_offset_bps={offset}: give basis points from 0 to under 10000"
                raise ParameterError(msg)
        return cls(fast=fast, slow=slow, size=size, limit_offset_bps=offset)

    def params(self) -> dict[str, str]:
        """Return the parameters as strings."""
        params = {"fast": str(self.fast), "slow": str(self.slow), "size": str(self.size)}
        if self.limit_offset_bps is not None:
            params["limit_offset_bps"] = str(self.limit_offset_bps)
        return params

    def candidate_bars(self, candles: Candles) -> npt.NDArray[np.int64]:
        """Return every bar where d changes sign in either direction (vectorised)."""
        close = candles.close
        if close.size <= self.slow:
            return np.zeros(0, dtype=np.int64)
        safe = int(close.max()) * self.slow * self.slow < _INT64_SAFE
        values = close if safe else close.astype(object)
        csum = np.concatenate(([0], np.cumsum(values)))
        n = close.size
        fast_sum = np.zeros(n, dtype=values.dtype)
        slow_sum = np.zeros(n, dtype=values.dtype)
        fast_sum[self.fast - 1 :] = csum[self.fast :] - csum[: n - self.fast + 1]
        slow_sum[self.slow - 1 :] = csum[self.slow :] - csum[: n - self.slow + 1]
        diff = fast_sum * self.slow - slow_sum * self.fast
        sign = np.sign(diff).astype(np.int64)
        valid = np.zeros(n, dtype=bool)
        valid[self.slow :] = True  # d exists at slow-1, so a change is first seen at slow
        previous = np.concatenate(([0], sign[:-1]))
        self._up = valid & (previous <= 0) & (sign > 0)
        self._down = valid & (previous >= 0) & (sign < 0)
        self._sums = (fast_sum, slow_sum)
        return np.flatnonzero(self._up | self._down).astype(np.int64)

    async def decide(self, context: MarketContext) -> Decision | None:
        """Buy ``size`` of free cash on a cross up when flat; sell everything on a cross down."""
        bar = context.bar
        if self._up[bar] and context.qty_open == ZERO:
            with localcontext(LEDGER_CONTEXT):
                spend = self.size * context.quote_free
            return self._decision(context, DecisionAction.BUY, qty=None, qty_quote=spend, word="above")
        if self._down[bar] and context.qty_open > ZERO:
            return self._decision(
                context, DecisionAction.SELL, qty=context.qty_open, qty_quote=None, word="below"
            )
        return None

    def _decision(
        self,
        context: MarketContext,
        action: DecisionAction,
        *,
        qty: Decimal | None,
        qty_quote: Decimal | None,
        word: str,
    ) -> Decision:
        if self._sums is None:  # a programmer error: the run loop calls candidate_bars first
            msg = "SmaCrossover.decide() before candidate_bars()"
            raise RuntimeError(msg)
        fast_sum, slow_sum = (int(s[context.bar]) for s in self._sums)
        seen = {
            "bar": context.bar,
            "close": str(context.price_close),
            "sum_fast_units": fast_sum,
            "sum_slow_units": slow_sum,
            "qty_open": str(context.qty_open),
            "quote_free": str(context.quote_free),
        }
        output = {
            "action": action.value,
            "qty": None if qty is None else str(qty),
            "qty_quote": None if qty_quote is None else str(qty_quote),
        }
        limit = None
        if self.limit_offset_bps is not None:
            sign = -1 if action is DecisionAction.BUY else 1  # the passive side of the close
            with localcontext(LEDGER_CONTEXT):
                limit = context.price_close * (1 + sign * self.limit_offset_bps / 10000)
        return Decision(
            instrument=context.instrument,
            action=action,
            qty=qty,
            qty_quote=qty_quote,
            price_limit=limit,
            confidence=Decimal(1),
            rationale=f"SMA({self.fast}) crossed {word} SMA({self.slow}) at close {context.price_close}",
            input_digest=input_digest(seen),
            output=canonical_json(output),
        )
