"""LiteLLM's duration strings (`budget_duration`, a key's `duration`, `time_period`): `30s`,
`10m`, `1h`, `1d`, `7d`, `2w`, `1mo`, read into seconds and into the moment a window ends.

A bare number is seconds. Months are calendar months (`1mo` from 31 January ends on the last
day of February), every other unit a fixed number of seconds.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
"""Seconds per unit; `mo` (calendar months) is handled apart."""
MONTH_SECONDS = 30 * 86400.0
"""What a month counts as where a fixed length is needed (`seconds`)."""
_FORM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mo|s|m|h|d|w)?\s*$", re.IGNORECASE)


class DurationError(ValueError):
    """A duration string that is not one of LiteLLM's forms."""


def parse(text: str | float | int) -> tuple[float, str]:
    """Returns (amount, unit) of a duration; unit is one of s, m, h, d, w, mo.

    Raises:
        DurationError: not a positive number with an optional unit.
    """
    if isinstance(text, bool):
        raise DurationError(f"{text!r} is not a duration")
    if isinstance(text, (int, float)):
        amount, unit = float(text), "s"
    else:
        match = _FORM.match(str(text))
        if match is None:
            raise DurationError(
                f"{str(text)[:40]!r} is not a duration (use a number with s, m, h, d, w or mo, "
                "e.g. 30s, 1h, 1d, 30d, 1mo)"
            )
        amount, unit = float(match.group(1)), (match.group(2) or "s").lower()
    if amount <= 0:
        raise DurationError(f"{text!r} is not a positive duration")
    return amount, unit


def seconds(text: str | float | int) -> float:
    """Returns a duration in seconds (a month counts as 30 days).

    Raises:
        DurationError: see `parse`.
    """
    amount, unit = parse(text)
    return amount * (MONTH_SECONDS if unit == "mo" else UNITS[unit])


def window_end(text: str | float | int, start: float) -> float:
    """Returns when a window of this duration that began at `start` (epoch seconds) ends.

    Raises:
        DurationError: see `parse`.
    """
    amount, unit = parse(text)
    if unit != "mo":
        return start + amount * UNITS[unit]
    begun = datetime.fromtimestamp(start, UTC)
    months = begun.month - 1 + int(amount)
    year, month = begun.year + months // 12, months % 12 + 1
    day = min(begun.day, calendar.monthrange(year, month)[1])
    return begun.replace(year=year, month=month, day=day).timestamp()


def next_end(text: str | float | int, start: float, now: float) -> float:
    """Returns the end of the window, of windows laid end to end from `start`, that holds
    `now` (the first end after `now`).

    Raises:
        DurationError: see `parse`.
    """
    end = window_end(text, start)
    if end > now:
        return end
    amount, unit = parse(text)
    if unit != "mo":
        step = amount * UNITS[unit]
        return end + step * (int((now - end) // step) + 1)
    while end <= now:
        end = window_end(text, end)
    return end
