"""Each provider's `probe_request` (the cheapest call that proves a key), and how the probe
reads its answer through that provider's `classify_error`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config.types import Deployment
from proxy.providers.anthropic.provider import AnthropicProvider
from proxy.providers.mock import MockProvider
from proxy.providers.openai import OpenAIProvider
from proxy.routing import probe
from proxy.routing.transport import ConnectError, ReadError, RemoteProtocolError, TransportError
from proxy.schema import ChatRequest, UpstreamRequest
from proxy.secret import Secret

KEY = "sk-test-probe-key-00000000000000009f2a"


def deployment(wire: str, api_base: str, *, key: str | None = KEY, **kw) -> Deployment:
    return Deployment(
        id=f"{wire}-1", group="g", provider=wire, wire=wire, model="m", api_base=api_base,
        key=None if key is None else Secret(key), key_env=None, **kw,
    )  # fmt: skip


# ---- probe_request ----


def test_openai_lists_models_with_a_bearer_key():
    request = OpenAIProvider().probe_request(deployment("openai", "https://api.openai.com/v1"))
    assert (request.method, request.url) == ("GET", "https://api.openai.com/v1/models")
    assert request.headers == {"authorization": f"Bearer {KEY}"}
    assert request.content == b""


def test_openai_keyless_vendor_sends_no_authorization():
    dep = deployment("openai", "http://localhost:11434/v1", key=None)
    assert OpenAIProvider().probe_request(dep).headers == {}


def test_openai_probe_carries_extra_headers_as_requests_do():
    dep = deployment(
        "openai", "https://x.test/v1", extra_headers={"X-Org": "acme", "authorization": "Key k"}
    )
    request = OpenAIProvider().probe_request(dep)
    sent = OpenAIProvider().build_request(ChatRequest("g", {"model": "g"}), dep)
    assert request.headers == {"x-org": "acme", "authorization": "Key k"}
    assert {k: sent.headers[k] for k in request.headers} == request.headers


@pytest.mark.parametrize(
    "base",
    ["https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1", ""],
)
def test_anthropic_lists_models_with_its_own_headers(base):
    request = AnthropicProvider().probe_request(deployment("anthropic", base))
    assert (request.method, request.url) == ("GET", "https://api.anthropic.com/v1/models")
    assert request.headers == {"anthropic-version": "2023-06-01", "x-api-key": KEY}
    assert request.content == b""


def test_anthropic_probe_and_messages_share_their_headers():
    dep = deployment("anthropic", "http://a.test", extra_headers={"x-team": "t1"})
    request = AnthropicProvider().probe_request(dep)
    sent = AnthropicProvider().build_request(
        ChatRequest("g", {"model": "g", "messages": [{"role": "user", "content": "hi"}]}), dep
    )
    assert request.url == "http://a.test/v1/models" and sent.url == "http://a.test/v1/messages"
    assert {k: sent.headers[k] for k in request.headers} == request.headers


def test_mock_has_nothing_to_probe():
    assert MockProvider().probe_request(deployment("mock", "", key=None)) is None


# ---- probe_deployment ----


@dataclass
class Answer:
    status_code: int
    content: bytes = b"{}"
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))


class OneAnswer:
    """An `UpstreamClient` that records the request and answers (or raises) as told."""

    def __init__(self, answer: Answer | Exception | None) -> None:
        self.answer = answer
        self.sent: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> Answer:
        self.sent.append(request)
        if self.answer is None:
            await asyncio.Event().wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        assert self.answer is not None
        return self.answer

    async def aclose(self) -> None:
        """Nothing to close."""


ANTHROPIC = deployment("anthropic", "http://a.test")
OPENAI = deployment("openai", "http://o.test/v1")


async def test_a_2xx_accepts_the_key():
    client = OneAnswer(Answer(200, b'{"data": []}'))
    result = await probe.probe_deployment(client, AnthropicProvider(), ANTHROPIC)
    assert result["ok"] and result["status"] == 200 and result["detail"] == "key accepted"
    assert [r.url for r in client.sent] == ["http://a.test/v1/models"]


@pytest.mark.parametrize(
    ("provider", "dep", "body"),
    [
        (
            AnthropicProvider(),
            ANTHROPIC,
            b'{"type":"error","error":{"type":"authentication_error",'
            b'"message":"invalid x-api-key"}}',
        ),
        (OpenAIProvider(), OPENAI, b'{"error":{"message":"Incorrect API key","type":"x"}}'),
    ],
)
async def test_a_401_is_read_by_the_providers_classify_error(provider, dep, body):
    result = await probe.probe_deployment(OneAnswer(Answer(401, body)), provider, dep)
    assert result["ok"] is False and result["status"] == 401
    assert result["detail"] == "key rejected"


async def test_other_errors_show_the_providers_message_without_the_key():
    body = b'{"error":{"message":"model list down for ' + KEY.encode() + b'","type":"x"}}'
    result = await probe.probe_deployment(OneAnswer(Answer(503, body)), OpenAIProvider(), OPENAI)
    assert result["ok"] is False and result["status"] == 503
    assert "model list down" in result["detail"] and KEY not in result["detail"]


async def test_a_transport_error_is_a_failed_probe():
    result = await probe.probe_deployment(
        OneAnswer(ConnectError("ClientConnectorError")), OpenAIProvider(), OPENAI
    )
    assert result["ok"] is False and result["status"] is None
    assert result["detail"] == "connection failed (ConnectError)"


async def test_a_silent_upstream_times_out(monkeypatch):
    monkeypatch.setattr(probe, "PROBE_TIMEOUT", 0.01)
    result = await probe.probe_deployment(OneAnswer(None), OpenAIProvider(), OPENAI)
    assert result["ok"] is False and result["detail"] == "timed out"


async def test_a_disabled_deployment_is_not_sent():
    client = OneAnswer(Answer(200))
    dep = deployment("openai", "http://o.test/v1", disabled_reason="key missing: no api_key")
    result = await probe.probe_deployment(client, OpenAIProvider(), dep)
    assert result == {
        "ok": False, "status": None, "latency_ms": 0.0, "detail": "key missing: no api_key"
    }  # fmt: skip
    assert client.sent == []


# ---- the transport's own error ----


def _refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("api.secret-host.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_refused, ConnectError),
        (aiohttp.ServerDisconnectedError, RemoteProtocolError),
        (lambda: aiohttp.ClientPayloadError("cut short"), RemoteProtocolError),
        (lambda: aiohttp.ClientOSError(104, "reset by api.secret-host.test"), ReadError),
    ],
)
def test_aiohttp_failures_become_our_transport_errors_without_host_or_url(make, kind):
    from proxy.routing.transport import _translate

    source = make()
    assert "api.secret-host.test" in str(source) or kind is not ConnectError
    err = _translate(source)
    assert type(err) is kind and isinstance(err, TransportError)
    assert str(err) == type(source).__name__ and "secret-host" not in str(err)
