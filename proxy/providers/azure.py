"""Azure OpenAI (`azure/`) and Azure AI model inference (`azure_ai/`): OpenAI's wire format at
Azure's URLs, with Azure's `api-key` header (or an Entra ID bearer token) and `api-version`.

`azure/` calls `{base}/openai/deployments/{deployment}/chat/completions?api-version=V`, or the
v1 API (`{base}/openai/v1/chat/completions`) when api_version is `v1`, `latest` or `preview`;
`azure_ai/` calls `{base}/chat/completions?api-version=V` (`/models` added on a Foundry
`*.services.ai.azure.com` base). Answers, streams and errors are OpenAI's, plus Azure's
content-filter details, which a refused prompt's 400 names to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.openai import OpenAIProvider
from proxy.schema import ChatRequest, UpstreamRequest

V1_VERSIONS = frozenset({"v1", "latest", "preview"})
"""api_version values that select Azure's v1 API (no deployment in the path)."""
_STREAM_OPTIONS_SINCE = "2024-09-01"
"""Dated api-versions before this one refuse `stream_options` (so streams carry no usage)."""
_FOUNDRY_HOST = ".services.ai.azure.com"


class AzureProvider(OpenAIProvider):
    """Adapter for `azure/` and `azure_ai/` deployments: the OpenAI adapter's bodies and
    answers, at Azure's URLs and with Azure's auth. Responses requests are translated to Chat
    Completions (Azure's `/responses` differs by api-version)."""

    wire = "azure"
    native_wire: str | None = None

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        built = super().build_request(req, dep)
        path = built.url[len(dep.api_base) :]
        content = built.content
        if req.stream and not _takes_stream_options(dep):
            body = orjson.loads(content)
            body.pop("stream_options", None)
            content = orjson.dumps(body)
        url = azure_url(dep, path, dep.upstream_model(req.model))
        return replace(built, url=url, headers=_headers(dep, built.headers), content=content)

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns `GET …/openai/models` (`…/info` for azure_ai): free, 401 for a bad key."""
        headers = _headers(dep, {})
        if dep.provider == "azure_ai":
            return UpstreamRequest("GET", azure_url(dep, "/info", ""), headers)
        return UpstreamRequest("GET", _openai_root(dep) + "/models" + _query(dep), headers)

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns OpenAI's reading of the error; a content-filter refusal (400, code
        `content_filter`) also names the categories Azure filtered, and is not retried."""
        err = super().classify_error(dep, status, headers, body)
        if err.code != "content_filter":
            return err
        return UpstreamError(
            err.message + _filtered(body),
            provider=dep.provider,
            key_id=dep.id,
            status=status if status < 500 else 400,
            retryable=False,
            type=err.type,
            code=err.code,
            param=err.param,
        )


def azure_url(dep: Deployment, path: str, deployment: str) -> str:
    """Returns the URL of `path` (`/chat/completions`, `/embeddings`, ...) on `dep`."""
    if dep.provider == "azure_ai":
        base = dep.api_base
        if (urlsplit(base).hostname or "").endswith(_FOUNDRY_HOST) and not base.endswith("/models"):
            base += "/models"
        return base + path + _query(dep)
    root = _openai_root(dep)
    if _version(dep) in V1_VERSIONS:
        return root + path + _query(dep)
    return f"{root}/deployments/{quote(deployment, safe='')}{path}{_query(dep)}"


def _openai_root(dep: Deployment) -> str:
    """`{base}/openai` (or `{base}/openai/v1`), whether or not the base already ends so."""
    base = dep.api_base.removesuffix("/openai/v1").removesuffix("/openai")
    return base + ("/openai/v1" if _version(dep) in V1_VERSIONS else "/openai")


def _version(dep: Deployment) -> str:
    return dep.provider_params.get("api_version", "")


def _query(dep: Deployment) -> str:
    version = _version(dep)
    if not version or version in ("v1", "latest"):
        return ""
    return "?api-version=" + quote(version, safe="")


def _takes_stream_options(dep: Deployment) -> bool:
    version = _version(dep)
    return not version[:1].isdigit() or version >= _STREAM_OPTIONS_SINCE


def _headers(dep: Deployment, built: Mapping[str, str]) -> dict[str, str]:
    """`built` with OpenAI's bearer key swapped for Azure's auth; extra_headers still win."""
    headers = dict(built)
    if dep.key is not None and headers.get("authorization") == "Bearer " + dep.key.reveal():
        del headers["authorization"]
    token = dep.credentials.get("azure_ad_token")
    if token is not None:
        headers["authorization"] = "Bearer " + token.reveal()
    elif dep.key is not None:
        headers["api-key"] = dep.key.reveal()
    headers.update(dep.extra_headers)
    return headers


def _filtered(body: bytes) -> str:
    """` (filtered: violence medium, ...)` from Azure's innererror, or "" when absent."""
    try:
        doc: Any = orjson.loads(body)
        result = doc["error"]["innererror"]["content_filter_result"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""
    if not isinstance(result, dict):
        return ""
    hits = [
        f"{name} {verdict.get('severity', 'detected')}".strip()
        for name, verdict in result.items()
        if isinstance(verdict, dict) and verdict.get("filtered")
    ]
    return f" (filtered: {', '.join(hits)})" if hits else ""
