"""`vertex_ai/` end to end: the openai SDK, through the proxy, to the fake Vertex AI, with the
OAuth token fetched from the fake Google token endpoint (the service account's `token_uri`),
which checks the RS256 JWT grant as Google does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.config.loader import build_config
from proxy.errors import ConfigError
from tests.conftest import MASTER_KEY
from tests.fakes.gemini import FakeGemini, service_account
from tests.fakes.openai_wire import embedding_vector
from tests.fakes.upstream import reply

HELLO = [{"role": "user", "content": "Hello there"}]
VERTEX = "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash"
CLAUDE = "/v1/projects/my-proj/locations/europe-west4/publishers/anthropic/models/"
CLAUDE += "claude-sonnet-4-5@20250929"
API_KEY = "AIzaSy-fake-studio-key"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    up = FakeGemini().start()
    try:
        yield up
    finally:
        up.stop()


def vertex(fake: FakeGemini, credentials: Any, dep_id: str = "vx", **params: Any) -> dict[str, Any]:
    return {
        "model_name": "gemini",
        "litellm_params": {
            "model": "vertex_ai/gemini-2.5-flash",
            "vertex_project": "my-proj",
            "vertex_location": "europe-west4",
            "vertex_credentials": credentials,
            "api_base": fake.url,
            **params,
        },
        "model_info": {"id": dep_id},
    }


def start(start_proxy: Any, *entries: dict[str, Any]) -> Any:
    settings = {"num_retries": 1, "cooldown_time": 1}
    config = {"model_list": list(entries), "router_settings": settings}
    return start_proxy(config, master_key=MASTER_KEY)


def action(proxy: Any, name: str, deployment: str) -> dict[str, Any]:
    with proxy.client() as c:
        response = c.post("/llmproxy/actions", json={"action": name, "deployment": deployment})
    response.raise_for_status()
    return dict(response.json())


def test_token_fetched_once_and_sent_as_bearer(fake, start_proxy, tmp_path) -> None:
    account = service_account(fake)
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))
    proxy = start(start_proxy, vertex(fake, str(path)))
    fake.script(reply("Hi from Vertex"), reply("streamed from Vertex"))
    with proxy.openai() as client:
        raw = client.chat.completions.with_raw_response.create(model="gemini", messages=HELLO)
        assert raw.headers["x-llmproxy-provider"] == "vertex_ai"
        assert raw.parse().choices[0].message.content == "Hi from Vertex"
        stream = client.chat.completions.create(model="gemini", messages=HELLO, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed from Vertex"
    grants = fake.issued()
    assert len(grants) == 1  # the token is reused while it is valid
    assert grants[0].client_email == account["client_email"]
    plain, streamed = fake.requests
    assert plain.path == VERTEX + ":generateContent"
    assert streamed.path == VERTEX + ":streamGenerateContent" and streamed.query == "alt=sse"
    assert plain.headers["authorization"] == f"Bearer {grants[0].token}"
    assert "x-goog-api-key" not in plain.headers
    assert plain.body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
    probe = action(proxy, "probe", "vx")  # a fresh token, then a free countTokens
    assert probe["ok"] is True and len(fake.issued()) == 2
    assert fake.requests[-1].path == VERTEX + ":countTokens"


def test_claude_on_vertex(fake, start_proxy) -> None:
    model = "vertex_ai/claude-sonnet-4-5@20250929"
    proxy = start(start_proxy, vertex(fake, service_account(fake), "claude", model=model))
    fake.script(reply("Hi from Claude"), reply("streamed from Claude"))
    with proxy.openai() as client:
        answer = client.chat.completions.create(model="gemini", messages=HELLO, max_tokens=99)
        assert answer.choices[0].message.content == "Hi from Claude"
        assert answer.choices[0].finish_reason == "stop" and answer.usage.prompt_tokens == 2
        stream = client.chat.completions.create(model="gemini", messages=HELLO, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed from Claude"
    plain, streamed = fake.requests
    assert plain.path == CLAUDE + ":rawPredict" and streamed.path == CLAUDE + ":streamRawPredict"
    assert plain.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in plain.body
    assert plain.body["max_tokens"] == 99 and streamed.body["stream"] is True
    assert plain.headers["authorization"] == f"Bearer {fake.issued()[0].token}"
    assert action(proxy, "probe", "claude")["ok"] is True
    assert fake.requests[-1].path.endswith("/publishers/anthropic/models/count-tokens:rawPredict")


def test_embeddings_through_predict(fake, start_proxy) -> None:
    entry = vertex(fake, service_account(fake), model="vertex_ai/gemini-embedding-001")
    proxy = start(start_proxy, entry)
    with proxy.openai() as client:
        vectors = client.embeddings.create(model="gemini", input=["one two", "three"])
        short = client.embeddings.create(model="gemini", input="x", dimensions=8)
    assert vectors.data[1].embedding == pytest.approx(embedding_vector("three"), abs=1e-6)
    assert vectors.usage.prompt_tokens == 3  # Vertex's own token counts
    assert len(short.data) == 1
    first, second = fake.requests
    assert first.path.endswith("/publishers/google/models/gemini-embedding-001:predict")
    assert first.body == {"instances": [{"content": "one two"}, {"content": "three"}]}
    assert second.body["parameters"] == {"outputDimensionality": 8}


def test_token_refreshed_before_it_expires(fake, start_proxy) -> None:
    fake.token_lifetime = 60  # inside google-auth's refresh margin: every request refreshes
    proxy = start(start_proxy, vertex(fake, json.dumps(service_account(fake))))
    with proxy.openai() as client:
        for _ in range(2):
            assert client.chat.completions.create(model="gemini", messages=HELLO).choices
            fake.revoked.update(g.token for g in fake.issued())  # an old token is refused
    tokens = [g.token for g in fake.issued()]
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {t}" for t in tokens]


def test_a_token_vertex_refuses_is_dropped(fake, start_proxy) -> None:
    proxy = start(start_proxy, vertex(fake, service_account(fake)))
    with proxy.openai() as client:
        assert client.chat.completions.create(model="gemini", messages=HELLO).choices
        fake.revoked.add(fake.issued()[0].token)  # still valid by its expiry, but refused
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="gemini", messages=HELLO)
        assert proxy.deployment("vx")["health"] == "key_rejected"
        action(proxy, "reset", "vx")
        assert client.chat.completions.create(model="gemini", messages=HELLO).choices
    assert len(fake.issued()) == 2
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.issued()[1].token}"


def test_refused_credentials_move_on_to_the_next_deployment(fake, start_proxy) -> None:
    stranger = service_account(fake, "stranger@other.iam.gserviceaccount.com")
    del fake.service_accounts[stranger["client_email"]]  # Google does not know this key
    studio = {
        "model_name": "gemini",
        "litellm_params": {"model": "gemini/gemini-2.5-flash", "api_base": fake.url,
                           "api_key": API_KEY, "order": 2},
        "model_info": {"id": "studio"},
    }  # fmt: skip
    proxy = start(start_proxy, vertex(fake, stranger, order=1), studio)
    with proxy.openai() as client:
        raw = client.chat.completions.with_raw_response.create(model="gemini", messages=HELLO)
    assert raw.headers["x-llmproxy-deployment"] == "studio"
    assert fake.issued() == [] and [r.key for r in fake.requests] == [API_KEY]
    first = proxy.deployment("vx")
    assert first["health"] == "key_rejected"
    assert "Invalid JWT Signature" in first["last_error"]
    probe = action(proxy, "probe", "vx")
    assert probe["ok"] is False and "Invalid JWT Signature" in probe["detail"]
    assert action(proxy, "probe", "studio")["ok"] is True


def test_project_from_the_credentials_and_disabled_without_one(fake, monkeypatch) -> None:
    for name in ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    account = service_account(fake)
    entry = vertex(fake, account)
    del entry["litellm_params"]["vertex_project"]
    (dep,) = build_config({"model_list": [entry]}).deployments
    assert dep.provider_params["vertex_project"] == "fake-project"
    assert dep.disabled_reason is None
    entry["litellm_params"]["vertex_credentials"] = {**account, "project_id": None}
    (dep,) = build_config({"model_list": [entry]}).deployments
    assert dep.disabled_reason and "project missing" in dep.disabled_reason
    assert account["private_key"] not in repr(dep)


def test_a_config_needing_google_auth_without_it_is_a_clear_error(fake, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as caught:
        build_config({"model_list": [vertex(fake, "{}")]}, path=Path("config.yaml"))
    message = str(caught.value)
    assert "vertex_ai/" in message and "pip install 'llmproxy-tui[google]'" in message
