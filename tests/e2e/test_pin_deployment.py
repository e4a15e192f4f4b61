"""The deployment pin: `x-llmproxy-deployment` on a request sends it to that one deployment of
its group ("test this key"), on every front door, streamed or not; the master key only.

A group of three deployments on two fake upstreams (an OpenAI one on each, an Anthropic one on
the second), with a fallback group and the response cache on: a pinned request is answered by
the pinned deployment alone (the response header and the fake that saw the call agree), even
while it cools down or is disabled, never by a fallback, never from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proxy, anthropic_deployment, openai_deployment
from tests.fakes.upstream import FakeUpstream, error, rate_limit, reply

PIN = "x-llmproxy-deployment"
KEY_A = "sk-pin-upstream-aaaa-0001"
KEY_B = "sk-pin-upstream-bbbb-0002"
KEY_C = "sk-pin-anthropic-cccc-0003"
KEY_SPARE = "sk-pin-spare-dddd-0004"
ALPHA, BETA = "upstream-alpha", "upstream-beta"
"""What each fake answers (one word: a stream carries it in one piece)."""
HELLO = "Hello there"
DOORS = ("chat", "messages", "responses")
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


@pytest.fixture
def other() -> Iterator[FakeUpstream]:
    """A second fake upstream, so each deployment's calls land somewhere of their own."""
    up = FakeUpstream().start()
    try:
        yield up
    finally:
        up.stop()


def pool_config(fake: FakeUpstream, other: FakeUpstream) -> dict[str, Any]:
    """Group `pool`: pool-a (OpenAI on `fake`), pool-b (OpenAI on `other`), pool-c (Anthropic on
    `other`); group `spare` (on `fake`) is its fallback; the cache is on."""
    return {
        "model_list": [
            openai_deployment("pool", fake, KEY_A, id="pool-a"),
            openai_deployment("pool", other, KEY_B, id="pool-b"),
            anthropic_deployment("pool", other, KEY_C, id="pool-c"),
            openai_deployment("spare", fake, KEY_SPARE, id="spare-1"),
        ],
        "router_settings": {
            "num_retries": 2,
            "cooldown_time": 60,
            "allowed_fails": 0,
            "fallbacks": [{"pool": ["spare"]}],
        },
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 600}},
    }


@pytest.fixture
def proxy(fake: FakeUpstream, other: FakeUpstream, start_proxy: Any) -> Proxy:
    fake.set_default(reply(ALPHA))
    other.set_default(reply(BETA))
    return start_proxy(pool_config(fake, other), master_key=MASTER_KEY)


def body(door: str, stream: bool, model: str = "pool", text: str = HELLO) -> dict[str, Any]:
    if door == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if door == "messages":
        return {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            "stream": stream,
        }
    return {"model": model, "input": text, "stream": stream}


def send(
    proxy: Proxy,
    door: str,
    pin: str | None,
    *,
    stream: bool = False,
    key: str = MASTER_KEY,
    model: str = "pool",
    text: str = HELLO,
) -> httpx.Response:
    """One request through `door` (read whole, streamed or not), pinned to `pin`."""
    headers = {"authorization": f"Bearer {key}"}
    if door == "messages":
        headers["anthropic-version"] = "2023-06-01"
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=30) as c:
        extra = {} if pin is None else {PIN: pin.encode("latin-1")}
        return c.post(PATHS[door], json=body(door, stream, model, text), headers=extra)


def upstream_calls(fake: FakeUpstream, other: FakeUpstream) -> dict[str, int]:
    """The calls each deployment's key made upstream, by deployment id."""
    keys = {"pool-a": (fake, KEY_A), "pool-b": (other, KEY_B), "pool-c": (other, KEY_C)}
    keys["spare-1"] = (fake, KEY_SPARE)
    return {dep: len(up.calls(key=key)) for dep, (up, key) in keys.items()}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("door", DOORS)
