"""LiteLLM configs as people have them: the documentation's examples through `--check`, and
each drop-in rule on its own (vendor prefixes, unknown prefixes, `*`, include, cache and Redis
spellings, default params, ssl_verify, allowed_ips, retry and allowed-fails policies)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml

from proxy.config.allowed_ips import client_allowed
from proxy.config.catalog import PROVIDERS
from proxy.config.loader import build_config, load_config
from proxy.config.types import Deployment
from proxy.errors import ConfigError, UpstreamError
from proxy.providers.anthropic.request import build_body
from proxy.providers.defaults import drops_params, with_defaults, with_native_defaults
from proxy.routing.policies import allowed_fails_for, error_kind
from proxy.routing.transport import tls_rules
from tests.unit.parts import chat, openai_dep
from tests.unit.scripted import error
from tui.cli import main

CORPUS = Path(__file__).parent.parent / "fixtures" / "litellm_configs"
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider key of the machine's leaks in; no stray .env is read."""
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_TOKEN", "_API_BASE")) or name.startswith(
            ("LLMPROXY_", "LITELLM_", "CLOUDFLARE_", "REDIS_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def entry(group: str, model: str, **params: object) -> dict[str, object]:
    return {"model_name": group, "litellm_params": {"model": model, **params}}


def one(model: str, **params: object) -> Deployment:
    (dep,) = build_config({"model_list": [entry("g", model, **params)]}).deployments
    return dep


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["--check", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


# ---- the corpus through --check ----

CORPUS_EXPECTS = {
    "quickstart.yaml": ["group vllm-models", "openai/facebook/opt-125m at http://0.0.0.0:4000/v1"],
    "model_specific_params.yaml": [
        "openai/gpt-4o at https://api.openai.com/v1",
        "defaults temperature=0.2",
        "mistral-7b: ollama/mistral at http://localhost:11434/v1",
    ],
    "ollama_chat.yaml": ["llama3.1: ollama_chat/llama3.1 at http://localhost:11434/v1", "; ok"],
    "openai_compatible_vendors.yaml": [
        "nvidia_nim/meta/llama3-70b-instruct at https://integrate.api.nvidia.com/v1",
        "github/llama3-8b-8192 at https://models.inference.ai.azure.com",
        "environment variable CLOUDFLARE_ACCOUNT_ID is not set",
        "huggingface/deepseek-ai/DeepSeek-R1:together at https://router.huggingface.co/v1",
        "sambanova/Meta-Llama-3.1-8B-Instruct at https://api.sambanova.ai/v1",
        "nebius/Qwen/Qwen3-235B-A22B at https://api.studio.nebius.ai/v1",
        "dashscope/qwen-turbo at https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "moonshot/moonshot-v1-8k at https://api.moonshot.ai/v1",
        "environment variable MOONSHOT_API_KEY is not set",
    ],
    "openai_like.yaml": [
        "my-like-model: openai_like/my-model at http://localhost:8000/v1",
        "my-custom-model: openai/my-model at http://localhost:8000/v1",
    ],
    "wildcard_routing.yaml": ["group groq/*", "groq/* at https://api.groq.com/openai/v1"],
    "caching_redis_semantic.yaml": [
        "cache: redis, ttl 3600s",
        "'redis-semantic' is not served; the exact-match Redis cache is used instead",
        "ignored, no effect on serving: litellm_settings.set_verbose",
    ],
    "caching_qdrant_semantic.yaml": [
        "cache: local",
        "'qdrant-semantic' is not served; the exact-match in-memory cache is used instead",
    ],
    "caching_redis_url.yaml": ["at redis://:***@cache.internal:6380/0"],
    "reliability.yaml": ["order 0; ok", "retry_policy: AuthenticationErrorRetries 3"],
    "drop_params.yaml": ["never sends response_format; drop_params true; ok"],
    "ssl_verify.yaml": ["TLS certificate NOT checked"],
    "ip_address.yaml": ["allowed_ips: 127.0.0.1/32, 10.0.0.0/8"],
    "include/parent_config.yaml": [
        "group gpt-4o",
        "group fake-anthropic-endpoint",
        "litellm_settings.callbacks",
    ],
}


def test_every_corpus_file_is_checked_and_has_its_source() -> None:
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml")}
    checked = set(CORPUS_EXPECTS) | {"custom_auth.yaml", "include/model_config.yaml"}
    assert files == checked
    sources = (CORPUS / "SOURCES.md").read_text()
    for name in files:
        assert f"`{name}`" in sources, name
    assert "https://docs.litellm.ai/" in sources


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTS))
def test_litellm_example_passes_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("NVIDIA_NIM_API_KEY", "nvapi-secret-value-9876")
    code, out = check(capsys, CORPUS / name)
    assert code == 0, out
    for expected in CORPUS_EXPECTS[name]:
        assert expected in out, (expected, out)
    for secret in ("nvapi-secret-value-9876", "hunter2secret", "fake-key-primary", "sk-123"):
        assert secret not in out


