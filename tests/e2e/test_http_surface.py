"""The HTTP surface of issue 2: routes, auth, the health family, headers, limits, bad input.

Every error must be OpenAI's `{"error": {message, type, param, code}}`, bad client input a 4xx
(never a 500), and no provider key may appear in any body, header or log line.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, openai_deployment
from tests.fakes.upstream import error

KEY_A = "sk-upstream-aaaa-0123456789-1111"
KEY_B = "sk-upstream-bbbb-9876543210-2222"
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello there"}]}


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]
    if code is not None:
        assert body["error"]["code"] == code, body


@pytest.fixture
def proxy(fake, start_proxy):
    return start_proxy(
        {
            "model_list": [
                openai_deployment("gpt-4", fake, KEY_A, id="gpt-4-a"),
                openai_deployment("embed", fake, KEY_A, model="openai/text-embedding-3-small"),
            ]
        },
        master_key=MASTER_KEY,
    )


# ---- routes ----


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_chat_route_with_and_without_v1(proxy, fake, path: str) -> None:
    with proxy.client() as c:
        r = c.post(path, json=CHAT)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello! This is the fake upstream."
    assert fake.requests[-1].path == "/v1/chat/completions"


@pytest.mark.parametrize("path", ["/v1/models", "/models"])
def test_models_lists_the_groups(proxy, path: str) -> None:
    with proxy.client() as c:
        r = c.get(path)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert sorted(m["id"] for m in body["data"]) == ["embed", "gpt-4"]
    assert all(m["object"] == "model" for m in body["data"])


def test_models_needs_the_master_key(proxy) -> None:
    r = httpx.get(proxy.url + "/v1/models")
    assert_openai_error(r, 401)


def test_embeddings_and_completions_routes(proxy, fake) -> None:
    with proxy.client() as c:
        emb = c.post("/v1/embeddings", json={"model": "embed", "input": ["a b", "c"]})
        comp = c.post("/v1/completions", json={"model": "gpt-4", "prompt": "Say hi"})
    assert emb.status_code == 200, emb.text
    assert [d["index"] for d in emb.json()["data"]] == [0, 1]
    assert fake.calls(path="/v1/embeddings")[-1].body["model"] == "text-embedding-3-small"
    assert comp.status_code == 200, comp.text
    assert comp.json()["choices"][0]["text"]
    assert fake.calls(path="/v1/completions")[-1].body["prompt"] == "Say hi"


# ---- health ----


def test_health_family_needs_no_auth(proxy) -> None:
    for path in ("/health", "/health/liveliness", "/health/liveness", "/health/readiness"):
        r = httpx.get(proxy.url + path)
        assert r.status_code == 200, (path, r.text)
    assert httpx.get(proxy.url + "/health").json()["status"] == "healthy"


def test_health_is_503_when_no_deployment_is_usable(fake, start_proxy, monkeypatch) -> None:
    monkeypatch.delenv("LLMPROXY_TEST_UNSET_KEY", raising=False)
    entry = openai_deployment("gpt-4", fake, "os.environ/LLMPROXY_TEST_UNSET_KEY")
    proxy = start_proxy({"model_list": [entry]})
    r = httpx.get(proxy.url + "/health")
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy"
    assert httpx.get(proxy.url + "/health/liveliness").status_code == 200


# ---- auth ----


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {MASTER_KEY}"},
        {"x-api-key": MASTER_KEY},
        {"api-key": MASTER_KEY},
    ],
)
def test_master_key_in_each_header(proxy, headers: dict[str, str]) -> None:
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-wrong"},
        {"authorization": "Basic " + MASTER_KEY},
        {"authorization": "Bearer " + MASTER_KEY[:-1]},
        {"x-api-key": "sk-wrong"},
        {"api-key": ""},
    ],
)
def test_missing_or_wrong_master_key_is_401(proxy, fake, headers: dict[str, str]) -> None:
    for path, method in (
        ("/v1/chat/completions", "POST"),
        ("/v1/embeddings", "POST"),
        ("/llmproxy/state", "GET"),
        ("/metrics", "GET"),
    ):
        r = httpx.request(method, proxy.url + path, json=CHAT, headers=headers)
        assert_openai_error(r, 401)
        assert MASTER_KEY not in r.text
    assert fake.requests == []


def test_no_master_key_means_no_auth(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("gpt-4", fake, KEY_A)]})
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 200


# ---- headers ----


def test_llmproxy_headers_on_an_answer(fake, start_proxy) -> None:
    proxy = start_proxy(
        {
            "model_list": [openai_deployment("gpt-4", fake, KEY_A, id="gpt-4-a")],
            "litellm_settings": {"cache": True},
        },
        master_key=MASTER_KEY,
    )
    with proxy.client() as c:
        first = c.post("/v1/chat/completions", json=CHAT)
        second = c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "my-id-1"})
    h = first.headers
    assert h["x-llmproxy-deployment"] == "gpt-4-a"
    assert h["x-llmproxy-provider"] == "openai"
    assert h["x-llmproxy-attempts"] == "1"
    assert h["x-llmproxy-cache"] == "miss"
    assert float(h["x-llmproxy-cost"]) > 0
    assert len(h["x-request-id"]) >= 16
    assert second.headers["x-llmproxy-cache"] == "hit"
    assert second.headers["x-request-id"] == "my-id-1"
    assert second.json() == first.json()
    assert len(fake.requests) == 1


def test_cache_header_is_off_without_a_cache_and_counts_attempts(proxy, fake) -> None:
    fake.script(error(500, "boom"))
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert r.headers["x-llmproxy-cache"] == "off"
    assert r.headers["x-llmproxy-attempts"] == "2"


# ---- client-supplied routing fields are ignored ----


def test_client_api_key_and_base_are_ignored(proxy, fake) -> None:
    with socket.socket() as trap:  # a base URL that would see the request if it were used
        trap.bind(("127.0.0.1", 0))
        trap.listen()
        elsewhere = f"http://127.0.0.1:{trap.getsockname()[1]}/v1"
        body = {**CHAT, "api_key": "sk-client-evil", "api_base": elsewhere, "base_url": elsewhere}
        with proxy.client() as c:
            r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    seen = fake.requests[-1]
    assert seen.key == KEY_A
    for name in ("api_key", "api_base", "base_url"):
        assert name not in seen.body


# ---- errors ----


def test_unknown_model_is_404_model_not_found(proxy, fake) -> None:
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "no-such-group"})
    assert_openai_error(r, 404, "model_not_found")
    assert r.json()["error"]["param"] == "model"
    assert fake.requests == []


BAD_BODIES: list[tuple[str, Any]] = [
    ("empty body", b""),
    ("invalid json", b'{"model": "gpt-4", '),
    ("not an object", b'["gpt-4"]'),
    ("a string", b'"hello"'),
    ("null", b"null"),
    ("missing model", {"messages": CHAT["messages"]}),
    ("model not a string", {**CHAT, "model": 4}),
    ("missing messages", {"model": "gpt-4"}),
    ("empty messages", {**CHAT, "messages": []}),
    ("messages not a list", {**CHAT, "messages": "hi"}),
    ("message not an object", {**CHAT, "messages": ["hi"]}),
    ("bad role", {**CHAT, "messages": [{"role": "wizard", "content": "hi"}]}),
    ("no role", {**CHAT, "messages": [{"content": "hi"}]}),
    ("content a number", {**CHAT, "messages": [{"role": "user", "content": 5}]}),
    ("temperature a string", {**CHAT, "temperature": "hot"}),
    ("temperature too high", {**CHAT, "temperature": 7}),
    ("max_tokens a string", {**CHAT, "max_tokens": "10"}),
    ("max_tokens a float", {**CHAT, "max_tokens": 10.5}),
    ("max_tokens negative", {**CHAT, "max_tokens": -1}),
    ("stream a string", {**CHAT, "stream": "yes"}),
    ("n a string", {**CHAT, "n": "2"}),
    ("n zero", {**CHAT, "n": 0}),
    ("cache a string", {**CHAT, "cache": "no"}),
    ("cache ttl negative", {**CHAT, "cache": {"ttl": -5}}),
    ("stream_options a list", {**CHAT, "stream": True, "stream_options": [1]}),
    ("deep nesting", b'{"model": "gpt-4", "messages": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
    ("invalid utf-8", b'{"model": "gpt-4\xff\xfe", "messages": []}'),
]


def test_bad_chat_bodies_are_400_in_openai_shape(proxy, fake) -> None:
    with proxy.client() as c:
        for name, body in BAD_BODIES:
            if isinstance(body, bytes):
                headers = {"content-type": "application/json"}
                r = c.post("/v1/chat/completions", content=body, headers=headers)
            else:
                r = c.post("/v1/chat/completions", json=body)
            try:
                assert_openai_error(r, 400)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200  # still up
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"model": "embed"}),
        ("/v1/embeddings", {"model": "embed", "input": ""}),
        ("/v1/embeddings", {"model": "embed", "input": "x", "stream": True}),
        ("/v1/completions", {"model": "gpt-4"}),
    ],
)
def test_bad_embeddings_and_completions_bodies(proxy, fake, path: str, body: Any) -> None:
    with proxy.client() as c:
        r = c.post(path, json=body)
    assert_openai_error(r, 400)
    assert fake.requests == []


def test_wrong_method_and_unknown_route(proxy) -> None:
    cases = [
        ("GET", "/v1/chat/completions", 405),
        ("PUT", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
        ("POST", "/health", 405),
        ("GET", "/v1/nothing-here", 404),
        ("POST", "/v2/chat/completions", 404),
        ("GET", "/nothing", 404),
    ]
    with proxy.client() as c:
        for method, path, status in cases:
            assert_openai_error(c.request(method, path), status)
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_body_over_the_limit_is_413(proxy, fake) -> None:
    from proxy.http.door import MAX_BODY

    with socket.create_connection(("127.0.0.1", proxy.server.port)) as sock:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            f"authorization: Bearer {MASTER_KEY}\r\ncontent-type: application/json\r\n"
            f"content-length: {MAX_BODY + 1}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "gpt-4"')
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    # A chunked body (no content-length) that grows past the limit is refused too.
    big = b'{"model": "gpt-4", "messages": [{"role": "user", "content": "' + b"x" * MAX_BODY

    def chunks():
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]
        yield b'"}]}'

    with proxy.client() as c:
        try:
            r = c.post(
                "/v1/chat/completions",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
        except httpx.WriteError:
            pass  # the proxy answered 413 and closed while we were still sending
        else:
            assert_openai_error(r, 413)
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert len(fake.requests) == 1


def test_upstream_errors_reach_the_client_in_openai_shape(proxy, fake) -> None:
    fake.script(error(400, "Invalid 'tools[0]': bad schema", code="invalid_value"))
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert_openai_error(r, 400)
    assert "bad schema" in r.json()["error"]["message"]
    fake.set_default(error(503, "down"))
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code in (502, 503, 504)
    assert_openai_error(r, r.status_code)
    assert "gpt-4-a" in r.json()["error"]["message"]


# ---- keys never leak ----


def test_no_key_in_any_response_or_log(fake, start_proxy, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = start_proxy(
        {
            "model_list": [
                openai_deployment("gpt-4", fake, KEY_A, id="dep-a"),
                openai_deployment("gpt-4", fake, KEY_B, id="dep-b"),
                openai_deployment("solo", fake, KEY_B, id="dep-solo"),
            ],
            "router_settings": {"num_retries": 1},
        },
        master_key=MASTER_KEY,
    )
    fake.rejected_keys.add(KEY_A)  # the fake's own 401 for one key
    seen: list[str] = []

    def record(r: httpx.Response) -> None:
        seen.append(r.text)
        seen.extend(f"{k}: {v}" for k, v in r.headers.items())

    with proxy.client() as c:
        for _ in range(4):
            record(c.post("/v1/chat/completions", json=CHAT))
            record(c.post("/v1/chat/completions", json={**CHAT, "stream": True}))
        # Upstreams that echo the key in their error message, non-stream and stream.
        echo = f"Incorrect API key provided: {KEY_B}. Check your key."
        fake.script(error(400, echo), error(400, echo), key=KEY_B)
        record(c.post("/v1/chat/completions", json={**CHAT, "model": "solo"}))
        record(c.post("/v1/chat/completions", json={**CHAT, "model": "solo", "stream": True}))
        fake.script(error(500, echo), error(500, echo), key=KEY_B)
        record(c.post("/v1/chat/completions", json={**CHAT, "model": "solo"}))
        record(c.get("/llmproxy/state"))
        record(c.get("/metrics"))
        record(c.get("/v1/models"))
    with httpx.stream(
        "GET", proxy.url + "/llmproxy/events", headers=proxy.headers, timeout=10
    ) as events:
        seen.append(next(events.iter_text()))
    everything = "\n".join(seen) + caplog.text
    assert "Incorrect API key" in everything  # the echoing errors did come back
    for secret in (KEY_A, KEY_B, MASTER_KEY):
        assert secret not in everything
    assert "…2222" in everything or "dep-solo" in everything


def test_anthropic_errors_echoing_the_key_do_not_leak(fake, start_proxy, caplog) -> None:
    from tests.conftest import anthropic_deployment

    caplog.set_level(logging.DEBUG, logger="llmproxy")
    key = "sk-ant-api03-secret-echo-0123456789-3333"
    proxy = start_proxy(
        {"model_list": [anthropic_deployment("claude", fake, key, id="claude-a")]},
        master_key=MASTER_KEY,
    )
    echo = f"invalid x-api-key: {key}"
    texts: list[str] = []
    with proxy.client() as c:
        for stream in (False, True):
            fake.script(error(400, echo), key=key)
            body = {**CHAT, "model": "claude", "stream": stream}
            r = c.post("/v1/chat/completions", json=body)
            assert r.status_code == 400, r.text
            texts.append(r.text + str(r.headers))
        texts.append(c.get("/llmproxy/state").text)  # recent requests carry their error
    everything = "\n".join(texts) + caplog.text
    assert "invalid x-api-key" in everything
    assert key not in everything
