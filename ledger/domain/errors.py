"""The exception tree, organised by what the caller should do.

::

    LedgerError
    ├── BadInputError                 # the caller's input is wrong; nothing was written (exit 2)
    │   ├── UnknownSymbolError
    │   ├── DataFileError             # a candle file is malformed, truncated or unsorted
    │   └── ParameterError            # a strategy or option value is invalid
    ├── CommandRejectedError          # a rule refused the command; the denial is an event
    │   ├── TradingHaltedError        # kill switch engaged (exit 4)
    │   └── InvalidOrderError         # quantity/price violates instrument step, tick or limits
    ├── ConcurrencyConflictError      # stream version or chain clash; reload and retry once
    ├── RunNotFoundError              # no such run in this ledger (exit 2)
    └── InvariantViolationError       # a bug or corrupt history: stop the run (exit 3)
        ├── FillConflictError         # same venue trade id, different payload
        └── ChainBrokenError          # the stored hash chain does not verify
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class BadInputError(LedgerError):
    """The caller's input is wrong; the message names the field and the fix."""


class UnknownSymbolError(BadInputError):
    """A symbol the ledger has no instrument for."""


class DataFileError(BadInputError):
    """A market-data file is malformed, truncated or unsorted."""


class ParameterError(BadInputError):
    """A strategy parameter or command option is invalid."""


class CommandRejectedError(LedgerError):
    """A rule refused the command; the refusal was recorded as an event."""


class TradingHaltedError(CommandRejectedError):
    """The kill switch is engaged; new orders are denied."""


class PromotionRefusedError(CommandRejectedError):
    """A paper record failed the promotion gates to live; the refusal was recorded."""


class InvalidOrderError(CommandRejectedError):
    """The order violates the instrument's step, tick or limits."""


class ConcurrencyConflictError(LedgerError):
    """Another writer appended to the same stream or run chain first."""


class RunNotFoundError(LedgerError):
    """No run with that id (or prefix) exists in the ledger."""


class InvariantViolationError(LedgerError):
    """Stored history or state breaks a ledger invariant; trading must stop."""


class FillConflictError(InvariantViolationError):
    """A fill reuses a venue trade id with a different payload."""


class ChainBrokenError(InvariantViolationError):
    """The stored hash chain of a run does not verify."""
