"""A translated Messages stream sends `ping` events while the upstream is silent, as Anthropic's
own streams do, and none while it is talking; the stream's own events are untouched."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from proxy.http import agent_routes
from tests.conftest import MASTER_KEY, Proxy, openai_deployment
from tests.fakes.upstream import FakeUpstream, stream_stall

BODY = {
    "model": "gpt",
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "Tell me a story"}],
}


@pytest.fixture
def proxy(fake: FakeUpstream, start_proxy: Callable[..., Proxy]) -> Proxy:
    deps = [openai_deployment("gpt", fake, "sk-oai-ping-oooo", model="openai/gpt-4o")]
    return start_proxy({"model_list": deps}, master_key=MASTER_KEY)


def event_names(proxy: Proxy) -> list[str]:
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=proxy.url, timeout=30) as client,
        client.stream("POST", "/v1/messages", json=BODY, headers=headers) as answer,
    ):
        assert answer.status_code == 200
        return [
            line.removeprefix("event: ")
            for line in answer.iter_lines()
            if line.startswith("event: ")
        ]


def test_a_silent_upstream_gets_pings_between_the_events(
    proxy: Proxy, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_routes, "PING_AFTER", 0.2)
    fake.set_default(stream_stall(after=2, seconds=1.5))  # two pieces, silence, then cut
    names = event_names(proxy)
    assert names[0] == "message_start" and names[-1] == "error"  # the cut stream's end
    pings = [i for i, name in enumerate(names) if name == "ping"]
    assert len(pings) >= 3  # about one per 0.2 s of the 1.5 s silence
    first_text = names.index("content_block_delta")
    assert all(i > first_text for i in pings)  # only once the stream started


def test_a_talking_upstream_gets_no_pings(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_routes, "PING_AFTER", 0.2)
    names = event_names(proxy)
    assert "ping" not in names and names[-1] == "message_stop"
