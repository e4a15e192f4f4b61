"""The mock is a provider like the others: in the registry, through the same contract and the
same attempt code, answering locally (its `local` ability) without ever touching the client."""

from __future__ import annotations

import orjson
import pytest

from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers import mock, registry
from proxy.providers.mock import MockProvider
from proxy.routing.attempt import complete, open_stream
from proxy.schema import ChatRequest, SSEEvent, UpstreamRequest
from proxy.secret import Secret
from proxy.store.pricing import PriceTable

KEY = "sk-test-contract-key-0000000000001234"


AWS = {"aws_access_key_id": Secret("AKIDEXAMPLE"), "aws_secret_access_key": Secret(KEY)}


def deployment(wire: str, *, key: str | None = KEY, **kw) -> Deployment:
    if wire == "bedrock":  # as the loader makes one: credentials and a region
        kw = {"credentials": AWS, "provider_params": {"aws_region_name": "us-east-1"}, **kw}
    return Deployment(
        id=f"{wire}-1", group="g", provider=wire, wire=wire, model="m",
        api_base="" if wire == "mock" else "http://upstream.test/v1",
        key=None if key is None else Secret(key), key_env=None, **kw,
    )  # fmt: skip


def chat(text: str = "say hi to me", *, stream: bool = False, kind: str = "chat") -> ChatRequest:
    body: dict = {"model": "g"}
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": text}]
    elif kind == "completions":
        body["prompt"] = text
    else:
        body["input"] = [text, "again"]
    return ChatRequest("g", body, kind=kind, stream=stream)  # type: ignore[arg-type]


class RefusingClient:
    """An `UpstreamClient` that fails the test if anything is sent."""

    async def send(self, request: UpstreamRequest, *, stream: bool = False):
        raise AssertionError(f"the mock sent {request.method} {request.url}")

    async def aclose(self) -> None:
        """Nothing to close."""


@pytest.fixture(autouse=True)
def no_word_delay(monkeypatch):
    monkeypatch.setattr(mock, "WORD_DELAY", 0.0)


# ---- the registry ----


def test_registry_holds_every_wire_once():
    providers = registry.build()
    assert set(providers) == {
        "openai",
        "anthropic",
        "mock",
        "gemini",
        "vertex_ai",
        "azure",
        "bedrock",
        "cohere",
    }
    assert all(p.wire == wire for wire, p in providers.items())
    assert isinstance(providers["mock"], MockProvider)
    providers.pop("mock")  # each runtime gets its own map
    assert "mock" in registry.build() and "mock" in registry.PROVIDERS


def test_every_catalog_wire_has_an_adapter():
    from proxy.config.catalog import PROVIDERS as CATALOG

    assert {spec.wire for spec in CATALOG.values()} <= set(registry.PROVIDERS)


def test_forwarded_client_headers_come_from_the_providers():
    assert registry.FORWARDED_CLIENT_HEADERS == ("anthropic-version", "anthropic-beta")
    assert all(h == h.lower() for h in registry.FORWARDED_CLIENT_HEADERS)


def test_only_the_mock_answers_locally_and_it_costs_nothing():
    assert [w for w, p in registry.PROVIDERS.items() if p.local is not None] == ["mock"]
    assert registry.answers_locally("mock") and not registry.answers_locally("openai")
    dep = deployment("mock")
    assert PriceTable().cost(dep, mock.respond(chat(), dep).usage) == 0.0  # type: ignore[arg-type]


# ---- one contract over every adapter ----


@pytest.mark.parametrize("wire", sorted(registry.PROVIDERS))
def test_classify_error_decides_retryable_and_hides_the_key(wire):
    provider = registry.PROVIDERS[wire]
    dep = deployment(wire)
    body = orjson.dumps({"error": {"message": f"bad key {KEY}", "type": "x"}})
    for status, retryable in ((500, True), (429, True), (401, True), (400, False)):
        err = provider.classify_error(dep, status, {"retry-after": "2"}, body)
        assert isinstance(err, UpstreamError)
        assert err.status == status and err.retryable is retryable
        assert err.key_id == dep.id and KEY not in err.message
    assert provider.classify_error(dep, 429, {"retry-after": "2"}, body).retry_after == 2.0
    assert provider.classify_error(dep, 401, {}, body).key_rejected