def test_custom_auth_is_a_config_error_that_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, CORPUS / "custom_auth.yaml")
    assert code == 2
    assert "general_settings.custom_auth" in out and "cannot run" in out
    assert "Traceback" not in out


# ---- vendors as data ----


@pytest.mark.parametrize(
    ("model", "provider", "upstream", "base"),
    [
        ("ollama_chat/llama3.1", "ollama_chat", "llama3.1", "http://localhost:11434/v1"),
        ("nvidia_nim/meta/llama3-8b", "nvidia_nim", "meta/llama3-8b", None),
        ("github/gpt-4o", "github", "gpt-4o", "https://models.inference.ai.azure.com"),
        ("zhipu/glm-4", "zhipu", "glm-4", "https://open.bigmodel.cn/api/paas/v4"),
        ("sambanova/Llama-4", "sambanova", "Llama-4", "https://api.sambanova.ai/v1"),
        ("moonshot/kimi-k2", "moonshot", "kimi-k2", "https://api.moonshot.ai/v1"),
    ],
)
def test_vendor_prefix_resolves_to_its_default_base(
    model: str, provider: str, upstream: str, base: str | None
) -> None:
    dep = one(model, api_key=KEY)
    assert (dep.provider, dep.wire, dep.model) == (provider, "openai", upstream)
    assert dep.api_base == (base or PROVIDERS[provider].default_base)
    assert dep.disabled_reason is None


def test_ollama_chat_api_base_gets_v1() -> None:
    assert one("ollama_chat/qwen3", api_base="http://gpu-box:11434/").api_base == (
        "http://gpu-box:11434/v1"
    )


def test_cloudflare_base_takes_the_account_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acc123")
    dep = one("cloudflare/@cf/meta/llama-3.1-8b-instruct", api_key=KEY)
    assert dep.api_base == "https://api.cloudflare.com/client/v4/accounts/acc123/ai/v1"
    assert dep.model == "@cf/meta/llama-3.1-8b-instruct"


def test_the_key_is_read_from_the_vendors_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_API_KEY", "hf-secret-abcdef")
    dep = one("huggingface/meta-llama/Llama-3.3-70B-Instruct")
    assert dep.key is not None and dep.key.reveal() == "hf-secret-abcdef"
    assert dep.key_env == "HUGGINGFACE_API_KEY"


def test_huggingface_provider_routing_names_as_the_router_takes_them() -> None:
    assert one("huggingface/together/deepseek-ai/DeepSeek-R1", api_key=KEY).model == (
        "deepseek-ai/DeepSeek-R1:together"
    )
    assert one("huggingface/meta-llama/Llama-3.3-70B-Instruct", api_key=KEY).model == (
        "meta-llama/Llama-3.3-70B-Instruct"
    )


def test_openai_like_without_api_base_is_disabled_not_sent_anywhere() -> None:
    dep = one("openai_like/my-model")
    assert dep.disabled_reason is not None and "api_base missing" in dep.disabled_reason


def test_custom_llm_provider_names_the_provider() -> None:
    dep = one("my-org/my-model", custom_llm_provider="openai_like", api_base="http://h:1/v1")
    assert (dep.provider, dep.model, dep.api_base) == (
        "openai_like",
        "my-org/my-model",
        "http://h:1/v1",
    )
    assert one("groq/llama-3", custom_llm_provider="groq", api_key=KEY).model == "llama-3"


# ---- one deployment never sinks the file ----


def test_unknown_prefix_disables_only_that_deployment() -> None:
    cfg = build_config(
        {
            "model_list": [
                entry("ok", "openai/gpt-4o", api_key=KEY),
                entry("odd", "mystery/model-x", api_key=KEY),
            ]
        }
    )
    ok, odd = cfg.deployments
    assert ok.disabled_reason is None
    assert odd.disabled_reason is not None and "unknown provider 'mystery'" in odd.disabled_reason
    assert any(
        "model_list[1] (odd): disabled: unknown provider 'mystery'" in w for w in cfg.warnings
    )


