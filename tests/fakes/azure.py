"""FakeAzure: Azure OpenAI's and Azure AI's URLs, auth and errors in front of the fake OpenAI.

It checks what Azure checks before a model runs, answering in Azure's own shapes: the
`api-key` header or an Entra bearer token (401), the `api-version` query (404 without it on a
dated route), the deployment named in the path (404 DeploymentNotFound), `stream_options` on an
api-version older than 2024-09-01 (400), a prompt its content filter refuses (400 with
`innererror`), and a throttled key (429 with Retry-After). What passes is answered by the fake
OpenAI upstream (`FakeUpstream`'s steps), its answers and streams being Azure's too.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http11 import Answer, Request, write_answer
from tests.fakes.upstream import FakeUpstream

FILTER_TRIGGER = "FILTER-ME"
"""A user message containing this is refused by the fake content filter (violence, medium)."""
_DEPLOYMENT = re.compile(
    r"^/openai/deployments/([^/]+)(/chat/completions|/embeddings|/completions)$"
)
_V1 = re.compile(r"^/openai/v1(/chat/completions|/embeddings|/completions|/models)$")
_INFERENCE = re.compile(r"^/models(/chat/completions|/embeddings|/info)$")
_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)


@dataclass(frozen=True)
class AzureCall:
    """One request as it reached Azure: path, api-version and the auth it carried."""

    method: str
    path: str
    api_version: str | None
    api_key: str | None
    bearer: str | None


class FakeAzure(FakeUpstream):
    """A fake Azure OpenAI resource (`/openai/...`) and Azure AI inference endpoint
    (`/models/...`) on 127.0.0.1, serving `deployments` with keys `keys` (and Entra tokens
    `tokens`). `azure_calls` records every request as sent; `requests` (inherited) records
    the ones that passed, under their OpenAI path."""

    def __init__(
        self, *, deployments: tuple[str, ...], keys: tuple[str, ...], tokens: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.deployments = set(deployments)
        self.keys = set(keys)
        self.tokens = set(tokens)
        self.throttled: dict[str, int] = {}
        """Key -> the Retry-After seconds every request with it gets (a 429)."""
        self.azure_calls: list[AzureCall] = []

    async def _respond(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        query = {k: v[0] for k, v in parse_qs(req.query).items()}
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        bearer = token if scheme.lower() == "bearer" else None
        key = req.headers.get("api-key")
        self.azure_calls.append(
            AzureCall(req.method, req.path, query.get("api-version"), key, bearer)
        )
        refused = self._refusal(req, query, key, bearer)
        if refused is not None:
            return await write_answer(writer, refused, keep_alive=req.keep_alive)
        # What passed goes to the fake OpenAI under its path, keyed for per-key scripts.
        req.headers["authorization"] = f"Bearer {key or bearer}"
        req.path = "/v1" + _openai_path(req.path)
        body = req.json()
        if isinstance(body, dict) and "model" not in body:  # Azure takes it from the path
            req.raw = json.dumps({**body, "model": "azure-deployment"}).encode()
        return await super()._respond(req, reader, writer)

    def _refusal(
        self, req: Request, query: dict[str, str], key: str | None, bearer: str | None
    ) -> Answer | None:
        """Returns: Azure's answer for a request that does not reach the model, else None."""
        dated = _DEPLOYMENT.match(req.path)
        v1 = _V1.match(req.path)
        models = req.method == "GET" and req.path == "/openai/models"
        if not (dated or v1 or models or _INFERENCE.match(req.path)):
            return azure_error(404, "404", "Resource not found")
        if not v1 and "api-version" not in query:  # only the v1 API goes without one
            return azure_error(404, "404", "Resource not found")
        if key not in self.keys and bearer not in self.tokens:
            return azure_error(401, "401", _DENIED)
        if key in self.throttled:
            return _throttled(self.throttled[key], query.get("api-version", "v1"))
        if dated and dated.group(1) not in self.deployments:
            message = (
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again."
            )
            return azure_error(404, "DeploymentNotFound", message)
        if models or req.path.endswith(("/models", "/info")):
            return Answer(200, _headers(), json.dumps({"object": "list", "data": []}).encode())
        body = req.json()
        if not isinstance(body, dict):
            return None
        version = query.get("api-version", "")
        if "stream_options" in body and version[:1].isdigit() and version < "2024-09-01":
            message = "Unrecognized request argument supplied: stream_options"
            return _openai_error(400, message)
        if FILTER_TRIGGER in json.dumps(body.get("messages")):
            return content_filter_error()
        return None


def azure_error(status: int, code: str, message: str, **extra: Any) -> Answer:
    """Returns: Azure's `{"error": {"code", "message"}}` answer."""
    body = {"error": {"code": code, "message": message, **extra}}
    return Answer(status, _headers(), json.dumps(body).encode())


def content_filter_error() -> Answer:
    """Returns: the 400 Azure sends for a prompt its content filter refuses."""
    verdicts = {name: {"filtered": False, "severity": "safe"} for name in
                ("hate", "self_harm", "sexual")}  # fmt: skip
    verdicts["violence"] = {"filtered": True, "severity": "medium"}
    verdicts["jailbreak"] = {"filtered": False, "detected": False}
    body = {
        "error": {
            "message": _FILTERED,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": verdicts,
            },
        }
    }
    return Answer(400, _headers(), json.dumps(body).encode())


def _throttled(seconds: int, version: str) -> Answer:
    message = (
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        f"{version} have exceeded call rate limit of your current OpenAI S0 pricing tier. Please "
        f"retry after {seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you "
        "would like to further increase the default rate limit."
    )
    answer = azure_error(429, "429", message)
    answer.headers["retry-after"] = str(seconds)
    answer.headers["retry-after-ms"] = str(seconds * 1000)
    return answer


def _openai_error(status: int, message: str) -> Answer:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": None}}  # fmt: skip
    return Answer(status, _headers(), json.dumps(body).encode())


def _openai_path(path: str) -> str:
    for pattern in (_DEPLOYMENT, _V1, _INFERENCE):
        match = pattern.match(path)
        if match:
            return match.groups()[-1]
    return path


def _headers() -> dict[str, str]:
    return {
        "content-type": "application/json",
        "apim-request-id": "00000000-0000-4000-8000-000000000000",
        "x-ms-region": "East US",
    }
