"""The seed user guide's examples, as written there, against the real proxy.

curl (the real binary), the Python openai SDK and the official `openai` npm package under Node
each send the guide's exact request; only the port differs (a free one instead of 4000). Then
`config.example.yaml` itself, with keys in a `.env` beside it and every `api_base` pointed at the
fake upstream, serves each of its groups through the SDK, plain and streamed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import openai_deployment
from tests.fakes.upstream import reply

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
UPSTREAM_KEY = "sk-upstream-seed-0123456789-abcd"
GUIDE_MASTER_KEY = "YOUR_LITELLM_MASTER_KEY"  # the guide's placeholder, used literally

# The "Example cURL Request" block of the guide, byte for byte but for the port.
CURL_EXAMPLE = """curl http://localhost:4000/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $LITELLM_MASTER_KEY" \\
  -d '{
    "model": "claude-opus",
    "messages": [{"role": "user", "content": "Hello!"}]
  }'
"""

# The guide's "Python" block, byte for byte but for the port.
PYTHON_EXAMPLE = """import openai

client = openai.OpenAI(
    base_url="http://localhost:4000/v1",
    api_key="YOUR_LITELLM_MASTER_KEY"
)

response = client.chat.completions.create(
    model="claude-opus",
    messages=[{"role": "user", "content": "Hello!"}]
)

