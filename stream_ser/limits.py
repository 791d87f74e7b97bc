"""Numbers checked at the door: every numeric option is finite and within its
documented range before any work starts.

The options dataclasses call :func:`check_number` from their ``check()``
(also run when they are made), so the Python API is held to the same ranges as
the command line; the CLI reports an :class:`OptionError` as one line naming
its flag (``--hop must be ...``).
"""

from __future__ import annotations

import math
import numbers

from .errors import UsageError


class OptionError(UsageError):
    """A numeric option outside its range.  ``name`` is the option's field name
    (``hop``, ``neutral_bias``); ``why`` says what it must be and what it was."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name} {why}")
        self.name, self.why = name, why

    @property
    def flag(self) -> str:
        """The message with the command line's spelling of the option."""
        return f"--{self.name.replace('_', '-')} {self.why}"


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_number(name: str, value, lo, hi, unit: str = "", integer: bool = False, zero: bool = False):
    """``value`` if it is a finite number (an integer if ``integer``) within
    ``[lo, hi]`` (or exactly 0 when ``zero``); else :class:`OptionError`."""
    range_ = f"{'0 or ' if zero else ''}{'an integer' if integer else 'a finite number'} from {_fmt(lo)} to {_fmt(hi)}{unit}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (not integer or float(value).is_integer())
    if not (ok and (lo <= value <= hi or (zero and value == 0))):
        raise OptionError(name, f"must be {range_}, not {value!r}")
    return value
