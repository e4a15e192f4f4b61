"""`POST /v1/messages/count_tokens`: Anthropic's own count when the group can ask Anthropic,
an estimate from the body otherwise; never a 5xx."""

from __future__ import annotations

import anthropic

from tests.conftest import anthropic_deployment, openai_deployment

MASTER = "sk-master-count-tokens-0001"
KEY = "sk-ant-test-count-tokens-0001"
BODY = {
    "model": "g",
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "count these five words please"}],
}


def test_an_anthropic_group_gets_anthropics_own_count(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [anthropic_deployment("g", fake, KEY)]}, master_key=MASTER)
    client = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER, max_retries=0)
    counted = client.messages.count_tokens(**BODY)  # type: ignore[arg-type]
    (seen,) = fake.calls(path="/v1/messages/count_tokens")
    assert seen.body["model"] == "claude-sonnet-4-20250514"  # only model replaced
    assert seen.body["messages"] == BODY["messages"]
    assert counted.input_tokens == 8  # the fake's word count, not the proxy's estimate
    client.close()


def test_another_provider_gets_an_estimate_and_nothing_is_sent(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("g", fake, KEY)]}, master_key=MASTER)
    client = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER, max_retries=0)
    counted = client.messages.count_tokens(**BODY)  # type: ignore[arg-type]
    assert counted.input_tokens == len("You are terse.count these five words please") // 4
    assert fake.requests == []
    client.close()


def test_an_unknown_model_is_404_and_a_bad_body_400_in_anthropics_shape(fake, start_proxy) -> None:
    proxy = start_proxy({"model_list": [openai_deployment("g", fake, KEY)]}, master_key=MASTER)
    client = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER, max_retries=0)
    try:
        client.messages.count_tokens(**{**BODY, "model": "nope"})  # type: ignore[arg-type]
    except anthropic.NotFoundError as err:
        assert err.status_code == 404
    else:
        raise AssertionError("an unknown model was counted")
    with proxy.client() as raw:
        r = raw.post("/v1/messages/count_tokens", json={"model": "g", "messages": "x"})
    assert r.status_code == 400 and r.json()["type"] == "error"
    client.close()
