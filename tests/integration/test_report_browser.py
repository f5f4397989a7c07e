"""The HTML report, as a person sees it: a real backtest, `report`, then headless Chromium.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run); playwright only drives it and
never downloads a browser. Every request that is not a file: URL is aborted, so the page must
work offline, as the report promises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Route, sync_playwright

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 60_000
PAGE_TIMEOUT_MS = 60_000


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium); "
    ".ci/run does this and warns when it cannot",
)
def test_report_renders_equity_chart_and_every_fill_offline(cli, tmp_path):
    ledger = tmp_path / "run.db"
    report = tmp_path / "R.html"
    code, out, err = cli("--ledger", ledger, "backtest", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["fills"] > 0, "the bundled sample should trade"
    code, _, err = cli("--ledger", ledger, "report", "--out", report)
    assert code == 0, err
    assert report.exists()

    console_errors: list[str] = []
    blocked: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            context = browser.new_context()
            context.route("**/*", offline)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("console", on_console)
            page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_selector("#equity-chart .scatterlayer .trace path.js-line", state="attached")

            traces = page.locator("#equity-chart.js-plotly-plot .scatterlayer .trace").count()
            lines = page.locator("#equity-chart .scatterlayer .trace path.js-line")
            equity_path = lines.first.get_attribute("d")
            trace_names = page.evaluate("() => document.getElementById('equity-chart').data.map(t => t.name)")
            trade_rows = page.locator("#trades tr:has(td)").count()
        finally:
            browser.close()

    assert console_errors == []
    assert blocked == [], "the report must not fetch anything"
    assert traces >= 2
    assert trace_names[:2] == ["equity", "drawdown"]
    assert equity_path is not None
    assert equity_path.startswith("M")
    assert len(equity_path) > 100, "the equity line should have many points"
    assert trade_rows == summary["fills"]
