"""Google's Gemini wire format for the fake upstream (`tests.fakes.gemini` serves it):
`generateContent`, `streamGenerateContent` (`alt=sse` events, else the JSON array the real
API streams), `batchEmbedContents`, `embedContent`, the model list, and errors in Google's
`{"error": {code, message, status, details}}` shape, pretty-printed as Google sends them.

Paths: AI Studio's (`/v1beta/models/{model}:{method}`, key in `x-goog-api-key` or `?key=`)
and Vertex AI's (`/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`,
an OAuth bearer token). Bodies are checked as the real API checks them (`gemini_checks`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes import steps as st
from tests.fakes.exchange import Exchange, long_content, pieces, words
from tests.fakes.gemini_checks import problem_of
from tests.fakes.http11 import Answer
from tests.fakes.openai_wire import embedding_vector

JSON = "application/json; charset=UTF-8"
SSE = "text/event-stream"
MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview", "gemini-embedding-001")
SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="
"""The thoughtSignature the fake puts on a thinking answer's first function call."""
_PATH = re.compile(
    r"^(?:/v1beta|/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_CLAUDE_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_MODELS_PATH = "/v1beta/models"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY",
           "tool_calls": "STOP"}  # fmt: skip


@dataclass(frozen=True)
class Route:
    """What a Gemini path names: the model, the method, and Vertex's project and location."""

    model: str
    method: str
    project: str | None = None
    location: str | None = None


def route(path: str) -> Route | None:
    """Returns: the model and method of a generate / embed path, or None."""
    match = _PATH.match(path)
    if match is None:
        return None
    return Route(match["model"], match["method"], match["project"], match["location"])


def claude_route(path: str) -> Route | None:
    """Returns: the model and method of a Claude-on-Vertex path (`rawPredict`...), or None."""
    match = _CLAUDE_PATH.match(path)
    if match is None:
        return None
    return Route(match["model"], match["method"], match["project"], match["location"])


def is_gemini(path: str) -> bool:
    """Returns: whether the path is one of Google's (AI Studio, Vertex AI, Claude on Vertex)."""
    return (
        path.startswith(_MODELS_PATH)
        or route(path) is not None
        or _CLAUDE_PATH.match(path) is not None
    )


def key_of(headers: dict[str, str], query: str) -> str | None:
    """Returns: the API key (`x-goog-api-key`, `?key=`) or the Vertex bearer token."""
    if headers.get("x-goog-api-key"):
        return headers["x-goog-api-key"]
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "key" and value:
            return value
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _headers(content_type: str = JSON) -> dict[str, str]:
    return {"content-type": content_type, "vary": "Origin, X-Origin, Referer",
            "server": "scaffolding on HTTPServer2", "x-xss-protection": "0",
            "x-frame-options": "SAMEORIGIN", "x-content-type-options": "nosniff"}  # fmt: skip


