"""How long an upstream asked to be left alone: one reading of `Retry-After` and its cousins.

Every adapter's `classify_error` uses it, so OpenAI and Anthropic answers mean the same wait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_WAIT = 86_400.0
"""A longer ask is read as this (no vendor limit resets later than a day); keeps waits finite."""
# Read in this order when there is no retry-after-ms or retry-after. OpenAI's are durations
# (`1s`, `6m0s`, `250ms`); Anthropic's are RFC 3339 times.
_RESET_DURATIONS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_RESET_TIMES = tuple(
    f"anthropic-ratelimit-{kind}-reset"
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Returns the wait, in seconds, that an upstream answer asked for.

    The first usable header wins: `retry-after-ms`; `retry-after` (seconds or an HTTP-date);
    OpenAI's `x-ratelimit-reset-requests` / `-tokens` durations; Anthropic's
    `anthropic-ratelimit-*-reset` times. A date or time is measured from `now`, else from the
    answer's own `Date` header (an adapter has no clock); with neither it is skipped. A time
    already past is a wait of 0; a wait over MAX_WAIT is MAX_WAIT. Garbage (negative, not a
    number, inf, nan, an unreadable date) is skipped. Header names are matched in any case.

    Args:
        headers: the upstream answer's headers.
        now: the current Unix time, when the caller has a clock.

    Returns:
        The wait in seconds, or None when the answer names none.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if now is None:
        now = _timestamp(_http_date(lower.get("date", "")))
    waits = (
        _seconds(lower.get("retry-after-ms", ""), 0.001),
        _retry_after(lower.get("retry-after", ""), now),
        *(_duration(lower.get(name, "")) for name in _RESET_DURATIONS),
        *(_until(_iso_time(lower.get(name, "")), now) for name in _RESET_TIMES),
    )
    wait = next((w for w in waits if w is not None), None)
    return None if wait is None else min(wait, MAX_WAIT)


def _seconds(text: str, scale: float = 1.0) -> float | None:
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _retry_after(text: str, now: float | None) -> float | None:
    text = text.strip()
    if not text:
        return None
    seconds = _seconds(text)
    return seconds if seconds is not None else _until(_http_date(text), now)


def _duration(text: str) -> float | None:
    """Parses Go-style durations: `1s`, `250ms`, `6m0s`, `1h2m3.5s`."""
    total, number, i = 0.0, "", 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number, i = number + ch, i + 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in _UNITS or not number:
            return None
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:  # e.g. `1.2.3s`
            return None
        number, i = "", i + len(unit)
    return total if text and not number and math.isfinite(total) else None


def _http_date(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError, IndexError):
        return None


def _iso_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _timestamp(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _until(moment: datetime | None, now: float | None) -> float | None:
    then = _timestamp(moment)
    if then is None or now is None:
        return None
    return max(0.0, then - now)
