"""The LLM agent without a network: answer checks, bounds, the request and its digest, replay."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from chat_server import answer
from factories import a_decision_made
from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, DecisionRejection, MarketContext
from ledger.domain.errors import ParameterError
from ledger.domain.events import DecisionAction, DecisionRejected
from ledger.strategies import build_strategy
from ledger.strategies.chat import ChatEndpoint, ChatFailedError, RecordedChat
from ledger.strategies.llm import LlmAgent
from ledger.strategies.llm_answer import AgentAnswer, AgentLimitAnswer, interpret, response_schema
from ledger.strategies.llm_params import LlmParams

MINUTE_MS = 60_000
BASE = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}


def context(**changes) -> MarketContext:
    values: dict[str, Any] = {
        "bar": 59,
        "instrument": "BTC/USDT",
        "price_close": Decimal("100000.00"),
        "qty_open": Decimal("0.02"),
        "quote_free": Decimal("5000"),
        "base_free": Decimal("0.02"),
        "equity": Decimal("7000.00"),
        "pnl_realized": Decimal(0),
        "fills": 1,
        "open_orders": 0,
    }
    values.update(changes)
    return MarketContext(**values)


def candles(bars: int = 120) -> Candles:
    open_ms = np.arange(bars, dtype=np.int64) * MINUTE_MS
    close = 10_000_000 + np.arange(bars, dtype=np.int64)
    return Candles(
        source="t.csv",
        digest="d",
        open_time_ms=open_ms,
        open=close,
        high=close + 5,
        low=close - 5,
        close=close,
        price_scale=2,
        interval_ms=MINUTE_MS,
    )


def check(content: str, ctx: MarketContext | None = None, *, limits: bool = False):
    model = AgentLimitAnswer if limits else AgentAnswer
    return interpret(content, ctx or context(), model=model, limit_band=Decimal("0.02"), input_digest="abc")


def reason(content: str, **kwargs) -> str:
    result = check(content, **kwargs)
    assert isinstance(result, DecisionRejection), result
    assert result.output == content
    assert result.input_digest == "abc"
    return result.reason


# --- valid answers ------------------------------------------------------------------------------
def test_a_valid_answer_becomes_a_decision_with_exact_decimals_and_its_raw_text() -> None:
    text = (
        '{"instrument":"BTC/USDT","action":"buy","qty":null,"qty_quote":1234.5678901234,'
        '"weight_target":null,"confidence":0.8,"rationale":"up"}'
    )
    result = check(text)
    assert result == Decision(
        instrument="BTC/USDT",
        action=DecisionAction.BUY,
        qty_quote=Decimal("1234.5678901234"),
        confidence=Decimal("0.8"),
        rationale="up",
        input_digest="abc",
        output=text,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"action": "hold"}, Decision(instrument="BTC/USDT", action=DecisionAction.HOLD)),
        (
            {"action": "sell", "qty": "0.01"},
            Decision(instrument="BTC/USDT", action=DecisionAction.SELL, qty=Decimal("0.01")),
        ),
        (
            {"action": "buy", "weight_target": 1},
            Decision(instrument="BTC/USDT", action=DecisionAction.BUY, weight_target=Decimal(1)),
        ),
        (
            {"action": "sell", "weight_target": 0},
            Decision(instrument="BTC/USDT", action=DecisionAction.SELL, weight_target=Decimal(0)),
        ),
    ],
)
def test_each_sizing_is_read_exactly(fields, expected: Decision) -> None:
    result = check(answer(confidence="0.5", **fields))
    assert isinstance(result, Decision)
    assert (result.action, result.qty, result.qty_quote, result.weight_target) == (
        expected.action,
        expected.qty,
        expected.qty_quote,
        expected.weight_target,
    )
    assert result.confidence == Decimal("0.5")


def test_a_limit_price_within_the_band_is_kept_when_limits_are_on() -> None:
    result = check(answer(action="buy", qty_quote=100, price_limit="99000.5"), limits=True)
    assert isinstance(result, Decision)
    assert result.price_limit == Decimal("99000.5")


# --- rejections ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["", "not json", '{"action": "buy"', "```json\n{}\n```", '{"confidence": NaN}', "[1, Infinity]"],
)
def test_text_that_is_not_json_is_malformed(text: str) -> None:
    assert reason(text) == "malformed_json"


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '"buy"',
        json.dumps({"action": "buy"}),  # fields missing
        answer(action="short", qty=1),  # no such action
        answer(action="buy", qty="1e5"),  # not a plain decimal string
        answer(action="buy", qty=True),
        answer(action="buy", qty=1, extra="x"),  # no extra fields
        answer(action="buy"),  # no size
        answer(action="buy", qty=1, weight_target=1),  # two sizes
        answer(action="hold", qty=1),  # hold takes no size
        answer(action="sell", qty_quote=10),  # qty_quote buys only
        answer(action="buy", qty_quote=10, price_limit=1),  # limits are off
        answer(confidence=None),
        answer(rationale=5),
    ],
)
def test_json_that_breaks_the_schema_is_a_schema_violation(text: str) -> None:
    assert reason(text) == "schema_violation"


def test_the_schema_violation_names_the_field() -> None:
    result = check(answer(action="short", qty=1))
    assert isinstance(result, DecisionRejection)
    assert result.detail.startswith("action: ")


@pytest.mark.parametrize("symbol", ["ETH/USDT", "BTCUSDT", "btc/usdt", ""])
def test_another_instrument_is_an_unknown_symbol(symbol: str) -> None:
    assert reason(answer(instrument=symbol, action="buy", qty_quote=10)) == "unknown_symbol"


@pytest.mark.parametrize(
    ("fields", "ctx_changes"),
    [
        ({"action": "buy", "qty_quote": "5000.01"}, {}),  # more than quote_free
        ({"action": "buy", "qty": "0.05001"}, {}),  # 0.05001 x 100000 > 5000
        ({"action": "sell", "qty": "0.02001"}, {}),  # more than base_free
        ({"action": "sell", "qty": "0.01"}, {"base_free": Decimal(0)}),  # nothing to sell
        ({"action": "buy", "weight_target": "1.01"}, {}),
        ({"action": "buy", "weight_target": -0.1}, {}),
        ({"action": "buy", "qty": 0}, {}),
        ({"action": "buy", "qty_quote": "-5"}, {}),
        ({"action": "hold", "confidence": "1.5"}, {}),
        ({"action": "hold", "confidence": -1}, {}),
        ({"action": "buy", "qty_quote": "0.0000000000000000001"}, {}),  # 19 places
        ({"action": "buy", "qty_quote": 1e15}, {"quote_free": Decimal(10) ** 20}),
    ],
)
def test_sizes_beyond_the_bounds_are_out_of_bounds(fields, ctx_changes) -> None:
    assert reason(answer(**fields), ctx=context(**ctx_changes)) == "out_of_bounds"


def test_a_buy_of_exactly_the_free_balance_is_within_bounds() -> None:
    assert isinstance(check(answer(action="buy", qty="0.05")), Decision)  # 0.05 x 100000 = 5000
    assert isinstance(check(answer(action="sell", qty="0.02")), Decision)


@pytest.mark.parametrize(
    ("limit", "ok"), [("98000", True), ("102000", True), ("97999.99", False), ("0", False)]
)
def test_a_limit_price_must_lie_within_the_band_of_the_close(limit: str, ok: bool) -> None:
    result = check(answer(action="buy", qty_quote=10, price_limit=limit), limits=True)
    assert isinstance(result, Decision) is ok
    if not ok:
        assert isinstance(result, DecisionRejection)
        assert result.reason == "out_of_bounds"


def test_the_response_schema_is_strict_every_field_required_and_no_extras() -> None:
    for model in (AgentAnswer, AgentLimitAnswer):
        schema = response_schema(model)
        assert schema["additionalProperties"] is False
        assert sorted(schema["required"]) == sorted(schema["properties"])
        assert schema["properties"]["action"]["enum"] == ["buy", "sell", "hold"]
    assert "price_limit" in response_schema(AgentLimitAnswer)["properties"]
    assert "price_limit" not in response_schema(AgentAnswer)["properties"]


# --- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"model": "m"}, "--param base_url"),
        ({"base_url": "http://x/v1"}, "--param model"),
        ({**BASE, "api_key": "sk-123"}, "--param api_key"),
        ({**BASE, "temprature": "0"}, "--param temprature"),
        ({**BASE, "base_url": "127.0.0.1:8080"}, "--param base_url"),
        ({**BASE, "every": "0"}, "--param every"),
        ({**BASE, "history": "x"}, "--param history"),
        ({**BASE, "temperature": "3"}, "--param temperature"),
        ({**BASE, "timeout_s": "NaN"}, "--param timeout_s"),
        ({**BASE, "retries": "11"}, "--param retries"),
        ({**BASE, "limit_orders": "yes"}, "--param limit_orders"),
        ({**BASE, "limit_band": "0"}, "--param limit_band"),
        ({**BASE, "key_label": " "}, "--param key_label"),
    ],
)
def test_bad_parameters_name_the_param(params, named: str) -> None:
    with pytest.raises(ParameterError, match=named) as raised:
        LlmParams.parse(params)
    assert "sk-123" not in str(raised.value)


def test_parameters_round_trip_and_never_hold_a_key() -> None:
    settings = LlmParams.parse({**BASE, "temperature": "0.20", "timeout_s": "1.5", "seed": "7"})
    strings = settings.as_strings()
    assert LlmParams.parse(strings) == settings
    assert strings["temperature"] == "0.20"
    assert (settings.timeout_ms, settings.backoff_ms, settings.retries) == (1500, 1000, 2)


def test_the_llm_strategy_needs_a_chat_connector() -> None:
    with pytest.raises(ParameterError, match="--strategy llm"):
        build_strategy("llm", BASE)


# --- the request and its digest -----------------------------------------------------------------
class ScriptedTransport:
    """A fake ChatTransport: returns or raises the scripted outcomes, keeps the bodies."""

    def __init__(self, *outcomes: str | ChatFailedError) -> None:
        self.outcomes = list(outcomes)
        self.bodies: list[bytes] = []
        self.endpoint: ChatEndpoint | None = None

    def connect(self, endpoint: ChatEndpoint) -> ScriptedTransport:
        self.endpoint = endpoint
        return self

    async def complete(self, body: bytes) -> str:
        self.bodies.append(body)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ChatFailedError):
            raise outcome
        return outcome


def agent(transport: ScriptedTransport, **params: str) -> LlmAgent:
    source = build_strategy("llm", {**BASE, "every": "60", "history": "3", **params}, chat=transport.connect)
    assert isinstance(source, LlmAgent)
    return source


def test_candidate_bars_close_on_the_grid_once_history_is_there() -> None:
    source = agent(ScriptedTransport())
    assert source.candidate_bars(candles(200)).tolist() == [59, 119, 179]
    source = agent(ScriptedTransport(), every="1", history="118")
    assert source.candidate_bars(candles(120)).tolist() == [117, 118, 119]


@pytest.mark.anyio
async def test_the_request_is_canonical_and_its_sha256_is_the_input_digest() -> None:
    transport = ScriptedTransport(answer(action="hold"), answer(action="hold"))
    source = agent(transport, temperature="0.2", seed="3")
    source.candidate_bars(candles())
    first = await source.decide(context())
    second = await source.decide(context())
    assert transport.bodies[0] == transport.bodies[1]
    body = transport.bodies[0]
    assert first.input_digest == second.input_digest == hashlib.sha256(body).hexdigest()
    request = json.loads(body, parse_float=Decimal)
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    assert request["temperature"] == Decimal("0.2")
    assert (request["model"], request["max_tokens"], request["seed"], request["stream"]) == (
        "m",
        400,
        3,
        False,
    )
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    assert request["response_format"]["json_schema"]["schema"] == response_schema(AgentAnswer)
    state = json.loads(request["messages"][1]["content"].split("\n")[1])
    assert state["price_close"] == "100000.00"
    assert state["recent_bars"]["rows"] == [
        ["1970-01-01T00:58:00+00:00", "100000.57", "100000.62", "100000.52", "100000.57"],
        ["1970-01-01T00:59:00+00:00", "100000.58", "100000.63", "100000.53", "100000.58"],
        ["1970-01-01T01:00:00+00:00", "100000.59", "100000.64", "100000.54", "100000.59"],
    ]


@pytest.mark.anyio
async def test_any_change_of_input_changes_the_digest() -> None:
    transport = ScriptedTransport(*[answer()] * 3)
    source = agent(transport)
    source.candidate_bars(candles())
    a = await source.decide(context())
    b = await source.decide(context(quote_free=Decimal("5000.01")))
    c = await source.decide(context(bar=119))
    assert len({a.input_digest, b.input_digest, c.input_digest}) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("reason_code", ["timeout", "http_error", "refused"])
async def test_a_transport_failure_is_a_rejection_with_its_reason(reason_code: str) -> None:
    source = agent(ScriptedTransport(ChatFailedError(reason_code, "what happened", "body")))
    source.candidate_bars(candles())
    result = await source.decide(context())
    assert isinstance(result, DecisionRejection)
    assert (result.reason, result.detail, result.output) == (reason_code, "what happened", "body")
    assert len(result.input_digest) == 64


# --- replay from the record ---------------------------------------------------------------------
@pytest.mark.anyio
async def test_recorded_chat_answers_by_digest_and_reraises_recorded_failures() -> None:
    live = ScriptedTransport(answer(action="hold"), ChatFailedError("timeout", "no answer within 1 s"))
    source = agent(live)
    source.candidate_bars(candles())
    made = await source.decide(context())
    rejected = await source.decide(context(bar=119))
    assert isinstance(rejected, DecisionRejection)
    made_event = a_decision_made(input_digest=made.input_digest, output=made.output)
    recorded = RecordedChat(
        [
            made_event,
            DecisionRejected(
                originator_id=made_event.originator_id,
                originator_version=3,
                occurred_at=made_event.occurred_at,
                run_id=made_event.run_id,
                decision_id="r-n1",
                source="llm",
                instrument="BTC/USDT",
                reason="timeout",
                detail=rejected.detail,
                input_digest=rejected.input_digest,
                output="",
            ),
        ]
    )
    replayed = agent(ScriptedTransport())
    replayed.transport = recorded
    replayed.candidate_bars(candles())
    assert await replayed.decide(context()) == made
    assert await replayed.decide(context(bar=119)) == rejected
    unknown = await replayed.decide(context(quote_free=Decimal(1)))
    assert isinstance(unknown, DecisionRejection)
    assert unknown.reason == "not_recorded"


@pytest.mark.anyio
async def test_key_label_is_a_recorded_parameter_that_reaches_the_connector_not_the_request() -> None:
    transport = ScriptedTransport(answer(action="hold"))
    source = agent(transport, key_label="openai")
    source.candidate_bars(candles())
    await source.decide(context())
    assert source.params()["key_label"] == "openai"
    assert LlmParams.parse(source.params()) == source.settings
    assert transport.endpoint is not None
    assert transport.endpoint.key_label == "openai"
    assert b"openai" not in transport.bodies[0]  # the request (and its digest) do not depend on it
    assert "key_label" not in agent(ScriptedTransport()).params()