print(response.choices[0].message.content)
"""


def assert_js_installed() -> None:
    """Fails unless tests/js has its packages: a test never installs them (two parallel
    `npm install`s in one folder would collide); .ci/run does, once, before pytest."""
    if not (JS_DIR / "node_modules" / "openai").is_dir():
        pytest.fail(
            "tests/js/node_modules/openai is missing: run `npm install --prefix tests/js` "
            "(CI runs it before pytest)",
            pytrace=False,
        )


def seed_proxy(fake, start_proxy):
    fake.script(reply("Hi from claude-opus via the proxy!"))
    return start_proxy(
        {"model_list": [openai_deployment("claude-opus", fake, UPSTREAM_KEY)]},
        master_key=GUIDE_MASTER_KEY,
    )


def test_curl_example(fake, start_proxy) -> None:
    proxy = seed_proxy(fake, start_proxy)
    assert shutil.which("curl"), "curl is needed for the seed guide's example"
    command = CURL_EXAMPLE.replace(":4000", f":{proxy.server.port}")
    env = {**os.environ, "LITELLM_MASTER_KEY": GUIDE_MASTER_KEY}
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    body = result.stdout
    answer = json.loads(body)  # an error would be {"error": ...}
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Hi from claude-opus via the proxy!"
    seen = fake.requests[-1]
    assert seen.key == UPSTREAM_KEY
    assert seen.body["messages"] == [{"role": "user", "content": "Hello!"}]


def test_python_example(fake, start_proxy) -> None:
    proxy = seed_proxy(fake, start_proxy)
    code = PYTHON_EXAMPLE.replace(":4000", f":{proxy.server.port}")
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": "__seed__"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "seed_example.py", "exec"), namespace)  # noqa: S102
    namespace["client"].close()  # type: ignore[attr-defined]  # the guide never closes it
    assert out.getvalue() == "Hi from claude-opus via the proxy!\n"
    assert fake.requests[-1].key == UPSTREAM_KEY


def test_javascript_example_with_the_official_openai_package(fake, start_proxy) -> None:
    proxy = seed_proxy(fake, start_proxy)
    fake.script(reply("Streamed hello from the fake"))
    node = shutil.which("node")
    assert node, "Node.js 20+ is required for the JavaScript example (tests/js)"
    assert_js_installed()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    assert int(version.stdout.strip().lstrip("v").split(".")[0]) >= 20
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": GUIDE_MASTER_KEY,
        "LLMPROXY_BASE_URL": proxy.base,
        "LLMPROXY_MODEL": "claude-opus",
    }
    result = subprocess.run(
        [node, str(JS_DIR / "seed_example.mjs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=JS_DIR,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Hi from claude-opus via the proxy!",
        "STREAMED: Streamed hello from the fake",
    ]
    assert [s.key for s in fake.requests] == [UPSTREAM_KEY, UPSTREAM_KEY]
    assert fake.requests[-1].body["stream"] is True


# ---- config.example.yaml, served whole ----

OPENAI_GROUPS = {
    "gpt-4": ("gpt-4o", {"OPENAI_API_KEY_1", "OPENAI_API_KEY_2"}),
    "openrouter/claude-opus": ("anthropic/claude-opus-4", {"OPENROUTER_API_KEY"}),
    "openrouter/gpt-4": ("openai/gpt-4o", {"OPENROUTER_API_KEY"}),
    "groq/llama": ("llama-3.3-70b-versatile", {"GROQ_API_KEY"}),
    "deepseek": ("deepseek-chat", {"DEEPSEEK_API_KEY"}),
}
ANTHROPIC_GROUPS = {
    "claude-opus": ("claude-opus-4-20250514", {"ANTHROPIC_API_KEY_1", "ANTHROPIC_API_KEY_2"}),
    "claude-sonnet": ("claude-sonnet-4-20250514", {"ANTHROPIC_API_KEY_1"}),
}


def example_with_fake(fake, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    doc = yaml.safe_load((REPO / "config.example.yaml").read_text())
    for entry in doc["model_list"]:
        model = entry["litellm_params"]["model"]
        anthropic = model.startswith(("claude", "anthropic/"))
        entry["litellm_params"]["api_base"] = fake.anthropic_base if anthropic else fake.openai_base
    conf_dir = tmp_path / "litellm"
    conf_dir.mkdir()
    path = conf_dir / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    names = {
        var for _, vars_ in [*OPENAI_GROUPS.values(), *ANTHROPIC_GROUPS.values()] for var in vars_
    }
    keys = {name: f"sk-{name.lower().replace('_', '-')}-secret-0123456789" for name in names}
    keys["LITELLM_MASTER_KEY"] = "sk-litellm-master-from-dotenv-0001"
    (conf_dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in sorted(keys.items())))
    return path, keys


def test_example_config_serves_every_group(fake, run_cli, tmp_path: Path, request) -> None:
    path, keys = example_with_fake(fake, tmp_path)
    handle = run_cli("--config", str(path))
    master = keys["LITELLM_MASTER_KEY"]
    assert httpx.get(handle.url + "/v1/models").status_code == 401  # the .env's master key
    client = openai.OpenAI(base_url=handle.url + "/v1", api_key=master, max_retries=0)
    request.addfinalizer(client.close)
    listed = {m.id for m in client.models.list()}
    assert listed == set(OPENAI_GROUPS) | set(ANTHROPIC_GROUPS)
    for group, (upstream, key_vars) in {**OPENAI_GROUPS, **ANTHROPIC_GROUPS}.items():
        allowed = {keys[v] for v in key_vars}
        for stream in (False, True):
            question = [{"role": "user", "content": f"Hello {group} stream={stream}"}]
            if stream:
                chunks = list(
                    client.chat.completions.create(model=group, messages=question, stream=True)
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=group, messages=question
                )
                text = raw.parse().choices[0].message.content or ""
                assert raw.headers["x-llmproxy-cache"] == "miss"  # cache: true in the example
                assert "x-llmproxy-fallback" not in raw.headers
            assert text == "Hello! This is the fake upstream.", (group, stream)
            seen = fake.requests[-1]
            assert seen.key in allowed, (group, seen.key)
            assert seen.body["model"] == upstream, group
            if group in ANTHROPIC_GROUPS:
                assert seen.path == "/v1/messages"
                assert "x-api-key" in seen.headers
            else:
                assert seen.path == "/v1/chat/completions"
    assert handle.terminate() == 0
    log = handle.output()
    for secret in keys.values():
        assert secret not in log


def test_javascript_sdk_through_the_anthropic_groups_with_tools(fake, run_cli, tmp_path) -> None:
    """Issue 4: claude-opus and claude-sonnet of config.example.yaml through the official
    openai npm package, streamed and not, with a full tool round trip, against the strict
    fake Anthropic upstream."""
    path, keys = example_with_fake(fake, tmp_path)
    handle = run_cli("--config", str(path))
    node = shutil.which("node")
    assert node, "Node.js 20+ is required (tests/js)"
    assert_js_installed()
    weather = {"name": "get_weather", "arguments": {"city": "Paris"}}
    for group in ANTHROPIC_GROUPS:
        fake.reset()
        fake.script(
            reply("Hi from Claude."),
            reply("Streamed hi."),
            reply(None, tool_calls=[weather]),
            reply("It is 18 C and sunny in Paris."),
            reply(None, tool_calls=[weather]),
        )
        env = {**os.environ, "LITELLM_MASTER_KEY": keys["LITELLM_MASTER_KEY"],
               "LLMPROXY_BASE_URL": handle.url + "/v1", "LLMPROXY_MODEL": group}  # fmt: skip
        result = subprocess.run([node, str(JS_DIR / "anthropic_tools.mjs")], capture_output=True,
                                text=True, env=env, timeout=60, cwd=JS_DIR)  # fmt: skip
        assert result.returncode == 0, result.stderr
        steps = {s["step"]: s for s in map(json.loads, result.stdout.splitlines())}
        assert steps["plain"]["text"] == "Hi from Claude."
        assert steps["plain"]["finish"] == "stop" and steps["plain"]["usage"] > 0
        assert steps["stream"]["text"] == "Streamed hi."
        assert steps["tool_call"]["name"] == "get_weather"
        assert steps["tool_call"]["args"] == {"city": "Paris"}
        assert steps["tool_call"]["finish"] == "tool_calls"
        assert steps["tool_answer"]["text"] == "It is 18 C and sunny in Paris."
        assert steps["tool_call_stream"] == {"step": "tool_call_stream", "name": "get_weather",
                                             "args": {"city": "Paris"}}  # fmt: skip
        sent = [s for s in fake.requests if s.path == "/v1/messages"]
        assert len(sent) == 5  # the strict fake accepted every translated request
        assert sent[4].body["stream"] is True and sent[4].body["tools"]
        follow_up = sent[3].body["messages"]
        assert follow_up[1]["content"][0]["type"] == "tool_use"
        assert follow_up[2]["content"][0]["type"] == "tool_result"
        assert follow_up[2]["content"][0]["tool_use_id"] == follow_up[1]["content"][0]["id"]
