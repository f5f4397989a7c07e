"""Binance wire vocabulary: the error replies, their HTTP statuses, and number formatting.

Codes, messages and statuses follow Binance's spot REST documentation ("Error codes" and
"HTTP Return Codes"): request errors are ``400``, an unknown or malformed API key ``401``,
rate limits ``429`` (``418`` once banned), and every error body is ``{"code": c, "msg": m}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT

# Binance prints every price and quantity with 8 decimals ("105573.73000000").
WIRE_EXPONENT = Decimal("1e-8")

HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_BANNED = 418
HTTP_TOO_MANY = 429


class BinanceError(Exception):
    """A refusal the server answers with Binance's ``{"code", "msg"}`` body.

    Args:
        code: Binance's (negative) error code.
        msg: Binance's message, worded as Binance words it.
        status: the HTTP status of the reply.
    """

    def __init__(self, code: int, msg: str, status: int = HTTP_BAD_REQUEST) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        """Return the JSON body Binance sends for this error."""
        return {"code": self.code, "msg": self.msg}


@dataclass(frozen=True)
class Refusal:
    """One of Binance's fixed error replies; ``error()`` makes a fresh exception to raise."""

    code: int
    msg: str
    status: int = HTTP_BAD_REQUEST

    def error(self) -> BinanceError:
        """Return a new exception carrying this reply."""
        return BinanceError(self.code, self.msg, self.status)


def mandatory(name: str) -> Refusal:
    """Return Binance's -1102 for a missing or empty parameter ``name``."""
    return Refusal(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def one_of(first: str, second: str) -> Refusal:
    """Return Binance's -1102 for two alternative parameters that were both missing."""
    return Refusal(-1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def illegal_number(name: str) -> Refusal:
    """Return Binance's -1100 for a parameter that is not a plain decimal number."""
    legal = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
    return Refusal(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


INVALID_SYMBOL = Refusal(-1121, "Invalid symbol.")
INVALID_SIGNATURE = Refusal(-1022, "Signature for this request is not valid.")
TIMESTAMP_AHEAD = Refusal(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
TIMESTAMP_OUTSIDE = Refusal(-1021, "Timestamp for this request is outside of the recvWindow.")
API_KEY_FORMAT = Refusal(-2014, "API-key format invalid.", HTTP_UNAUTHORIZED)
API_KEY_REJECTED = Refusal(-2015, "Invalid API-key, IP, or permissions for action.", HTTP_UNAUTHORIZED)
INSUFFICIENT_BALANCE = Refusal(-2010, "Account has insufficient balance for requested action.")
DUPLICATE_ORDER = Refusal(-2010, "Duplicate order sent.")
ORDER_NOT_FOUND = Refusal(-2013, "Order does not exist.")
UNKNOWN_ORDER = Refusal(-2011, "Unknown order sent.")
MARKET_CLOSED = Refusal(-1013, "Market is closed.")
INVALID_INTERVAL = Refusal(-1120, "Invalid interval.")
RECV_WINDOW_TOO_LARGE = Refusal(-1131, "recvWindow must be less than 60000")
INVALID_SIDE = Refusal(-1117, "Invalid side.")
INVALID_ORDER_TYPE = Refusal(-1116, "Invalid orderType.")
INVALID_TIME_IN_FORCE = Refusal(-1115, "Invalid timeInForce.")
ILLEGAL_CLIENT_ID = Refusal(
    -1100,
    "Illegal characters found in parameter 'newClientOrderId'; "
    "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
)
ILLEGAL_RESPONSE_TYPE = Refusal(-1100, "Illegal characters found in parameter 'newOrderRespType'.")


def not_required(name: str) -> Refusal:
    """Return Binance's -1106 for a parameter the order type does not take."""
    return Refusal(-1106, f"Parameter '{name}' sent when not required.")


def filter_failure(filter_type: str) -> Refusal:
    """Return Binance's -1013 ``Filter failure: <FILTER>`` rejection."""
    return Refusal(-1013, f"Filter failure: {filter_type}")


def wire(value: Decimal) -> str:
    """Return ``value`` as Binance writes numbers: a plain string with 8 decimals."""
    with localcontext(LEDGER_CONTEXT):
        return f"{value.quantize(WIRE_EXPONENT):f}"