def test_unknown_prefix_hint_offers_only_the_same_service() -> None:
    same = one("together/meta-llama/Llama-3-70b", api_key=KEY).disabled_reason or ""
    assert "write together_ai/meta-llama/Llama-3-70b" in same
    near = one("groqq/llama-3", api_key=KEY).disabled_reason or ""
    assert "nearest known prefix is 'groq'" in near and "write groq/" not in near
    for reason in (same, near):
        assert "openai/" not in reason


def test_unknown_prefix_with_api_base_suggests_openai_like_at_that_base() -> None:
    reason = one("llamacpp/qwen", api_base="http://box:8080/v1").disabled_reason or ""
    assert "if http://box:8080/v1 speaks the OpenAI API, write openai_like/qwen" in reason


def test_model_naming_an_unset_variable_names_it() -> None:
    doc = {
        "model_list": [entry("g", "os.environ/MY_MODEL_NAME"), entry("h", "gpt-4o", api_key=KEY)]
    }
    cfg = build_config(doc)
    dep = cfg.deployments[0]
    assert dep.disabled_reason == "model missing: environment variable MY_MODEL_NAME is not set"
    assert cfg.deployments[1].disabled_reason is None


def test_order_zero_is_accepted_and_kept() -> None:
    assert one("openai/gpt-4o", api_key=KEY, order=0).order == 0


def test_a_bare_name_that_cannot_be_inferred_never_suggests_openai() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"model_list": [entry("g", "gemini-2.5-flash")]})
    assert "gemini-2.5-flash" in str(info.value) and "openai/" not in str(info.value)


# ---- pass-through groups ----


def test_star_passthrough_makes_a_group_per_provider_with_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    cfg = build_config({"model_list": [entry("*", "*")]})
    groups = cfg.groups
    assert {"openai/*", "groq/*", "gpt-*", "o3*"} <= set(groups)
    assert "anthropic/*" not in groups and "claude*" not in groups
    (gpt,) = groups["gpt-*"]
    assert (gpt.provider, gpt.upstream_model("gpt-4o")) == ("openai", "gpt-4o")
    (groq,) = groups["groq/*"]
    assert groq.upstream_model("groq/llama-3.3-70b") == "llama-3.3-70b"


def test_star_passthrough_with_api_base_forwards_the_name_there() -> None:
    cfg = build_config({"model_list": [entry("*", "*", api_base="http://box:8000/v1")]})
    (dep,) = cfg.deployments
    assert (dep.group, dep.provider, dep.api_base) == ("*", "openai_like", "http://box:8000/v1")
    assert dep.upstream_model("Qwen/Qwen3-8B") == "Qwen/Qwen3-8B"


def test_star_passthrough_without_any_key_says_so() -> None:
    cfg = build_config({"model_list": [entry("*", "*"), entry("g", "gpt-4o", api_key=KEY)]})
    assert [d.group for d in cfg.deployments] == ["g"]
    assert any("'*' pass-through serves nothing" in w for w in cfg.warnings)


# ---- include, cache spellings, custom_auth, allowed_ips ----


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    write(
        tmp_path / "conf" / "models" / "more.yaml",
        {"model_list": [entry("b", "gpt-4o", api_key=KEY)]},
    )
    write(
        tmp_path / "conf" / "models.yaml",
        {"include": ["models/more.yaml"], "model_list": [entry("a", "gpt-4o", api_key=KEY)]},
    )
    main_file = write(
        tmp_path / "conf" / "config.yaml",
        {"include": ["models.yaml"], "router_settings": {"num_retries": 5}},
    )
    cfg = load_config(main_file)
    assert sorted(d.group for d in cfg.deployments) == ["a", "b"]
    assert cfg.num_retries == 5


def test_include_problems_name_the_file(tmp_path: Path) -> None:
    missing = write(tmp_path / "c.yaml", {"include": ["nope.yaml"]})
    with pytest.raises(ConfigError, match="include: cannot read"):
        load_config(missing)
    loop = write(tmp_path / "loop.yaml", {"include": ["loop.yaml"]})
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(loop)


@pytest.mark.parametrize(
    ("params", "url", "host", "port"),
    [
        ({"redis_url": "redis://r:6390"}, "redis://r:6390", None, None),
        ({"url": "redis://r:6391"}, "redis://r:6391", None, None),
        ({"redis_host": "cache", "redis_port": 6392, "redis_password": "pw"}, None, "cache", 6392),
    ],
)
def test_cache_params_redis_spellings(
    params: dict[str, object], url: str | None, host: str | None, port: int | None
) -> None:
    doc = {"litellm_settings": {"cache": True, "cache_params": {"type": "redis", **params}}}
    cache = build_config(doc).cache
    assert cache is not None and (cache.url, cache.host, cache.port) == (url, host, port)


