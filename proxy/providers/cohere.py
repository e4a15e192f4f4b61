"""Cohere (`cohere/`, `cohere_chat/`) through its OpenAI Compatibility API
(`https://api.cohere.ai/compatibility/v1`), which serves chat completions with tools, streams
and structured outputs, and embeddings.

It is the OpenAI adapter but for one field: the Compatibility API refuses `stream_options`,
so streams go without it (the client's own included), and their usage is what Cohere sends.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from proxy.config.types import Deployment
from proxy.providers.openai import OpenAIProvider
from proxy.schema import ChatRequest, UpstreamRequest


class CohereProvider(OpenAIProvider):
    """Adapter for Cohere's Compatibility API; Responses requests are translated to Chat."""

    wire = "cohere"
    native_wire: str | None = None

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        built = super().build_request(req, dep)
        if not req.stream:
            return built
        body = orjson.loads(built.content)
        body.pop("stream_options", None)
        return replace(built, content=orjson.dumps(body))
