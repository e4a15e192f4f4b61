"""Every provider adapter by its wire name; adding a provider is one module and one line here.

Adapters are stateless, so one instance of each serves every request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from proxy.providers.anthropic.provider import AnthropicProvider
from proxy.providers.azure import AzureProvider
from proxy.providers.base import Provider
from proxy.providers.bedrock.provider import BedrockProvider
from proxy.providers.cohere import CohereProvider
from proxy.providers.gemini.provider import GeminiProvider
from proxy.providers.mock import MockProvider
from proxy.providers.openai import OpenAIProvider
from proxy.providers.vertex import VertexProvider

_ADAPTERS: tuple[Provider, ...] = (
    OpenAIProvider(),
    AnthropicProvider(),
    MockProvider(),
    GeminiProvider(),
    VertexProvider(),
    AzureProvider(),
    BedrockProvider(),
    CohereProvider(),
)
PROVIDERS: Mapping[str, Provider] = MappingProxyType({p.wire: p for p in _ADAPTERS})
"""Wire name (a `Deployment.wire`) -> its adapter. Read-only."""
FORWARDED_CLIENT_HEADERS: tuple[str, ...] = tuple(
    dict.fromkeys(name for p in _ADAPTERS for name in p.forwarded_headers)
)
"""Client request headers (lower-case) some provider passes upstream; the front door copies
these, and only these, into `ChatRequest.headers`."""
_LOCAL = frozenset(p.wire for p in _ADAPTERS if p.local is not None)


def build() -> dict[str, Provider]:
    """Returns: a fresh wire -> adapter map for one runtime (the Router's `providers`)."""
    return dict(PROVIDERS)


def answers_locally(name: str) -> bool:
    """Returns: whether the provider `name` answers by itself, so no upstream bills for it.

    `name` is a wire; a provider answering locally has one catalog row, named as its wire
    (`mock`), so a `Deployment.provider` works too.
    """
    return name in _LOCAL