def test_allowed_ips_networks_and_the_check() -> None:
    cfg = build_config({"general_settings": {"allowed_ips": ["127.0.0.1", "10.0.0.0/8", "::1"]}})
    nets = cfg.allowed_ips
    assert client_allowed(nets, "127.0.0.1") and client_allowed(nets, "10.2.3.4")
    assert client_allowed(nets, "::1") and client_allowed(nets, "::ffff:10.9.9.9")
    assert not client_allowed(nets, "192.168.1.5")
    assert not client_allowed(nets, None) and not client_allowed(nets, "not-an-ip")
    assert client_allowed((), "203.0.113.9")  # no list: everyone


def test_a_bad_allowed_ip_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"allowed_ips\[1\]"):
        build_config({"general_settings": {"allowed_ips": ["127.0.0.1", "localhost"]}})


# ---- default params ----


def test_default_params_fill_what_the_client_left_out() -> None:
    doc = {
        "model_list": [
            entry(
                "g",
                "hosted_vllm/qwen3",
                max_tokens=64,
                temperature=0.2,
                stop=["END"],
                extra_body={"top_k": 5},
                additional_drop_params=["user"],
            )
        ],
        "litellm_settings": {"default_params": {"seed": 7, "temperature": 1.0}},
    }
    (dep,) = build_config(doc).deployments
    client = {"model": "g", "messages": [], "temperature": 0.9, "user": "u1"}
    body = with_defaults(client, dep)
    assert body == {
        "model": "g",
        "messages": [],
        "temperature": 0.9,
        "max_tokens": 64,
        "stop": ["END"],
        "top_k": 5,
        "seed": 7,
    }
    assert "user" in client and "max_tokens" not in client  # the client's body is untouched
    asked = with_defaults({"messages": [], "max_completion_tokens": 9}, dep)
    assert "max_tokens" not in asked


def test_pass_through_bodies_get_the_defaults_under_their_own_names() -> None:
    doc = {
        "model_list": [
            entry(
                "g",
                "openai/gpt-5",
                api_key=KEY,
                max_tokens=500,
                temperature=0.4,
                stop="END",
                reasoning_effort="high",
                extra_body={"service_tier": "flex"},
            )
        ],
        "litellm_settings": {"default_params": {"seed": 3}},
    }
    (dep,) = build_config(doc).deployments
    responses = with_native_defaults({"input": "hi"}, dep, "openai_responses")
    assert responses == {
        "input": "hi",
        "max_output_tokens": 500,
        "temperature": 0.4,
        "reasoning": {"effort": "high"},
        "service_tier": "flex",
    }
    messages = with_native_defaults({"max_tokens": 50, "messages": []}, dep, "anthropic_messages")
    assert messages == {
        "max_tokens": 50,
        "messages": [],
        "temperature": 0.4,
        "stop_sequences": ["END"],
        "service_tier": "flex",
    }
    thinking = {"type": "enabled", "budget_tokens": 2000}
    kept = with_native_defaults({"thinking": thinking}, dep, "anthropic_messages")
    assert "temperature" not in kept and "stop_sequences" not in kept


def test_drop_params_of_the_deployment_wins() -> None:
    assert drops_params(False, one("openai/gpt-4o", api_key=KEY, drop_params=True))
    assert not drops_params(True, one("openai/gpt-4o", api_key=KEY, drop_params=False))
    assert drops_params(True, one("openai/gpt-4o", api_key=KEY))


def test_anthropic_translation_takes_a_default_thinking() -> None:
    dep = one(
        "anthropic/claude-sonnet-4-5",
        api_key=KEY,
        thinking={"type": "enabled", "budget_tokens": 2048},
        max_tokens=1000,
    )
    body = with_defaults({"messages": [{"role": "user", "content": "hi"}]}, dep)
    out = build_body(body, "claude-sonnet-4-5", stream=False, drop_params=False)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert out["max_tokens"] > 2048


# ---- ssl_verify ----


def test_ssl_verify_false_and_a_ca_bundle(tmp_path: Path) -> None:
    doc = {
        "model_list": [
            entry("a", "openai/x", api_key=KEY, api_base="https://a.test/v1", ssl_verify=False),
            entry(
                "b",
                "openai/x",
                api_key=KEY,
                api_base="https://b.test/v1",
                ssl_verify=certifi.where(),
            ),
            entry("c", "openai/x", api_key=KEY, api_base="https://c.test/v1"),
        ]
    }
    cfg = build_config(doc)
    rules = dict(tls_rules(cfg.deployments))
    assert rules["https://a.test/v1"] is False
    assert isinstance(rules["https://b.test/v1"], ssl.SSLContext)
    assert "https://c.test/v1" not in rules