def error_answer(
    status: int, message: str, *, details: list[dict[str, Any]] | None = None, name: str = ""
) -> Answer:
    """Returns: an error in Google's shape (indented two spaces, as Google sends it)."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": name or _STATUS.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return Answer(status, _headers(), json.dumps({"error": error}, indent=2).encode() + b"\n")


def precheck(
    method: str, path: str, query: str, key: str | None, body: Any, rejected: set[str]
) -> Answer | None:
    """Returns: the answer for a request that must not consume a step (404, auth, the model
    list, a body the real API refuses), else None."""
    found = route(path)
    listing = method == "GET" and path == _MODELS_PATH
    if not listing and (method != "POST" or found is None):
        return error_answer(404, f"Method not found: {method} {path}.")
    if key is None:
        msg = (
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API."
        )
        return error_answer(403, msg)
    if key in rejected:
        return _invalid_key(found)
    if listing:
        return _models()
    assert found is not None
    if found.method not in ("generateContent", "streamGenerateContent", "batchEmbedContents",
                            "embedContent", "countTokens", "predict"):  # fmt: skip
        return error_answer(404, f"Method not found: {found.method}.")
    if not isinstance(body, dict):
        return error_answer(400, "Invalid JSON payload received. Unexpected token.")
    if found.method == "countTokens":
        count = {"totalTokens": prompt_words(body)}
        return Answer(200, _headers(), json.dumps(count, indent=2).encode())
    if found.method in ("batchEmbedContents", "embedContent"):
        return None
    if found.method == "predict":
        instances = body.get("instances")
        if found.project is None or not isinstance(instances, list) or not instances:
            return error_answer(400, "Invalid instances: a non-empty list is required.")
        return None
    problem = problem_of(body, found.model)
    return None if problem is None else error_answer(400, problem)


def _invalid_key(found: Route | None) -> Answer:
    if found is not None and found.project is not None:  # Vertex: an expired or bad token
        msg = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential."
        )
        return error_answer(401, msg)
    msg = "API key not valid. Please pass a valid API key."
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": msg},
    ]  # fmt: skip
    return error_answer(400, msg, details=details)


def _models() -> Answer:
    models = [
        {"name": f"models/{m}", "version": "001", "displayName": m,
         "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
         "supportedGenerationMethods": ["generateContent", "countTokens"]}
        for m in MODELS
    ]  # fmt: skip
    return Answer(200, _headers(), json.dumps({"models": models}, indent=2).encode())


# -- answers -----------------------------------------------------------------------------


def prompt_words(body: dict[str, Any]) -> int:
    """Returns: words in the system instruction and every content's text, at least 1."""
    texts: list[str] = []
    system = body.get("systemInstruction")
    contents = [system] if isinstance(system, dict) else []
    contents += body.get("contents") or []
    for content in contents:
        for part in content.get("parts") or []:
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
            response = part.get("functionResponse")
            if isinstance(response, dict):
                texts.append(json.dumps(response.get("response")))
    return max(1, sum(words(t) for t in texts))


def render(step: st.Step, exchange: Exchange, query: str = "alt=sse") -> Answer:
    """Returns: the answer to `step` for this request (not for Hang / Drop, handled by the
    server)."""
    found = route(exchange.path)
    assert found is not None
    match step:
        case st.Reply():
            return _reply(step, exchange, found, query)
        case st.Error(status, message, _kind, code, headers):
            answer = error_answer(status, message, name=code or "")
            answer.headers.update(dict(headers))
            return answer
        case st.RateLimit(seconds):
            return _rate_limit(seconds, found)
        case st.Overloaded():
            return error_answer(503, "The model is overloaded. Please try again later.")
        case st.ContextTooLong():
            msg = (
                "The input token count (1048577) exceeds the maximum number of tokens "
                "allowed (1048576)."
            )
            return error_answer(400, msg)
        case st.StreamCut(after):
            answer = _reply(st.Reply(content=long_content(after)), exchange, found, query)
            answer.cut_after = after if answer.events is not None else 0
            return answer
        case st.StreamErrorFirst(message, _kind):
            err = {"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}}
            return Answer(200, _headers(SSE), events=[b"data: " + _dumps(err) + b"\r\n\r\n"])
    raise TypeError(f"the server handles {step!r} itself")


def _rate_limit(seconds: float, found: Route) -> Answer:
    msg = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    )
    quota = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": found.model},
        "quotaValue": "10",
    }
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [quota]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas",
             "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds:g}s"},
    ]  # fmt: skip
    return error_answer(429, msg, details=details)


def _thinks(body: dict[str, Any]) -> bool:
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    return thinking.get("includeThoughts") is True


def _parts(step: st.Reply, exchange: Exchange) -> tuple[list[dict[str, Any]], list[str]]:
    """Returns: (the non-text parts: thought and function calls, the text pieces)."""
    head: list[dict[str, Any]] = []
    if step.reasoning and _thinks(exchange.body):
        head.append({"text": step.reasoning, "thought": True})
    calls = list(step.tool_calls or []) if exchange.has_tools else []
    for i, call in enumerate(calls):
        part: dict[str, Any] = {
            "functionCall": {"name": call["name"], "args": call.get("arguments") or {}}
        }
        if i == 0 and (step.reasoning or "gemini-3" in exchange.path):
            part["thoughtSignature"] = SIGNATURE
        head.append(part)
    return head, pieces(step.text()) if step.text() else []


