"""Cost in USD of one answer: model_info overrides first, else the bundled `genai-prices` table.

The table is never fetched at run time. Each (provider, model) lookup is resolved once into
plain per-token floats, so `PriceTable.cost()` is a few dict lookups and multiplications.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Not only its public `calc_price`: the tables themselves, resolved once per model into floats
# (calc_price would redo the lookup and Decimal arithmetic for every answer). Hence the
# minor-version pin on genai-prices in pyproject.toml.
from genai_prices import data_snapshot, types

from proxy.config.types import Deployment
from proxy.providers.registry import answers_locally
from proxy.schema import Usage

# Our provider names (LiteLLM's) -> genai-prices provider ids. Absent: no known price.
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "xai": "x-ai",
    "cerebras": "cerebras",
    "perplexity": "perplexity",
    "gemini": "google",
    "vertex_ai": "google",  # Google's table prices Claude on Vertex too
}

# Some prices depend on the date or the time of day (e.g. DeepSeek off-peak): a resolved
# price is trusted for this long, then resolved again.
_RESOLVE_TTL_S = 60.0

# A price as (start, usd_per_token) tiers, highest start first; the base rate has start -1.
# Like genai-prices, a tier applies to all tokens once total input tokens exceed its start.
Tiers = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Rates:
    """Per-token USD prices of one model; None where the table has no such price."""

    input: Tiers
    output: Tiers
    cache_read: Tiers | None = None
    cache_write: Tiers | None = None
    reasoning: Tiers | None = None


def _tiers(value: Decimal | types.TieredPrices | None) -> Tiers | None:
    if value is None:
        return None
    if isinstance(value, types.TieredPrices):
        rows = [(-1, value.base)] + [(t.start, t.price) for t in value.tiers]
    else:
        rows = [(-1, value)]
    return tuple(sorted(((start, float(p) / 1e6) for start, p in rows), reverse=True))


def _rate(tiers: Tiers, total_input: int) -> float:
    for start, price in tiers:
        if total_input > start:
            return price
    return tiers[-1][1]


def _fixed(value: float | None) -> Tiers | None:
    return None if value is None else ((-1, value),)


def rates_from_model_price(price: types.ModelPrice) -> Rates | None:
    """Reads the token prices we can apply out of a genai-prices `ModelPrice`.

    Returns:
        The rates, or None when the model has no input or output token price.
    """
    attrs: dict[str, Any] = price.__dict__
    inp, out = _tiers(attrs.get("input_mtok")), _tiers(attrs.get("output_mtok"))
    if inp is None or out is None:
        return None
    return Rates(
        input=inp,
        output=out,
        cache_read=_tiers(attrs.get("cache_read_mtok")),
        cache_write=_tiers(attrs.get("cache_write_mtok")),
        reasoning=_tiers(attrs.get("output_reasoning_mtok")),
    )


def price_usage(rates: Rates, usage: Usage) -> float:
    """USD for `usage` at `rates`.

    Cache reads and writes are part of prompt_tokens; each is priced at its own rate when the
    table has one, otherwise at the input rate. Reasoning tokens (part of completion_tokens)
    likewise at their own rate when there is one.

    Returns:
        The cost in USD.
    """
    total_in = usage.prompt_tokens
    plain_in = usage.prompt_tokens
    cost = 0.0
    if rates.cache_read is not None and usage.cached_tokens:
        cost += usage.cached_tokens * _rate(rates.cache_read, total_in)
        plain_in -= usage.cached_tokens
    if rates.cache_write is not None and usage.cache_write_tokens:
        cost += usage.cache_write_tokens * _rate(rates.cache_write, total_in)
        plain_in -= usage.cache_write_tokens
    plain_out = usage.completion_tokens
    if rates.reasoning is not None and usage.reasoning_tokens:
        cost += usage.reasoning_tokens * _rate(rates.reasoning, total_in)
        plain_out -= usage.reasoning_tokens
    cost += max(plain_in, 0) * _rate(rates.input, total_in)
    cost += max(plain_out, 0) * _rate(rates.output, total_in)
    return cost


@dataclass
class _Resolved:
    model: types.ModelInfo | None
    rates: Rates | None
    expires: float


class PriceTable:
    """Prices deployments' usage; memoizes each (provider, model) lookup. Thread-safe."""

    def __init__(self) -> None:
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._lock = threading.Lock()

    def cost(self, dep: Deployment, usage: Usage, *, model: str | None = None) -> float | None:
        """The USD cost of `usage` on `dep`.

        Args:
            dep: the deployment that answered; its model_info prices win over the table.
            usage: the upstream's token counts.
            model: the upstream model name when it differs from `dep.model` (wildcard groups).

        Returns:
            The cost, 0.0 for a provider answering locally (the mock), or None when the
            price is unknown.
        """
        if answers_locally(dep.provider):  # no upstream, no bill
            return 0.0
        rates = self._rates(dep, model or dep.model)
        return None if rates is None else price_usage(rates, usage)

    def known(self, dep: Deployment, *, model: str | None = None) -> bool:
        """Returns: whether `cost()` can price this deployment (and model)."""
        return answers_locally(dep.provider) or self._rates(dep, model or dep.model) is not None

    def _rates(self, dep: Deployment, model: str) -> Rates | None:
        table = self._table_rates(dep.provider, model)
        overrides = (
            dep.input_cost_per_token,
            dep.output_cost_per_token,
            dep.cache_read_cost_per_token,
            dep.cache_write_cost_per_token,
        )
        if all(o is None for o in overrides):
            return table
        # Each price given in model_info wins; the others come from the table when it knows them.
        inp = _fixed(dep.input_cost_per_token) or (table.input if table else None)
        out = _fixed(dep.output_cost_per_token) or (table.output if table else None)
        if inp is None or out is None:
            return None
        return Rates(
            input=inp,
            output=out,
            cache_read=_fixed(dep.cache_read_cost_per_token)
            or (table.cache_read if table else None),
            cache_write=_fixed(dep.cache_write_cost_per_token)
            or (table.cache_write if table else None),
            reasoning=table.reasoning if table else None,
        )

    def _table_rates(self, provider: str, model: str) -> Rates | None:
        key = (provider, model)
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and hit.expires > now:
            return hit.rates
        with self._lock:
            resolved = self._resolve(provider, model, hit.model if hit else None, now)
            self._resolved[key] = resolved
        return resolved.rates

    def _resolve(
        self, provider: str, model: str, info: types.ModelInfo | None, now: float
    ) -> _Resolved:
        if info is None:
            info = _find_model(provider, model)
            if info is None:
                return _Resolved(None, None, float("inf"))
        static = isinstance(info.prices, types.ModelPrice)
        rates = rates_from_model_price(info.get_prices(datetime.now(tz=UTC)))
        return _Resolved(info, rates, float("inf") if static else now + _RESOLVE_TTL_S)


def _find_model(provider: str, model: str) -> types.ModelInfo | None:
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id is None or not model or model == "*":
        return None
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return info