def test_a_pinned_request_is_answered_by_that_deployment_alone(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream, door: str, stream: bool
) -> None:
    for pin, word in (("pool-a", ALPHA), ("pool-b", BETA), ("pool-c", BETA)):
        before = upstream_calls(fake, other)
        for i in range(3):
            # The same prompt each time: the cache (on) must not answer a pinned request.
            answer = send(proxy, door, pin, stream=stream)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-llmproxy-deployment"] == pin, (pin, i)
            assert answer.headers["x-llmproxy-cache"] == "off"
            assert answer.headers["x-llmproxy-attempts"] == "1"
            assert word in answer.text
        after = upstream_calls(fake, other)
        grown = {dep: after[dep] - before[dep] for dep in after}
        assert grown == {d: (3 if d == pin else 0) for d in grown}, (pin, grown)
    # Pass-through where the wire formats match: Messages to Anthropic, Responses to OpenAI.
    if door == "messages":
        assert other.calls(key=KEY_C, path="/v1/messages")
    if door == "responses":
        assert fake.calls(key=KEY_A, path="/v1/responses")


def test_without_the_header_the_group_chooses_as_before(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream
) -> None:
    served = {send(proxy, "chat", None, text=f"hi {i}").headers["x-llmproxy-deployment"]
              for i in range(30)}  # fmt: skip
    assert len(served) > 1 and served <= {"pool-a", "pool-b", "pool-c"}
    first = send(proxy, "chat", None)
    again = send(proxy, "chat", None)
    assert (first.headers["x-llmproxy-cache"], again.headers["x-llmproxy-cache"]) == (
        "miss",
        "hit",
    )


def test_the_cache_is_neither_read_nor_written(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream
) -> None:
    text = "a prompt for the cache"
    warmed = send(proxy, "chat", None, text=text)
    assert warmed.headers["x-llmproxy-cache"] == "miss"
    served = warmed.headers["x-llmproxy-deployment"]
    assert send(proxy, "chat", None, text=text).headers["x-llmproxy-cache"] == "hit"
    before = upstream_calls(fake, other)
    pinned = send(proxy, "chat", served, text=text)  # a cached answer exists: not read
    assert pinned.headers["x-llmproxy-cache"] == "off"
    assert upstream_calls(fake, other)[served] == before[served] + 1
    stats = proxy.state()["cache"]
    fresh = "a prompt only a pinned request sent"
    for stream in (False, True):
        assert send(proxy, "chat", "pool-b", text=fresh, stream=stream).status_code == 200
    assert proxy.state()["cache"]["entries"] == stats["entries"]  # nothing written
    assert send(proxy, "chat", None, text=fresh).headers["x-llmproxy-cache"] == "miss"


@pytest.mark.parametrize("door", DOORS)
def test_a_cooling_down_deployment_is_still_tried(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream, door: str
) -> None:
    other.script(rate_limit(60), key=KEY_B)  # its next call: 429, then a minute's cooldown
    limited = send(proxy, door, "pool-b")
    assert limited.status_code == 429, limited.text  # the pin's one attempt: no other key
    assert "retry-after" in limited.headers
    assert proxy.deployment("pool-b")["cooldown_remaining_s"] > 30
    unpinned = {send(proxy, "chat", None, text=f"hi {i}").headers["x-llmproxy-deployment"]
                for i in range(10)}  # fmt: skip
    assert "pool-b" not in unpinned  # the group leaves it alone while it cools
    before = upstream_calls(fake, other)
    for stream in (False, True):
        answer = send(proxy, door, "pool-b", stream=stream)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-llmproxy-deployment"] == "pool-b"
        assert BETA in answer.text
    assert upstream_calls(fake, other)["pool-b"] == before["pool-b"] + 2


def test_a_disabled_deployment_is_still_tried(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream
) -> None:
    with proxy.client() as c:
        done = c.post("/llmproxy/actions", json={"action": "disable", "deployment": "pool-a"})
    assert done.status_code == 200, done.text
    unpinned = {send(proxy, "chat", None, text=f"hi {i}").headers["x-llmproxy-deployment"]
                for i in range(10)}  # fmt: skip
    assert "pool-a" not in unpinned
    answer = send(proxy, "chat", "pool-a")
    assert answer.status_code == 200 and answer.headers["x-llmproxy-deployment"] == "pool-a"


