"""Azure OpenAI (`azure/`) and Azure AI (`azure_ai/`) end to end: the openai SDK -> proxy ->
a fake Azure resource that checks the URL, api-version and key like Azure does.

Covers plain, streamed and tool-calling answers, the v1 API, Entra bearer tokens, settings
from the environment, an old api-version's streams, a content-filter refusal reaching the
client as a clear 400, and a throttled deployment failing over to the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.azure import FILTER_TRIGGER, FakeAzure
from tests.fakes.upstream import DEFAULT_CONTENT, reply

KEY_A = "azure-key-aaaa-0123456789abcdef"
KEY_B = "azure-key-bbbb-fedcba9876543210"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-token"
HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    fake = FakeAzure(deployments=("gpt4o-prod", "gpt4o-backup"), keys=(KEY_A, KEY_B),
                     tokens=(TOKEN,)).start()  # fmt: skip
    try:
        yield fake
    finally:
        fake.stop()


def entry(group: str, azure: FakeAzure, dep_id: str, **params: Any) -> dict[str, Any]:
    litellm = {"model": "azure/gpt4o-prod", "api_base": azure.url, "api_key": KEY_A,
               "api_version": "2024-10-21", **params}  # fmt: skip
    return {"model_name": group, "litellm_params": litellm, "model_info": {"id": dep_id}}


def serve(start_proxy, *entries: dict[str, Any]):
    return start_proxy({"model_list": list(entries)}, master_key=MASTER_KEY)


def test_plain_answer_goes_to_the_deployment_url_with_the_api_key(start_proxy, azure) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1"))
    raw = proxy.openai().chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    answer = raw.parse()
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert raw.headers["x-llmproxy-provider"] == "azure"
    (call,) = azure.azure_calls
    assert call.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert call.api_version == "2024-10-21"
    assert (call.api_key, call.bearer) == (KEY_A, None)  # the key never rides as a bearer


@pytest.mark.parametrize("version", ["2024-10-21", "2024-02-01"])
def test_streamed_answer_arrives_whole_on_old_and_new_api_versions(
    start_proxy, azure, version
) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1", api_version=version))
    stream = proxy.openai().chat.completions.create(model="gpt", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == DEFAULT_CONTENT
    sent = azure.requests[-1].body
    # Before 2024-09-01 Azure refuses stream_options, so it is only sent from then on.
    assert ("stream_options" in sent) == (version >= "2024-09-01")


def test_tool_call_reaches_the_sdk(start_proxy, azure) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1"))
    azure.script(reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    answer = proxy.openai().chat.completions.create(model="gpt", messages=HELLO, tools=TOOLS)
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert azure.requests[-1].body["tools"] == TOOLS


def test_filtered_answer_keeps_azures_finish_reason(start_proxy, azure) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1"))
    azure.script(reply(content="", finish_reason="content_filter"))
    answer = proxy.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert answer.choices[0].finish_reason == "content_filter"


def test_content_filter_refusal_is_a_clear_400_and_not_retried(start_proxy, azure) -> None:
    proxy = serve(
        start_proxy,
        entry("gpt", azure, "az-1"),
        entry("gpt", azure, "az-2", model="azure/gpt4o-backup", api_key=KEY_B),
    )
    prompt = [{"role": "user", "content": f"Tell me something {FILTER_TRIGGER}"}]
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.openai().chat.completions.create(model="gpt", messages=prompt)
    err = caught.value
    assert err.status_code == 400
    assert err.code == "content_filter"
    assert "content management policy" in err.message
    assert "filtered: violence medium" in err.message
    assert len(azure.azure_calls) == 1  # the same prompt would be refused anywhere


def test_throttled_deployment_fails_over_to_the_next(start_proxy, azure) -> None:
    azure.throttled[KEY_A] = 7
    proxy = serve(
        start_proxy,
        entry("gpt", azure, "az-1", order=1),
        entry("gpt", azure, "az-2", model="azure/gpt4o-backup", api_key=KEY_B, order=2),
    )
    raw = proxy.openai().chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    assert raw.parse().choices[0].message.content == DEFAULT_CONTENT
    assert raw.headers["x-llmproxy-deployment"] == "az-2"
    assert [c.api_key for c in azure.azure_calls] == [KEY_A, KEY_B]
    assert azure.azure_calls[1].path == "/openai/deployments/gpt4o-backup/chat/completions"
    assert proxy.deployment("az-1")["last_error"]


def test_every_throttled_deployment_is_a_429_with_retry_after(start_proxy, azure) -> None:
    azure.throttled[KEY_A] = 7
    config = {"model_list": [entry("gpt", azure, "az-1")], "router_settings": {"num_retries": 0}}
    proxy = start_proxy(config, master_key=MASTER_KEY)
    with proxy.client() as client:
        answer = client.post("/v1/chat/completions", json={"model": "gpt", "messages": HELLO})
    assert answer.status_code == 429
    assert float(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("version", "path", "query"),
    [("preview", "/openai/v1/chat/completions", "preview"),
     ("v1", "/openai/v1/chat/completions", None)],
)  # fmt: skip
def test_v1_api_versions_use_the_v1_path(start_proxy, azure, version, path, query) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1", api_version=version))
    answer = proxy.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    (call,) = azure.azure_calls
    assert (call.path, call.api_version) == (path, query)
    assert azure.requests[-1].body["model"] == "gpt4o-prod"  # v1 names the deployment here


def test_entra_token_is_sent_as_a_bearer(start_proxy, azure) -> None:
    params = {"model": "azure/gpt4o-prod", "api_base": azure.url, "azure_ad_token": TOKEN}
    proxy = serve(start_proxy, {"model_name": "gpt", "litellm_params": params})
    answer = proxy.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    (call,) = azure.azure_calls
    assert (call.api_key, call.bearer) == (None, TOKEN)
    assert call.api_version == "2024-10-21"  # the default when none is configured


def test_base_key_and_version_from_the_environment(start_proxy, azure, monkeypatch) -> None:
    monkeypatch.setenv("AZURE_API_BASE", azure.url + "/")
    monkeypatch.setenv("AZURE_API_KEY", KEY_B)
    monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01-preview")
    proxy = serve(
        start_proxy, {"model_name": "gpt", "litellm_params": {"model": "azure/gpt4o-backup"}}
    )
    answer = proxy.openai().chat.completions.create(model="gpt", messages=HELLO)
    assert answer.choices[0].message.content == DEFAULT_CONTENT
    (call,) = azure.azure_calls
    assert call.path == "/openai/deployments/gpt4o-backup/chat/completions"
    assert (call.api_key, call.api_version) == (KEY_B, "2025-01-01-preview")


def test_azure_ai_model_inference(start_proxy, azure) -> None:
    params = {"model": "azure_ai/Mistral-Large-2411", "api_base": azure.url + "/models",
              "api_key": KEY_B}  # fmt: skip
    proxy = serve(start_proxy, {"model_name": "mistral", "litellm_params": params})
    stream = proxy.openai().chat.completions.create(model="mistral", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == DEFAULT_CONTENT
    (call,) = azure.azure_calls
    assert (call.path, call.api_version) == ("/models/chat/completions", "2024-05-01-preview")
    assert call.api_key == KEY_B
    assert azure.requests[-1].body["model"] == "Mistral-Large-2411"


def test_a_wrong_key_is_refused_by_azure_and_reported(start_proxy, azure) -> None:
    proxy = serve(start_proxy, entry("gpt", azure, "az-1", api_key="not-a-key-0000"))
    with proxy.client() as client:
        answer = client.post("/v1/chat/completions", json={"model": "gpt", "messages": HELLO})
    assert answer.status_code == 502
    assert "az-1: 401 key rejected" in answer.json()["error"]["message"]
    assert azure.azure_calls[0].api_key == "not-a-key-0000"
    assert azure.requests == []  # nothing reached the model


def test_embeddings_go_to_the_deployment_url(start_proxy, azure) -> None:
    proxy = serve(start_proxy, entry("embed", azure, "az-e", model="azure/gpt4o-backup"))
    result = proxy.openai().embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2
    (call,) = azure.azure_calls
    assert (call.path, call.api_key) == ("/openai/deployments/gpt4o-backup/embeddings", KEY_A)
