"""The front door against hostile and careless clients (issue 13): slow and idle connections
are closed, a connection cap that still serves normal requests, 431 for oversized heads, the
browser guard of a keyless proxy (Host, Origin), JSON content types, and usable request ids.

Real servers on loopback driven over raw sockets, httpx and the official SDKs; the timeouts
are set small in the config so that a test waits on the server closing, never on a clock.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment

KEY = "sk-upstream-hardening-0123456789-4242"
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello there"}]}
MESSAGES = {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
FAST = {"client_read_timeout": 0.5, "client_idle_timeout": 0.5}
"""Bounds small enough that a test sees them expire at once."""


def config(fake, **general: Any) -> dict[str, Any]:
    return {
        "model_list": [
            openai_deployment("gpt-4", fake, KEY, id="gpt-4-a"),
            anthropic_deployment("claude", fake, KEY, id="claude-a"),
        ],
        "general_settings": general,
    }


@pytest.fixture
def proxy(fake, start_proxy) -> Proxy:
    """A keyless loopback proxy with short client timeouts."""
    return start_proxy(config(fake, **FAST))


@contextmanager
def raw(proxy: Proxy) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", proxy.server.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Reads until the server closes the connection (the socket's timeout is the safety)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def status_and_json(data: bytes) -> tuple[int, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def assert_openai_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return str(error["message"])


def assert_anthropic_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return str(body["error"]["message"])


# ---- slow and idle clients ----


def test_half_a_request_line_gets_408_and_the_connection_is_closed(proxy) -> None:
    with raw(proxy) as sock:
        sock.sendall(b"POST /v1/chat/compl")
        status, body = status_and_json(read_all(sock))
    assert status == 408
    assert b'"code":"request_timeout"' in body
    with proxy.client() as c:  # and the proxy serves everyone else
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_a_body_that_stops_coming_gets_408_in_the_routes_shape(proxy, fake) -> None:
    head = "POST {} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    for path, shape in (
        ("/v1/chat/completions", b'"error":{"message"'),
        ("/v1/messages", b'"type":"error"'),
    ):
        with raw(proxy) as sock:
            sock.sendall((head.format(path) + "content-length: 500\r\n\r\n").encode() + b'{"mo')
            status, body = status_and_json(read_all(sock))
        assert status == 408, body
        assert shape in body
    assert fake.requests == []


def test_idle_connections_are_closed_new_and_kept_alive(proxy) -> None:
    with raw(proxy) as sock:
        assert read_all(sock) == b""  # never sent a byte
    with raw(proxy) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        answer = read_all(sock)  # the answer, then the idle keep-alive connection closes
    assert answer.startswith(b"HTTP/1.1 200")


def test_past_the_cap_the_oldest_half_open_connection_makes_room(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, max_client_connections=4))
    with ExitStack() as stack:
        half_open = [stack.enter_context(raw(proxy)) for _ in range(4)]
        for sock in half_open:
            sock.sendall(b"GET /heal")
        with proxy.client() as c:  # a fifth connection: served, the oldest is closed for it
            assert c.get("/health").status_code == 200
        assert read_all(half_open[0]) == b""


def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, max_client_connections=3, **FAST))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nexpect: 100-continue\r\n"
        b"content-type: application/json\r\ncontent-length: 100\r\n\r\n"
    )
    with ExitStack() as stack:
        busy = [stack.enter_context(raw(proxy)) for _ in range(3)]
        for sock in busy:  # a whole head each: requests under way, not idle connections
            sock.sendall(head)
            assert sock.recv(100).startswith(b"HTTP/1.1 100")  # the proxy has read the head
        with httpx.Client(base_url=proxy.url) as c:
            refused = c.post("/v1/chat/completions", json=CHAT)
        with httpx.Client(base_url=proxy.url) as c:
            refused_messages = c.post("/v1/messages", json=MESSAGES)
        assert_openai_error(refused, 503, "too_many_connections")
        assert refused.headers["retry-after"] == "1"
        assert_anthropic_error(refused_messages, 529)  # Anthropic's overloaded: clients retry
        for sock in busy:  # their bodies never come: 408, and the slots are free again
            assert status_and_json(read_all(sock))[0] == 408
    served = []
    for _ in range(50):  # until the proxy has seen the three connections go
        with httpx.Client(base_url=proxy.url) as c:
            served.append(c.post("/v1/chat/completions", json=CHAT).status_code)
        if served[-1] == 200:
            break
    assert served[-1] == 200, served


# ---- request heads ----


def test_too_many_headers_or_too_large_a_head_is_431(proxy) -> None:
    with proxy.client() as c:
        many = c.get("/health", headers={f"x-h{i}": "v" for i in range(120)})
        large = c.get("/health", headers={"x-large": "v" * 70_000})
        normal = c.get("/health", headers={f"x-h{i}": "v" * 100 for i in range(60)})
    for response in (many, large):
        assert_openai_error(response, 431, "request_header_fields_too_large")
    assert normal.status_code == 200


def test_a_head_sent_in_many_pieces_is_bounded_too(proxy) -> None:
    with raw(proxy) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nx-large: ")
        for _ in range(80):
            sock.sendall(b"v" * 1024)
        status, body = status_and_json(read_all(sock))
    assert status == 431
    assert b"request_header_fields_too_large" in body


def test_a_malformed_request_is_400_in_the_front_doors_shape(proxy) -> None:
    with raw(proxy) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, body = status_and_json(read_all(sock))
    assert status == 400
    assert body.startswith(b'{"error":')


# ---- the browser guard of a keyless proxy ----

FOREIGN = [
    {"host": "evil.example"},
    {"host": "evil.example:4000"},
    {"host": "127.0.0.1.evil.example"},
    {"origin": "https://evil.example"},
    {"origin": "null"},
    {"origin": "http://[::1"},
]
"""DNS rebinding (a foreign Host) and cross-site requests (a foreign Origin)."""
OWN = [
    {"host": "localhost"},
    {"host": "LOCALHOST:4000"},
    {"host": "[::1]:4000"},
    {"host": "proxy.lan:4000"},
    {"origin": "http://localhost:5173"},
    {"origin": "http://127.0.0.1:3000"},
]


def test_without_a_master_key_web_pages_are_refused(proxy, fake) -> None:
    with proxy.client() as c:
        for headers in FOREIGN:
            chat = c.post("/v1/chat/completions", json=CHAT, headers=headers)
            actions = c.post("/llmproxy/actions", json={"action": "x"}, headers=headers)
            state = c.get("/llmproxy/state", headers=headers)
            models = c.get("/v1/models", headers=headers)
            messages = c.post("/v1/messages", json=MESSAGES, headers=headers)
            health = c.get("/health", headers=headers)
            code = "host_not_allowed" if "host" in headers else "origin_not_allowed"
            for response in (chat, actions, state, models):
                message = assert_openai_error(response, 403, code)
                assert "general_settings.allowed_hosts" in message
            assert "allowed_hosts" in assert_anthropic_error(messages, 403)
            assert health.status_code == 200, headers
    assert fake.requests == []


def test_the_proxys_own_names_and_allowed_hosts_are_served(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake, allowed_hosts=["proxy.lan"]))
    with proxy.client() as c:
        for headers in OWN:
            r = c.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 200, (headers, r.text)


def test_with_a_master_key_the_key_is_the_gate(fake, start_proxy) -> None:
    proxy = start_proxy(config(fake), master_key=MASTER_KEY)
    remote = {"host": "my-box.tail1234.ts.net", "origin": "https://my-box.tail1234.ts.net"}
    with proxy.client() as c:
        assert c.post("/v1/chat/completions", json=CHAT, headers=remote).status_code == 200
    with httpx.Client(base_url=proxy.url) as anon:
        r = anon.post("/v1/chat/completions", json=CHAT, headers=remote)
    assert_openai_error(r, 401, "invalid_api_key")


def test_the_sdks_never_notice_the_guard(proxy) -> None:
    answer = proxy.openai().chat.completions.create(**CHAT)
    assert answer.choices[0].message.content
    client = anthropic.Anthropic(base_url=proxy.url, api_key="none", max_retries=0)
    with client:
        message = client.messages.create(**MESSAGES)
    assert message.content


# ---- JSON routes need a JSON content type ----

BODY = b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}'


def test_a_json_route_refuses_a_body_of_another_type_with_415(proxy, fake) -> None:
    kinds = [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
    with proxy.client() as c:
        for kind in kinds:
            headers = {} if kind is None else {"content-type": kind}
            chat = c.post("/v1/chat/completions", content=BODY, headers=headers)
            actions = c.post("/llmproxy/actions", content=b"{}", headers=headers)
            messages = c.post("/v1/messages", content=BODY, headers=headers)
            for response in (chat, actions):
                message = assert_openai_error(response, 415, "unsupported_media_type")
                assert "Content-Type: application/json" in message
            assert "Content-Type: application/json" in assert_anthropic_error(messages, 415)
    assert fake.requests == []


def test_json_content_types_are_served(proxy) -> None:
    with proxy.client() as c:
        for kind in ("application/json; charset=utf-8", "application/vnd.x+json"):
            r = c.post("/v1/chat/completions", content=BODY, headers={"content-type": kind})
            assert r.status_code == 200, r.text


def test_a_hostile_content_type_is_echoed_short_and_escaped(proxy) -> None:
    with proxy.client() as c:
        r = c.post(
            "/v1/chat/completions",
            content=b"{}",
            headers={"content-type": b"text/\x9b31m" + b"a" * 5000},  # \x9b: CSI
        )
    message = assert_openai_error(r, 415, "unsupported_media_type")
    assert "\x9b" not in message and "\\x9b" in message and len(message) < 300


# ---- request ids ----

UNUSABLE_IDS = [b"\x1b]0;TITLE\x07", b"id-\x80\xff", b"a" * 129, b"tab\there", b"del\x7f", b"a b"]


def test_an_unusable_request_id_is_replaced_by_ours(proxy) -> None:
    for given in UNUSABLE_IDS:
        with raw(proxy) as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
                b"x-request-id: " + given + b"\r\n\r\n"
            )
            head = read_all(sock).partition(b"\r\n\r\n")[0].split(b"\r\n")
        ids = [line[len(b"x-request-id: ") :] for line in head if line.startswith(b"x-request-id:")]
        status = head[0].split(b" ")[1]
        assert status in (b"200", b"400"), head  # 400: the HTTP parser refused it first
        assert len(ids) == 1, head
        assert ids[0] != given.strip() and ids[0].isalnum(), (given, ids)


def test_a_short_printable_request_id_is_kept(proxy) -> None:
    given = "trace-" + "7" * 122  # 128 characters
    with proxy.client() as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": given})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == given
