"""Request bodies on demand (proxy/store/bodies.py): redacted, bounded in size, count and age
(an injected clock; no sockets)."""

from __future__ import annotations

import orjson
import pytest

from proxy.secret import Scrubber, Secret
from proxy.store.bodies import BodyStore

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(
    *, max_requests: int = 500, max_bytes: int = 64 * 1024, max_age: float = 3600.0
) -> tuple[BodyStore, Clock]:
    clock = Clock()
    scrub = Scrubber([Secret(UPSTREAM_KEY)]).text
    bodies = BodyStore(
        scrub, clock=clock, max_requests=max_requests, max_bytes=max_bytes, max_age=max_age
    )
    return bodies, clock


def test_nothing_is_held_until_a_body_is_put() -> None:
    bodies, _ = store()
    assert len(bodies) == 0
    assert bodies.get("req-1") is None


def test_three_parts_per_request_with_key_fields_dropped_and_keys_scrubbed() -> None:
    bodies, _ = store()
    client = {
        "model": "claude",
        "api_key": "sk-client-own-key-abcdef",
        "metadata": {"Authorization": "Bearer sk-nested-abcdef123456", "user": "u1"},
        "messages": [{"role": "user", "content": f"my key is {UPSTREAM_KEY}"}],
    }
    bodies.put("req-1", "client", client)
    upstream = orjson.dumps({"model": "gpt-4o", "x-api-key": "sk-x-key-0000000000"})
    bodies.put_upstream("req-1", "https://up.example/v1/chat?key=" + UPSTREAM_KEY, upstream)
    bodies.put("req-1", "answer", b'data: {"auth": "Bearer sk-sse-bearer-99998888"}\n\n')
    doc = bodies.get("req-1")
    assert doc is not None
    everything = orjson.dumps(doc).decode()
    for secret in (
        UPSTREAM_KEY,
        "sk-client-own-key-abcdef",
        "sk-nested-abcdef123456",
        "sk-x-key-0000000000",
        "sk-sse-bearer-99998888",
    ):
        assert secret not in everything
    assert "…6789" in doc["client"]  # the configured key, redacted to its last 4
    assert orjson.loads(doc["client"])["metadata"] == {"user": "u1"}
    assert orjson.loads(doc["upstream"]) == {"model": "gpt-4o"}
    assert "key=***" in doc["upstream_url"]
    assert doc["answer"].startswith("data: ")
    assert doc["truncated"] == {"client": False, "upstream": False, "answer": False}


def test_a_long_body_is_cut_and_notes_its_size() -> None:
    bodies, _ = store(max_bytes=1024)
    body = {"messages": [{"role": "user", "content": "x" * 5000}]}
    bodies.put("req-1", "client", body)
    doc = bodies.get("req-1")
    assert doc is not None
    assert doc["truncated"]["client"] is True
    assert doc["sizes"]["client"] == len(orjson.dumps(body))
    assert len(doc["client"].encode()) < 1024 + 100  # the cut, plus its note
    assert f"the body had {doc['sizes']['client']}" in doc["client"]


def test_a_key_across_the_cut_is_scrubbed_before_cutting() -> None:
    bodies, _ = store(max_bytes=100)
    text = "y" * 90 + UPSTREAM_KEY
    bodies.put("req-1", "answer", text)
    doc = bodies.get("req-1")
    assert doc is not None
    assert UPSTREAM_KEY[:10] not in doc["answer"]


def test_the_oldest_requests_go_past_the_count() -> None:
    bodies, _ = store(max_requests=3)
    for i in range(5):
        bodies.put(f"req-{i}", "client", {"n": i})
    assert len(bodies) == 3
    assert bodies.get("req-0") is None and bodies.get("req-1") is None
    assert bodies.get("req-4") is not None


def test_requests_older_than_the_age_bound_are_dropped() -> None:
    bodies, clock = store(max_age=60.0)
    bodies.put("old", "client", {"n": 1})
    clock.now += 30
    bodies.put("new", "client", {"n": 2})
    clock.now += 31
    assert bodies.get("old") is None
    assert bodies.get("new") is not None
    clock.now += 30
    assert len(bodies) == 0


def test_an_unknown_part_is_refused() -> None:
    bodies, _ = store()
    with pytest.raises(ValueError):
        bodies.put("req-1", "headers", {"authorization": "x"})
