"""The one front door (issue 10): every answer carries `x-request-id`, the route table decides
auth, and every error, lean or FastAPI-side, unknown path or internal failure, leaves in the
route's wire format (OpenAI's here) with one log line format.

Real servers on loopback; the internal-error tests add a failing route to the table through
the public factory API (`route_table` + `ProxyServer(routes=...)`), since no honest request
makes the proxy fail inside.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response

from proxy.config.loader import build_config
from proxy.endpoints import anthropic_messages, openai_chat
from proxy.http.app import route_table
from proxy.http.routes import Auth, Call, Route
from proxy.http.server import ProxyServer
from proxy.pipeline import Answer
from proxy.runtime import Runtime
from tests.conftest import MASTER_KEY, Proxy, openai_deployment

KEY = "sk-upstream-front-door-0123456789-7777"
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello there"}]}
LOG_LINE = re.compile(
    r"^(?P<id>\S+): (?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\d{3}) \S+: .+"
)


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"] and body["error"]["type"]
    return dict(body["error"])


def config(fake) -> dict[str, Any]:
    return {"model_list": [openai_deployment("gpt-4", fake, KEY, id="gpt-4-a")]}


@pytest.fixture
def proxy(fake, start_proxy) -> Proxy:
    return start_proxy(config(fake), master_key=MASTER_KEY)


@pytest.fixture
def start_with_routes(fake, tmp_path: Path) -> Iterator[Callable[[list[Route]], Proxy]]:
    """Returns `start(extra_routes) -> Proxy`: the standard table plus `extra_routes`."""
    started: list[Proxy] = []

    def start(extra: list[Route]) -> Proxy:
        doc = config(fake)
        doc["general_settings"] = {"master_key": MASTER_KEY}
        path = tmp_path / f"config{len(started)}.yaml"
        path.write_text(yaml.safe_dump(doc))
        runtime = Runtime(build_config(doc, path=path), usage_db=None)
        server = ProxyServer(runtime, "127.0.0.1", 0, routes=[*route_table(runtime), *extra])
        thread = threading.Thread(target=server.run, name="proxy", daemon=True)
        thread.start()
        assert server.started.wait(15) and not server.bind_error, server.bind_error
        proxy = Proxy(server, runtime, thread, f"http://127.0.0.1:{server.port}", MASTER_KEY)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# ---- x-request-id on every answer ----

KEYED = {"authorization": f"Bearer {MASTER_KEY}"}
JSON = {"content-type": "application/json"}
CASES: list[tuple[str, str, str, dict[str, str], bytes, int]] = [
    ("401", "POST", "/v1/chat/completions", JSON, b'{"model": "gpt-4"}', 401),
    ("404 unknown path", "GET", "/v1/nothing-here", KEYED, b"", 404),
    ("405", "GET", "/v1/chat/completions", KEYED, b"", 405),
    ("400 bad body", "POST", "/v1/chat/completions", {**KEYED, **JSON}, b'{"model": ', 400),
    ("415", "POST", "/v1/chat/completions", {**KEYED, "content-type": "text/plain"}, b"{}", 415),
    ("400 FastAPI side", "POST", "/llmproxy/actions", {**KEYED, **JSON}, b"[1, 2]", 400),
    ("405 on a FastAPI route", "DELETE", "/v1/models", KEYED, b"", 405),
    ("200 /health", "GET", "/health", {}, b"", 200),
    ("200 /v1/models", "GET", "/v1/models", KEYED, b"", 200),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_every_answer_carries_a_request_id(proxy, fake, method, path, headers, body, status):
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        mine = c.request(
            method, path, headers={**headers, "x-request-id": "trace-me-7"}, content=body
        )
        first = c.request(method, path, headers=headers, content=body)
        second = c.request(method, path, headers=headers, content=body)
    for response in (mine, first, second):
        if status == 200:
            assert response.status_code == 200, response.text
        else:
            assert_openai_error(response, status)
    assert mine.headers["x-request-id"] == "trace-me-7"
    generated = first.headers["x-request-id"], second.headers["x-request-id"]
    assert all(len(rid) >= 16 for rid in generated)
    assert generated[0] != generated[1]
    assert fake.requests == []


def test_a_405_names_the_allowed_methods(proxy) -> None:
    with proxy.client() as c:
        lean = c.get("/v1/chat/completions")
        fastapi_side = c.post("/health", json={})
    assert_openai_error(lean, 405)
    assert lean.headers["allow"] == "POST"
    assert_openai_error(fastapi_side, 405)
    assert fastapi_side.headers["allow"] == "GET"


@pytest.mark.parametrize("given", ["x" * 129, "caf\u00e9", "has space", ""])
def test_an_unusable_client_request_id_is_replaced(proxy, given: str) -> None:
    with proxy.client() as c:
        r = c.get("/health", headers={"x-request-id": given.encode("latin-1")})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != given
    assert len(r.headers["x-request-id"]) >= 16


def test_every_error_logs_one_line_in_one_format(proxy, caplog) -> None:
    caplog.set_level(logging.INFO, logger="llmproxy")
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        for name, method, path, headers, body, status in CASES:
            if status == 200:
                continue
            rid = f"line-{name.replace(' ', '-')}"
            c.request(method, path, headers={**headers, "x-request-id": rid}, content=body)
            lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(rid)]
            assert len(lines) == 1, (name, lines)
            match = LOG_LINE.match(lines[0])
            assert match, lines[0]
            assert (match["method"], match["path"], match["status"]) == (method, path, str(status))


def test_a_client_cannot_forge_log_lines_through_the_path(proxy, caplog) -> None:
    caplog.set_level(logging.INFO, logger="llmproxy")
    with proxy.client() as c:
        r = c.get("/v1/nothing%0Aforged: GET /x -> 200")
    assert_openai_error(r, 404)
    line = next(m for m in caplog.messages if m.startswith(r.headers["x-request-id"]))
    assert "\n" not in line
    assert "\\n" in line


# ---- auth is the table's ----


def test_every_route_that_needs_a_key_refuses_a_request_without_it(proxy, fake) -> None:
    table = route_table(proxy.runtime)
    assert {r.auth for r in table} == set(Auth)  # the table covers every kind of route
    with httpx.Client(base_url=proxy.url, timeout=10) as anon:
        for route in table:
            for path in (p + "some/name" if route.prefix else p for p in route.paths):
                for headers in ({}, {"authorization": "Bearer sk-wrong"}):
                    r = anon.request(route.method, path, headers={**headers, **JSON}, content=b"{}")
                    if route.needs_key and route.wire is anthropic_messages:
                        assert r.status_code == 401, (route.method, path)
                        assert r.json()["type"] == "error"  # Anthropic's shape on its routes
                        assert r.json()["error"]["type"] == "authentication_error"
                        assert r.headers["x-request-id"]
                    elif route.needs_key:
                        assert_openai_error(r, 401)
                        assert r.headers["x-request-id"]
                    else:
                        assert r.status_code != 401, (route.method, path)
    assert fake.requests == []


# ---- internal errors ----


def hostile_message() -> str:
    return f"exploded holding {MASTER_KEY} and {KEY}"


async def explode_fastapi(_request: Request) -> Response:
    raise RuntimeError(hostile_message())


async def explode_lean(_call: Call) -> Answer:
    raise KeyError(hostile_message())


FAILING = [
    Route("GET", ("/test/explode",), explode_fastapi, Auth.KEY, openai_chat),
    Route("POST", ("/test/explode-lean",), explode_lean, Auth.KEY, openai_chat, lean=True),
]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/test/explode"), ("POST", "/test/explode-lean")]
)
def test_an_internal_error_is_a_clean_500_with_one_scrubbed_traceback(
    start_with_routes, caplog, method: str, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = start_with_routes(FAILING)
    with proxy.client() as c:
        r = c.request(method, path, json={}, headers={"x-request-id": "boom-1"})
        assert c.get("/health").status_code == 200  # still serving
    error = assert_openai_error(r, 500)
    assert error["message"] == "Internal error in the proxy."
    assert r.headers["x-request-id"] == "boom-1"
    assert "exploded" not in r.text
    records = [
        rec for rec in caplog.records if "Traceback (most recent call last)" in rec.getMessage()
    ]
    assert len(records) == 1, [rec.getMessage() for rec in records]
    assert records[0].levelno == logging.ERROR
    logged = records[0].getMessage()
    assert LOG_LINE.match(logged) and logged.startswith(f"boom-1: {method} {path} -> 500 ")
    assert "exploded holding" in logged and "…cdef" in logged and "…7777" in logged
    assert caplog.text.count("Traceback (most recent call last)") == 1
    for secret in (MASTER_KEY, KEY):
        assert secret not in caplog.text
