"""PriceTable against genai-prices' own numbers, overrides, unknown models and cache rates."""

from __future__ import annotations

import math
from dataclasses import replace

import genai_prices
import pytest

from proxy.config.types import Deployment
from proxy.schema import Usage
from proxy.store.pricing import PriceTable


def dep(provider: str, model: str, **kw) -> Deployment:
    return Deployment(
        id=f"{provider}-1", group="g", provider=provider, wire="openai", model=model,
        api_base="", key=None, key_env=None, **kw,
    )  # fmt: skip


def expected(provider_id: str, model: str, **usage) -> float:
    """The price genai-prices itself computes (its Decimal path, not ours)."""
    calc = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider_id)
    return float(calc.total_price)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model"),
    [
        ("openai", "openai", "gpt-4o"),
        ("openai", "openai", "gpt-4o-mini"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
        ("anthropic", "anthropic", "claude-sonnet-4-5"),
        ("groq", "groq", "llama-3.3-70b-versatile"),
        ("xai", "x-ai", "grok-3"),
        ("deepseek", "deepseek", "deepseek-chat"),
    ],
)
def test_plain_tokens_match_genai_prices(provider, provider_id, model):
    table = PriceTable()
    got = table.cost(dep(provider, model), Usage(prompt_tokens=1234, completion_tokens=567))
    assert got is not None
    assert math.isclose(got, expected(provider_id, model, input_tokens=1234, output_tokens=567))
    assert got > 0


def test_openai_cached_tokens_priced_at_cache_rate():
    usage = Usage(prompt_tokens=10_000, completion_tokens=100, cached_tokens=8_000)
    got = PriceTable().cost(dep("openai", "gpt-4o"), usage)
    want = expected(
        "openai", "gpt-4o", input_tokens=10_000, cache_read_tokens=8_000, output_tokens=100
    )
    no_cache = expected("openai", "gpt-4o", input_tokens=10_000, output_tokens=100)
    assert got is not None
    assert math.isclose(got, want)
    assert got < no_cache  # the cache rate is really applied


def test_anthropic_cache_read_and_write():
    usage = Usage(
        prompt_tokens=5_000, completion_tokens=300, cached_tokens=3_000, cache_write_tokens=1_500
    )
    got = PriceTable().cost(dep("anthropic", "claude-3-5-haiku-latest"), usage)
    want = expected(
        "anthropic", "claude-3-5-haiku-latest", input_tokens=5_000, cache_read_tokens=3_000,
        cache_write_tokens=1_500, output_tokens=300,
    )  # fmt: skip
    assert got is not None
    assert math.isclose(got, want)


def test_anthropic_long_context_tier():
    usage = Usage(prompt_tokens=250_000, completion_tokens=1_000)
    got = PriceTable().cost(dep("anthropic", "claude-sonnet-4-5"), usage)
    want = expected("anthropic", "claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000)
    assert got is not None
    assert math.isclose(got, want)


def test_override_wins():
    d = dep("openai", "gpt-4o", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    got = PriceTable().cost(d, Usage(prompt_tokens=1000, completion_tokens=500))
    assert got is not None
    assert math.isclose(got, 1000 * 1e-6 + 500 * 2e-6)


def test_override_prices_unknown_model():
    d = dep("hosted_vllm", "my-local-model", input_cost_per_token=3e-7, output_cost_per_token=0)
    table = PriceTable()
    assert table.known(d)
    got = table.cost(d, Usage(prompt_tokens=1000, completion_tokens=500))
    assert got is not None
    assert math.isclose(got, 1000 * 3e-7)


def test_override_cache_rate():
    d = dep(
        "openai", "gpt-4o", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
        cache_read_cost_per_token=1e-7,
    )  # fmt: skip
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
    got = PriceTable().cost(d, usage)
    assert got is not None
    assert math.isclose(got, 400 * 1e-6 + 600 * 1e-7)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model-xyz"),
        ("ollama", "llama3"),
        ("deepinfra", "whatever/model"),
        ("openrouter", "*"),
    ],
)
def test_unknown_is_none(provider, model):
    table = PriceTable()
    d = dep(provider, model)
    assert table.cost(d, Usage(prompt_tokens=10, completion_tokens=10)) is None
    assert not table.known(d)


def test_mock_is_free():
    d = dep("mock", "anything")
    assert PriceTable().cost(d, Usage(prompt_tokens=10, completion_tokens=10)) == 0.0
    assert PriceTable().known(d)


def test_wildcard_model_argument():
    d = dep("openrouter", "*")
    got = PriceTable().cost(
        d, Usage(prompt_tokens=100, completion_tokens=10), model="openai/gpt-4o"
    )
    want = expected("openrouter", "openai/gpt-4o", input_tokens=100, output_tokens=10)
    assert got is not None
    assert math.isclose(got, want)


def test_memo_is_per_model():
    table = PriceTable()
    a = dep("openai", "gpt-4o")
    b = replace(a, model="gpt-4o-mini")
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    cost_a, cost_b = table.cost(a, usage), table.cost(b, usage)
    assert cost_a is not None and cost_b is not None
    assert cost_b < cost_a
