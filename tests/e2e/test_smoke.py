"""A first end-to-end pass: the openai SDK through an in-process proxy to the fake upstream."""

from __future__ import annotations

from tests.conftest import MASTER_KEY, openai_deployment


def test_openai_sdk_plain_and_stream(fake, start_proxy) -> None:
    proxy = start_proxy(
        {"model_list": [openai_deployment("gpt-4", fake, "sk-upstream-aaaa1111")]},
        master_key=MASTER_KEY,
    )
    client = proxy.openai()
    answer = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=[{"role": "user", "content": "Hello there"}]
    )
    parsed = answer.parse()
    assert parsed.choices[0].message.content
    assert answer.headers["x-llmproxy-deployment"] == "gpt-4"
    assert fake.requests[-1].body["model"] == "gpt-4o"
    assert fake.requests[-1].key == "sk-upstream-aaaa1111"
    chunks = list(
        client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "Hello there"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == parsed.choices[0].message.content
    assert all(c.usage is None for c in chunks)  # not asked: the usage chunk is stripped