@pytest.mark.parametrize("wire", sorted(registry.PROVIDERS))
def test_probe_request_is_free_and_carries_the_key_unprinted(wire):
    """A bodiless GET (listing models), or where the API has none that proves the key (Vertex
    AI), a free token count; never the key in its repr."""
    request = registry.PROVIDERS[wire].probe_request(deployment(wire))
    if registry.PROVIDERS[wire].local is not None:
        assert request is None
        return
    assert request is not None
    if wire == "vertex_ai":
        assert request.method == "POST" and request.url.endswith(":countTokens")
    else:
        assert request.method == "GET" and request.content == b""
    if wire == "bedrock":  # SigV4: the secret signs, it is never sent
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID")
        assert KEY not in "".join(request.headers.values())
    else:
        assert KEY in "".join(request.headers.values())
    assert KEY not in repr(request)


# ---- the mock through that contract ----


def test_mock_answers_in_openai_format_that_its_parser_reads_back():
    provider, dep = MockProvider(), deployment("mock", key=None, mock_response="Hello there friend")
    req = chat()
    answer = provider.respond(req, dep)
    doc = orjson.loads(answer.body)
    assert doc["object"] == "chat.completion" and doc["model"] == "g"
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": "Hello there friend"}
    assert answer.preview == "Hello there friend"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 3)
    parsed = provider.parse_response(req, dep, answer.body)
    assert parsed.usage == answer.usage and parsed.preview == answer.preview


def test_mock_default_reply_and_legacy_and_embeddings():
    provider, dep = MockProvider(), deployment("mock", key=None)
    doc = orjson.loads(provider.respond(chat(), dep).body)
    assert doc["choices"][0]["message"]["content"] == mock.DEFAULT_REPLY
    legacy = orjson.loads(provider.respond(chat(kind="completions"), dep).body)
    assert legacy["object"] == "text_completion" and legacy["choices"][0]["text"]
    vectors = orjson.loads(provider.respond(chat(kind="embeddings"), dep).body)
    assert [d["index"] for d in vectors["data"]] == [0, 1]


async def test_mock_stream_decodes_as_openai_chunks():
    provider, dep = MockProvider(), deployment("mock", key=None, mock_response="one two three")
    req = chat(stream=True)
    chunks = [c async for c in provider.stream(req, dep)]
    assert "".join(c.text for c in chunks) == "one two three"
    assert chunks[-1].usage_only and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    decoder = provider.open_stream(req, dep)
    decoded = [d for c in chunks for d in decoder.feed(SSEEvent(None, c.data.decode()))]
    assert [d.text for d in decoded] == [c.text for c in chunks]
    assert decoded[-1].usage == chunks[-1].usage


def test_mock_builds_no_upstream_request():
    with pytest.raises(NotImplementedByProvider):
        MockProvider().build_request(chat(), deployment("mock", key=None))


async def test_attempt_asks_the_mock_and_sends_nothing():
    provider, dep = registry.PROVIDERS["mock"], deployment("mock", key=None, mock_response="a b")
    answer = await complete(RefusingClient(), provider, chat(), dep, 1.0)
    assert orjson.loads(answer.body)["choices"][0]["message"]["content"] == "a b"
    opened = await open_stream(RefusingClient(), provider, chat(stream=True), dep, 1.0)
    rest = [c for batch in [b async for b in opened.batches(1.0)] for c in batch]
    await opened.close()
    assert "".join(c.text for c in opened.first + rest) == "a b"
    assert rest[-1].usage_only


async def test_mock_probe_is_always_ok_without_the_network():
    from proxy.routing.probe import probe_deployment

    result = await probe_deployment(RefusingClient(), MockProvider(), deployment("mock", key=None))
    assert result == {"ok": True, "status": None, "latency_ms": 0.0, "detail": "mock: always ok"}
