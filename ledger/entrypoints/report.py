"""The HTML run report: equity curve, drawdown, trades and metrics in one offline page.

Why plotly: interactive charts in a single self-contained file (the library's JavaScript is
inlined), so the page opens with no network; it is a well-kept, widely used package.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from projections.performance import drawdown_series, equity_series, metrics
from projections.portfolio import RunView

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222 }
table { border-collapse: collapse; margin: 8px 0 24px }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; font-variant-numeric: tabular-nums }
th { text-align: left; background: #f6f6f6 }
.trades { max-height: 420px; overflow: auto; display: inline-block }
"""


def _figure(run: RunView) -> go.Figure:
    times = [p.at for p in run.equity]
    equity = equity_series(run)
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.06,
        subplot_titles=("Equity (" + run.started.quote_asset + ")", "Drawdown"),
    )
    figure.add_trace(go.Scatter(x=times, y=equity, name="equity", mode="lines"), row=1, col=1)
    figure.add_trace(
        go.Scatter(
            x=times,
            y=drawdown_series(run),
            name="drawdown",
            mode="lines",
            fill="tozeroy",
            line={"color": "#c0392b"},
        ),
        row=2,
        col=1,
    )
    figure.update_yaxes(tickformat=".1%", row=2, col=1)
    figure.update_layout(height=640, margin={"l": 60, "r": 20, "t": 40, "b": 40}, showlegend=False)
    return figure


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "—" if value is None else str(value)


def render(run: RunView, fills: list[dict[str, Any]]) -> str:
    """Return the report page for ``run``; ``fills`` are the run's fills, oldest first."""
    stats = metrics(run)
    summary = [
        ("run", str(run.run_id)),
        ("mode", run.mode),
        ("instrument", run.started.instrument),
        ("strategy", f"{run.started.strategy} {run.started.params}"),
        ("data", run.started.data_source),
        ("cash_initial", str(run.started.cash_initial)),
        ("equity_final", str(run.ended.equity_final) if run.ended is not None else str(run.equity_now())),
        ("events", run.events),
        ("orders", run.orders),
        ("fills", run.fills),
    ]
    scalar = [(k, v) for k, v in stats.items() if not isinstance(v, dict)]
    trade_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(f[c]))}</td>" for c in ("occurred_at", "side", "qty", "price", "fee")
        )
        + "</tr>"
        for f in fills
    )
    chart = _figure(run).to_html(full_html=False, include_plotlyjs=True, div_id="equity-chart")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tradeledger run {run.run_id}</title>
<style>{_STYLE}</style></head>
<body><h1>Run {html.escape(str(run.run_id))}</h1>
<div style="display:flex;gap:48px;flex-wrap:wrap"><div><h2>Run</h2>{_table(summary)}</div>
<div><h2>Metrics</h2>{_table(scalar)}</div></div>
{chart}
<h2>Trades ({len(fills)} fills)</h2><div class="trades"><table id="trades">
<tr><th>time</th><th>side</th><th>qty</th><th>price</th><th>fee</th></tr>{trade_rows}</table></div>
</body></html>
"""


def write_report(run: RunView, fills: list[dict[str, Any]], out: Path) -> None:
    """Write the report page to ``out``."""
    out.write_text(render(run, fills), encoding="utf-8")