@pytest.mark.parametrize("door", DOORS)
def test_a_failing_pin_is_one_attempt_with_no_retry_and_no_fallback(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream, door: str
) -> None:
    other.script(error(500, "pool-b is broken"), key=KEY_B)
    before = upstream_calls(fake, other)
    answer = send(proxy, door, "pool-b")
    assert answer.status_code == 502, answer.text
    assert "pool-b: 500" in answer.text
    grown = {dep: n - before[dep] for dep, n in upstream_calls(fake, other).items()}
    assert grown == {"pool-a": 0, "pool-b": 1, "pool-c": 0, "spare-1": 0}
    if door == "messages":
        assert answer.json()["type"] == "error"
    else:
        assert answer.json()["error"]["code"] == "upstream_error"


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    "given",
    ["nope", "spare-1", "x" * 5000, 'it\'s\t"caf\u00e9"'],
    ids=["unknown", "another-group", "huge", "quotes-tab-latin1"],
)
def test_an_id_not_of_the_group_is_a_400_in_the_doors_shape(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream, door: str, given: str
) -> None:
    before = upstream_calls(fake, other)
    answer = send(proxy, door, given)
    assert answer.status_code == 400, answer.text
    doc = answer.json()
    if door == "messages":
        assert set(doc) == {"type", "error"} and doc["type"] == "error"
        assert doc["error"]["type"] == "invalid_request_error"
    else:
        assert set(doc) == {"error"} and doc["error"]["param"] == PIN
        assert doc["error"]["code"] == "unknown_deployment"
        assert doc["error"]["type"] == "invalid_request_error"
    message = doc["error"]["message"]
    assert PIN in message and "'pool'" in message
    assert len(message) < 400  # cut short
    assert "\t" not in message and "\u00e9" not in message  # escaped
    if given in ("nope", "spare-1"):
        assert repr(given) in message
    if given.startswith("x"):
        assert "5,000 characters" in message
    assert upstream_calls(fake, other) == before


@pytest.mark.parametrize("door", DOORS)
def test_a_virtual_key_may_not_pin(
    proxy: Proxy, fake: FakeUpstream, other: FakeUpstream, door: str
) -> None:
    with proxy.client() as c:
        made = c.post("/key/generate", json={"key_alias": "worker", "models": ["pool"]})
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    assert send(proxy, door, None, key=key).status_code == 200  # the key itself works
    before = upstream_calls(fake, other)
    answer = send(proxy, door, "pool-a", key=key)
    assert answer.status_code == 403, answer.text
    doc = answer.json()
    if door == "messages":
        assert doc["type"] == "error" and doc["error"]["type"] == "permission_error"
    else:
        assert doc["error"]["type"] == "permission_error" and doc["error"]["param"] == PIN
    assert PIN in doc["error"]["message"]
    assert upstream_calls(fake, other) == before


def test_a_proxy_without_a_master_key_honours_the_pin(
    fake: FakeUpstream, other: FakeUpstream, start_proxy: Any
) -> None:
    fake.set_default(reply(ALPHA))
    other.set_default(reply(BETA))
    proxy = start_proxy(pool_config(fake, other))  # loopback, no auth
    for _ in range(5):
        answer = send(proxy, "chat", "pool-c")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-llmproxy-deployment"] == "pool-c"
    assert len(other.calls(key=KEY_C)) == 5


def test_an_unknown_group_is_still_a_404(proxy: Proxy) -> None:
    answer = send(proxy, "chat", "pool-a", model="no-such-group")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"


def test_a_deployment_the_config_disabled_says_why(
    fake: FakeUpstream, other: FakeUpstream, start_proxy: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("PIN_TEST_UNSET_KEY", raising=False)
    config = pool_config(fake, other)
    config["model_list"].append(
        openai_deployment("pool", fake, "os.environ/PIN_TEST_UNSET_KEY", id="pool-off")
    )
    proxy = start_proxy(config, master_key=MASTER_KEY)
    answer = send(proxy, "chat", "pool-off")
    assert answer.status_code == 503, answer.text
    message = answer.json()["error"]["message"]
    assert "pool-off is disabled" in message and "PIN_TEST_UNSET_KEY" in message
    assert fake.requests == [] and other.requests == []