def _usage(step: st.Reply, exchange: Exchange, output: int | None) -> dict[str, Any]:
    over = step.usage or {}
    prompt = int(over.get("prompt_tokens", over.get("input_tokens", prompt_words(exchange.body))))
    out = int(over.get("completion_tokens", over.get("output_tokens", words(step.text()))))
    out = out if output is None else output
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if output is None or output:
        usage["candidatesTokenCount"] = out
    thoughts = words(step.reasoning or "")
    total = prompt + out + thoughts
    usage["totalTokenCount"] = total
    cached = int(over.get("cached_tokens", over.get("cache_read_input_tokens", 0)))
    if cached:
        usage["cachedContentTokenCount"] = cached
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _finish(step: st.Reply) -> str:
    return _FINISH.get(step.finish_reason or "stop", "STOP")


def _response(
    exchange: Exchange, found: Route, parts: list[dict[str, Any]], finish: str | None, usage: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": found.model,
        "responseId": f"fakeResp{exchange.seq:08d}",
    }


def _reply(step: st.Reply, exchange: Exchange, found: Route, query: str) -> Answer:
    if found.method in ("batchEmbedContents", "embedContent", "predict"):
        return _embeddings(exchange, found)
    head, texts = _parts(step, exchange)
    thought = [p for p in head if p.get("thought")]
    calls = [p for p in head if not p.get("thought")]
    if found.method == "generateContent":
        parts = [*thought, *([{"text": "".join(texts)}] if texts else []), *calls]
        body = _response(exchange, found, parts, _finish(step), _usage(step, exchange, None))
        return Answer(200, _headers(), json.dumps(body, indent=2).encode())
    steps: list[list[dict[str, Any]]] = [[p] for p in thought] + [[{"text": t}] for t in texts]
    steps.append(calls)  # the function calls come whole, with the finish reason
    docs = [
        _response(exchange, found, parts, None, _usage(step, exchange, 0)) for parts in steps[:-1]
    ]
    last = _response(exchange, found, steps[-1], _finish(step), _usage(step, exchange, None))
    if not steps[-1]:
        last["candidates"][0]["content"]["parts"] = [{"text": ""}]
    docs.append(last)
    if "alt=sse" not in query:  # the real API streams one JSON array without alt=sse
        body = b"[" + b",\r\n".join(json.dumps(d, indent=2).encode() for d in docs) + b"]"
        return Answer(200, _headers(), events=[body])
    return Answer(200, _headers(SSE), events=[b"data: " + _dumps(d) + b"\r\n\r\n" for d in docs])


def _predict(exchange: Exchange) -> Answer:
    """Vertex's text embeddings: one prediction per instance, with its token count."""
    predictions = []
    for instance in exchange.body["instances"]:
        text = instance.get("content") if isinstance(instance, dict) else None
        stats = {"truncated": False, "token_count": words(text or "")}
        predictions.append({"embeddings": {"statistics": stats, "values": embedding_vector(text)}})
    chars = sum(len(i.get("content") or "") for i in exchange.body["instances"])
    body = {"predictions": predictions, "metadata": {"billableCharacterCount": chars}}
    return Answer(200, _headers(), json.dumps(body, indent=2).encode())


def _embeddings(exchange: Exchange, found: Route) -> Answer:
    if found.method == "predict":
        return _predict(exchange)
    requests = exchange.body.get("requests")
    if found.method == "embedContent":
        parts = (exchange.body.get("content") or {}).get("parts") or []
        body: dict[str, Any] = {"embedding": {"values": embedding_vector(parts[0].get("text"))}}
        return Answer(200, _headers(), json.dumps(body, indent=2).encode())
    if not isinstance(requests, list) or not requests:
        return error_answer(400, "* BatchEmbedContentsRequest.requests: requests is empty\n")
    vectors = []
    for i, request in enumerate(requests):
        if request.get("model") != f"models/{found.model}":
            msg = (
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model must match the "
                f"batch's model, models/{found.model}\n"
            )
            return error_answer(400, msg)
        parts = (request.get("content") or {}).get("parts") or [{}]
        vectors.append({"values": embedding_vector(parts[0].get("text"))})
    body = {"embeddings": vectors}
    return Answer(200, _headers(), json.dumps(body, indent=2).encode())
