"""The Gemini adapter (Google AI Studio, `generativelanguage.googleapis.com/v1beta`): OpenAI
chat ⇄ `generateContent` / `streamGenerateContent?alt=sse`, tools and thinking included, and
OpenAI embeddings ⇄ `batchEmbedContents`.

The translation lives beside it: `contents` and `request` (the request), `response` (the
answer), `stream` (the stream), `errors` (what an error means). The URL and the key header
(`x-goog-api-key`) are written here and nowhere else; `VertexGeminiProvider` reuses all of it
with Vertex AI's URL and an OAuth token instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.config.model_limits import output_limit
from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers.base import StreamDecoder
from proxy.providers.gemini import errors as gemini_errors
from proxy.providers.gemini import response as gemini_response
from proxy.providers.gemini.request import build_body, embed_body
from proxy.providers.gemini.stream import GeminiStreamDecoder
from proxy.schema import ChatRequest, ChatResponse, UpstreamRequest, Usage, dumps

DEFAULT_BASE = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
_VERSIONS = ("/v1beta", "/v1", "/v1alpha")
_CHARS_PER_TOKEN = 4
"""For an embeddings estimate: Gemini's embeddings answers carry no token counts."""


class GeminiProvider:
    """Speaks Google's Gemini API for an OpenAI client. Pure: no I/O, no clock."""

    wire = "gemini"
    forwarded_headers: tuple[str, ...] = ()
    native_wire: str | None = None
    local = None

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Returns `POST …/models/{model}:generateContent` (streamed:
        `:streamGenerateContent?alt=sse`; embeddings: `:batchEmbedContents`) for `req` on `dep`.

        Raises:
            BadRequest: a parameter Gemini lacks that changes the answer's shape (unless
                drop_params), or content that cannot be translated.
            NotImplementedByProvider: legacy completions.
        """
        model = self.model_name(req, dep)
        if req.kind == "embeddings":
            body: dict[str, Any] = embed_body(req.body, model)
            return self._post(dep, model, "batchEmbedContents", body)
        if req.kind != "chat":
            raise NotImplementedByProvider(f"Gemini does not serve /{req.kind}.")
        body = build_body(
            req.body, model, drop_params=req.drop_params, max_output=output_limit(dep, model)
        )
        method = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        return self._post(dep, model, method, body)

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the OpenAI answer (or embeddings list) for a 2xx Gemini body.

        Raises:
            UpstreamError: the body is not an answer (502, retryable).
        """
        if req.kind == "embeddings":
            raw = req.body.get("input")
            texts = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
            tokens = sum(len(t) for t in texts if isinstance(t, str)) // _CHARS_PER_TOKEN
            estimate = Usage(prompt_tokens=tokens, total_tokens=tokens, estimated=True)
            as_base64 = req.body.get("encoding_format") == "base64"
            return gemini_response.parse_embeddings(
                dep, body, base64_floats=as_base64, usage=estimate
            )
        return gemini_response.parse_response(
            dep, body, created=req.created, request_id=req.request_id
        )

    def open_stream(self, req: ChatRequest, dep: Deployment) -> StreamDecoder:
        """Returns a fresh decoder for one Gemini stream."""
        return GeminiStreamDecoder(dep, created=req.created, request_id=req.request_id)

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what a non-2xx Google answer means (see `gemini_errors`)."""
        return gemini_errors.classify_error(dep, status, headers, body)

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns `GET …/models?pageSize=1`: free, and refused when the key is wrong."""
        return UpstreamRequest("GET", self.root(dep) + "/models?pageSize=1", self.auth(dep))

    def model_name(self, req: ChatRequest, dep: Deployment) -> str:
        """Returns the upstream model for `req` (a `models/` prefix taken off)."""
        model = dep.upstream_model(req.model)
        return model.removeprefix("models/")

    def root(self, dep: Deployment) -> str:
        """Returns the versioned API root: the base as given when it names a version."""
        base = dep.api_base.rstrip("/") or DEFAULT_BASE
        return base if base.endswith(_VERSIONS) else f"{base}/{API_VERSION}"

    def auth(self, dep: Deployment) -> dict[str, str]:
        """Returns the key header, then the deployment's extra_headers (which may override)."""
        headers = {} if dep.key is None else {"x-goog-api-key": dep.key.reveal()}
        headers.update(dep.extra_headers)
        return headers

    def _post(
        self, dep: Deployment, model: str, method: str, body: dict[str, Any]
    ) -> UpstreamRequest:
        url = f"{self.root(dep)}/models/{model}:{method}"
        headers = {"content-type": "application/json", **self.auth(dep)}
        return UpstreamRequest("POST", url, headers, dumps(body))
