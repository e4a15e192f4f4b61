"""LiteLLM's duration strings: seconds and window ends, calendar months included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy import durations
from proxy.durations import DurationError


def _t(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 1209600),
        (45, 45),
        ("1mo", 2592000),
        ("1.5h", 5400),
        ("7D", 604800),
    ],
)
def test_seconds(text: str | int, expected: float) -> None:
    assert durations.seconds(text) == expected


@pytest.mark.parametrize("bad", ["", "d", "1y", "-1d", "0s", "1 day", True])
def test_bad_forms_are_refused(bad: object) -> None:
    with pytest.raises(DurationError):
        durations.seconds(bad)  # type: ignore[arg-type]


def test_calendar_months_end_on_the_same_day_or_the_last_one() -> None:
    assert durations.window_end("1mo", _t(2026, 1, 15)) == _t(2026, 2, 15)
    assert durations.window_end("1mo", _t(2026, 1, 31)) == _t(2026, 2, 28)
    assert durations.window_end("2mo", _t(2026, 12, 1)) == _t(2027, 2, 1)


def test_next_end_skips_whole_windows_that_passed() -> None:
    start = _t(2026, 1, 1)
    assert durations.next_end("1d", start, start + 10) == start + 86400
    assert durations.next_end("1d", start, start + 86400) == start + 2 * 86400
    assert durations.next_end("1d", start, start + 5.5 * 86400) == start + 6 * 86400
    assert durations.next_end("1mo", start, _t(2026, 3, 10)) == _t(2026, 4, 1)
