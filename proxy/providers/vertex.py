"""The Vertex AI adapter (`vertex_ai/`): Google's Gemini models and Anthropic's Claude models on
Vertex, at `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/
{model}:{method}` with an OAuth access token as the bearer.

Gemini models (`publishers/google`, `generateContent`; embeddings through `:predict`) are
translated exactly as for AI Studio (`providers/gemini/`); Claude models (`claude-…`,
`publishers/anthropic`, `rawPredict` / `streamRawPredict`) as for Anthropic
(`providers/anthropic/`), with Vertex's two changes to the body: no `model` (it is in the
URL) and `anthropic_version: vertex-2023-10-16`.

Pure, like every adapter: the token is fetched and refreshed by the router
(`routing/google_auth.py`), which hands this adapter the deployment with the current token as
its `key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.config.model_limits import output_limit
from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers.anthropic import errors as anthropic_errors
from proxy.providers.anthropic import response as anthropic_response
from proxy.providers.anthropic.request import build_body as anthropic_body
from proxy.providers.anthropic.stream import AnthropicStreamDecoder
from proxy.providers.base import StreamDecoder
from proxy.providers.gemini import response as gemini_response
from proxy.providers.gemini.provider import GeminiProvider
from proxy.providers.gemini.request import dimensions, embed_texts
from proxy.schema import ChatRequest, ChatResponse, UpstreamRequest, Usage, dumps

API_VERSION = "v1"
ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The `anthropic_version` Vertex requires in a Claude request's body."""


def is_claude(dep: Deployment) -> bool:
    """Whether `dep` is one of Anthropic's models on Vertex (`vertex_ai/claude-…`)."""
    return dep.model.startswith("claude")


class VertexProvider(GeminiProvider):
    """Speaks Vertex AI's Gemini API and its Anthropic `rawPredict` for an OpenAI client."""

    wire = "vertex_ai"
    forwarded_headers: tuple[str, ...] = ("anthropic-beta",)

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Returns the Vertex request for `req`: `generateContent` (Gemini) or `rawPredict`
        (Claude), streamed as `streamGenerateContent?alt=sse` / `streamRawPredict`.

        Embeddings go to the model's `:predict` (`instances` of `content`).

        Raises:
            BadRequest: as for Gemini, or as for Anthropic.
            NotImplementedByProvider: legacy completions, or embeddings from a Claude model.
        """
        if req.kind == "embeddings" and not is_claude(dep):
            return self._predict(req, dep)
        if not is_claude(dep):
            return super().build_request(req, dep)
        if req.kind != "chat":
            raise NotImplementedByProvider(f"Claude on Vertex does not serve /{req.kind}.")
        model = self.model_name(req, dep)
        body = anthropic_body(
            req.body,
            model,
            stream=req.stream,
            drop_params=req.drop_params,
            max_output=output_limit(dep, model),
        )
        body.pop("model")
        body["anthropic_version"] = ANTHROPIC_VERSION
        method = "streamRawPredict" if req.stream else "rawPredict"
        url = f"{self.root(dep, 'anthropic')}/models/{model}:{method}"
        headers = {"content-type": "application/json", **self.auth(dep)}
        if req.headers.get("anthropic-beta"):
            headers["anthropic-beta"] = req.headers["anthropic-beta"]
        return UpstreamRequest("POST", url, headers, dumps(body))

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the OpenAI answer for a 2xx Gemini or Claude body, or the embeddings list
        for a `:predict` answer (with its token counts).

        Raises:
            UpstreamError: the body is not an answer (502, retryable).
        """
        if is_claude(dep):
            return anthropic_response.parse_response(dep, body, created=req.created)
        if req.kind != "embeddings":
            return super().parse_response(req, dep, body)
        predictions = gemini_response.load(dep, body).get("predictions")
        if not isinstance(predictions, list):
            raise gemini_response.bad_body(dep, "Vertex answered 2xx without predictions.")
        found = [p.get("embeddings") if isinstance(p, dict) else None for p in predictions]
        embeddings = [e if isinstance(e, dict) else {} for e in found]
        tokens = sum(_token_count(e) for e in embeddings)
        return gemini_response.embeddings_answer(
            dep,
            [e.get("values") for e in embeddings],
            base64_floats=req.body.get("encoding_format") == "base64",
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    def _predict(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        body: dict[str, Any] = {"instances": [{"content": t} for t in embed_texts(req.body)]}
        dims = dimensions(req.body)
        if dims is not None:
            body["parameters"] = {"outputDimensionality": dims}
        url = f"{self.root(dep)}/models/{self.model_name(req, dep)}:predict"
        headers = {"content-type": "application/json", **self.auth(dep)}
        return UpstreamRequest("POST", url, headers, dumps(body))

    def open_stream(self, req: ChatRequest, dep: Deployment) -> StreamDecoder:
        """Returns a fresh decoder for one Gemini or Claude stream."""
        if is_claude(dep):
            return AnthropicStreamDecoder(dep, created=req.created)
        return super().open_stream(req, dep)

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what an error means: Claude's own errors in Anthropic's shape, Vertex's
        (quota, auth, a missing model) in Google's."""
        if is_claude(dep) and _anthropic_shaped(body):
            return anthropic_errors.classify_error(dep, status, headers, body)
        return super().classify_error(dep, status, headers, body)

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns a free token count of one word (Gemini's `countTokens`, or Anthropic's
        `count-tokens:rawPredict`): refused when the token or the project's access is wrong."""
        model = dep.model.removeprefix("models/")
        headers = {"content-type": "application/json", **self.auth(dep)}
        if is_claude(dep):
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "user", "content": "ping"}],
            }
            url = f"{self.root(dep, 'anthropic')}/models/count-tokens:rawPredict"
            return UpstreamRequest("POST", url, headers, dumps(body))
        body = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}
        url = f"{self.root(dep)}/models/{model}:countTokens"
        return UpstreamRequest("POST", url, headers, dumps(body))

    def root(self, dep: Deployment, publisher: str = "google") -> str:
        """Returns `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}`."""
        base = dep.api_base.rstrip("/")
        project = dep.provider_params.get("vertex_project", "")
        location = dep.provider_params.get("vertex_location", "")
        return (
            f"{base}/{API_VERSION}/projects/{project}/locations/{location}/publishers/{publisher}"
        )

    def auth(self, dep: Deployment) -> dict[str, str]:
        """Returns the access token as a bearer, then the deployment's extra_headers."""
        headers = {} if dep.key is None else {"authorization": "Bearer " + dep.key.reveal()}
        headers.update(dep.extra_headers)
        return headers


def _token_count(embedding: dict[str, Any]) -> int:
    stats = embedding.get("statistics")
    count = stats.get("token_count") if isinstance(stats, dict) else None
    return int(count) if isinstance(count, int | float) else 0


def _anthropic_shaped(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("type") == "error"