def test_one_base_url_has_one_ssl_verify() -> None:
    base = "https://box.test/v1"
    doc = {
        "model_list": [
            entry("a", "openai/x", api_key=KEY, api_base=base, ssl_verify=False),
            entry("b", "openai/y", api_key=KEY, api_base=base),
        ]
    }
    with pytest.raises(ConfigError, match="share the api_base https://box.test/v1"):
        build_config(doc)


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ssl_verify: the CA bundle .* does not exist"):
        one("openai/x", api_key=KEY, ssl_verify=str(tmp_path / "nope.pem"))


# ---- retry_policy and allowed_fails_policy ----


def test_error_kinds_as_litellm_names_them() -> None:
    def err(status: int, **kw: Any) -> UpstreamError:
        return UpstreamError(
            "x", provider="openai", key_id="a", status=status, retryable=True, **kw
        )

    assert error_kind(err(429)) == "RateLimitError"
    assert error_kind(err(401, key_rejected=True)) == "AuthenticationError"
    assert error_kind(err(504)) == "TimeoutError"
    assert error_kind(err(500)) == "InternalServerError"
    assert error_kind(err(400, code="content_filter")) == "ContentPolicyViolationError"
    assert error_kind(err(400)) == "BadRequestError"
    assert allowed_fails_for({"InternalServerErrorAllowedFails": 20}, err(500), 3) == 20
    assert allowed_fails_for({"InternalServerErrorAllowedFails": 20}, err(429), 3) == 3


def test_unknown_policy_keys_warn() -> None:
    cfg = build_config(
        {"router_settings": {"retry_policy": {"RateLimitErrorRetries": 1, "Oops": 2}}}
    )
    assert cfg.router.retry_policy == {"RateLimitErrorRetries": 1}
    assert any("router_settings.retry_policy.Oops" in w for w in cfg.warnings)


async def test_retry_policy_stops_retrying_that_kind(make, upstream) -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a"), openai_dep("gpt", "b")],
        "router_settings": {"num_retries": 3, "retry_policy": {"InternalServerErrorRetries": 0}},
    }
    parts = make(doc)
    upstream.script("a", error(500))
    upstream.script("b", error(500))
    failure, trace = await parts.failure(chat())
    assert len(trace.attempts) == 1, trace.attempts
    assert failure.status >= 500


async def test_without_a_policy_the_same_failure_is_retried(make, upstream) -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a"), openai_dep("gpt", "b")],
        "router_settings": {"num_retries": 3},
    }
    parts = make(doc)
    upstream.script("a", error(500))
    upstream.script("b", error(500))
    _, dep, trace = await parts.complete(chat())
    assert len(trace.attempts) >= 3


async def test_allowed_fails_policy_sets_the_cooldown_threshold(make, upstream) -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a")],
        "router_settings": {
            "num_retries": 0,
            "allowed_fails": 100,
            "allowed_fails_policy": {"InternalServerErrorAllowedFails": 0},
        },
    }
    parts = make(doc)
    upstream.script("a", error(500))
    await parts.failure(chat())
    assert not parts.usable("a")


async def test_allowed_fails_policy_counts_the_failures_of_its_kind(make, upstream) -> None:
    doc = {
        "model_list": [openai_dep("gpt", "a")],
        "router_settings": {
            "num_retries": 0,
            "allowed_fails": 100,
            "allowed_fails_policy": {"InternalServerErrorAllowedFails": 1},
        },
    }
    parts = make(doc)
    for reply in (error(504), error(504), error(500)):
        upstream.script("a", reply)
        await parts.failure(chat())
    assert parts.usable("a")  # one 500 (the timeouts are another kind): within its 1
    upstream.script("a", error(500))
    await parts.failure(chat())
    assert not parts.usable("a")


def test_credentials_inside_an_api_base_disable_that_deployment_unprinted() -> None:
    doc = {
        "model_list": [
            {"model_name": "a", "litellm_params": {
                "model": "openai/m", "api_key": "sk-a", "api_base": "https://bob:hunter2@h/v1"}},
            {"model_name": "b", "litellm_params": {"model": "openai/m", "api_key": "sk-b"}},
        ]
    }  # fmt: skip
    cfg = build_config(doc, path=Path("config.yaml"))
    bad, good = cfg.deployments
    assert bad.disabled_reason and "extra_headers" in bad.disabled_reason
    assert "hunter2" not in bad.disabled_reason and good.disabled_reason is None
