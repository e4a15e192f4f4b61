"""The one Retry-After reading both adapters use: seconds, HTTP-dates, ms, reset headers, caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from proxy.providers.retry_after import MAX_WAIT, retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": " 3 "}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "4"}, 4.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({}, None),
    ],
)
def test_seconds_and_milliseconds(headers, expected):
    assert retry_after(headers) == expected


def test_milliseconds_win_over_seconds():
    assert retry_after({"retry-after": "2", "retry-after-ms": "250"}) == 0.25


def test_http_date_is_measured_from_the_answers_date_header():
    headers = {"retry-after": http_date(NOW + timedelta(seconds=30)), "date": http_date(NOW)}
    assert retry_after(headers) == 30.0


def test_http_date_is_measured_from_now_when_given():
    headers = {"retry-after": http_date(NOW + timedelta(seconds=90)), "date": http_date(NOW)}
    assert retry_after(headers, now=(NOW + timedelta(seconds=60)).timestamp()) == 30.0


def test_http_date_without_a_clock_is_skipped():
    assert retry_after({"retry-after": http_date(NOW + timedelta(seconds=30))}) is None


def test_http_date_in_the_past_means_now():
    headers = {"retry-after": http_date(NOW - timedelta(minutes=5)), "date": http_date(NOW)}
    assert retry_after(headers) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1s", 1.0), ("1.5s", 1.5), ("250ms", 0.25), ("6m0s", 360.0), ("1h2m3.5s", 3723.5)],
)
def test_openai_reset_durations(value, expected):
    assert retry_after({"x-ratelimit-reset-requests": value}) == pytest.approx(expected)


def test_openai_request_reset_is_read_before_token_reset():
    headers = {"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "30ms"}
    assert retry_after(headers) == 2.0
    assert retry_after({"x-ratelimit-reset-tokens": "30ms"}) == pytest.approx(0.03)


def test_anthropic_reset_times_are_measured_from_the_date_header():
    reset = (NOW + timedelta(seconds=12)).isoformat().replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-tokens-reset": reset, "date": http_date(NOW)}
    assert retry_after(headers) == 12.0
    assert retry_after({"anthropic-ratelimit-tokens-reset": reset}) is None  # no clock


def test_retry_after_wins_over_reset_headers():
    headers = {
        "retry-after": "7",
        "x-ratelimit-reset-requests": "1s",
        "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:07Z",
        "date": http_date(NOW),
    }
    assert retry_after(headers) == 7.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "-3"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "1e400"},
        {"retry-after": ""},
        {"retry-after-ms": "-1"},
        {"retry-after-ms": "fast"},
        {"x-ratelimit-reset-requests": "6x"},
        {"x-ratelimit-reset-requests": "s"},
        {"x-ratelimit-reset-requests": "10"},
        {"x-ratelimit-reset-requests": "1.2.3s"},
        {"x-ratelimit-reset-requests": ""},
        {"anthropic-ratelimit-requests-reset": "tomorrow", "date": "Sat, 01 Mar 2025 12:00:00 GMT"},
        {"retry-after": "Sat, 99 Foo 2025 12:00:00 GMT", "date": "Sat, 01 Mar 2025 12:00:00 GMT"},
        {"retry-after": "Sat, 01 Mar 2025 12:00:30 GMT", "date": "yesterday"},
    ],
)
def test_garbage_is_skipped(headers):
    assert retry_after(headers) is None


def test_garbage_falls_through_to_the_next_header():
    assert retry_after({"retry-after": "soon", "x-ratelimit-reset-requests": "3s"}) == 3.0
    assert retry_after({"retry-after-ms": "-5", "retry-after": "2"}) == 2.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "1e300"},
        {"retry-after": str(int(MAX_WAIT) * 10)},
        {"retry-after-ms": str(int(MAX_WAIT) * 10_000)},
        {"x-ratelimit-reset-requests": "9999h"},
        {"retry-after": http_date(NOW + timedelta(days=30)), "date": http_date(NOW)},
    ],
)
def test_long_waits_are_capped(headers):
    assert retry_after(headers) == MAX_WAIT


def test_both_adapters_read_the_same_wait():
    from proxy.config.types import Deployment
    from proxy.providers.anthropic.provider import AnthropicProvider
    from proxy.providers.openai import OpenAIProvider

    headers = {"retry-after": http_date(NOW + timedelta(seconds=5)), "date": http_date(NOW)}
    for provider in (OpenAIProvider(), AnthropicProvider()):
        dep = Deployment(
            id="d-1", group="g", provider=provider.wire, wire=provider.wire, model="m",
            api_base="", key=None, key_env=None,
        )  # fmt: skip
        assert provider.classify_error(dep, 429, headers, b"{}").retry_after == 5.0
