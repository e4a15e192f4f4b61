"""The providers we know, as data: wire format, default base URL and default key variable.

An OpenAI-compatible vendor is one row here; only a different wire format needs code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    wire: str
    """Which adapter speaks to it: "openai", "anthropic" or "mock"."""
    default_base: str
    key_env: str | None
    """The variable LiteLLM reads when a deployment names no api_key."""
    needs_key: bool = True


_ROWS = [
    ProviderSpec("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ProviderSpec("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    ProviderSpec("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    ProviderSpec("groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    ProviderSpec("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    ProviderSpec("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    ProviderSpec("together_ai", "openai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    ProviderSpec(
        "fireworks_ai", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"
    ),
    ProviderSpec("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY"),
    ProviderSpec("cerebras", "openai", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    ProviderSpec("deepinfra", "openai", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    ProviderSpec("perplexity", "openai", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    ProviderSpec("ollama", "openai", "http://localhost:11434/v1", None, needs_key=False),
    ProviderSpec("hosted_vllm", "openai", "http://localhost:8000/v1", None, needs_key=False),
    ProviderSpec("lm_studio", "openai", "http://localhost:1234/v1", None, needs_key=False),
    ProviderSpec("mock", "mock", "", None, needs_key=False),
]

PROVIDERS: dict[str, ProviderSpec] = {row.name: row for row in _ROWS}

# LiteLLM's inference for a model named without a provider prefix.
_INFERRED = [
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
]


def split_model(model: str) -> tuple[str | None, str]:
    """Splits `provider/name` into its provider and the name the upstream is called with.

    Returns:
        (provider, upstream_name); provider is None when it can neither be read from a known
        prefix nor inferred from the name as LiteLLM does.
    """
    head, sep, rest = model.partition("/")
    if sep and head in PROVIDERS:
        return head, rest
    for prefix, provider in _INFERRED:
        if model.startswith(prefix):
            return provider, model
    return None, model
