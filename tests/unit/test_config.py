"""Reading LiteLLM's config.yaml: the example file, `os.environ/`, `.env`, limits, providers,
prefixes, warnings, readable errors, and the config lookup order.

Loading a config may set environment variables (`.env`, `environment_variables`), so every test
here runs in a saved-and-restored environment and working directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from proxy.config.loader import DEMO_CONFIG, build_config, find_config, load_config, load_env_file
from proxy.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.yaml"
EXAMPLE_VARS = {
    "claude-opus-key1": "ANTHROPIC_API_KEY_1",
    "claude-opus-key2": "ANTHROPIC_API_KEY_2",
    "claude-sonnet": "ANTHROPIC_API_KEY_1",
    "gpt-4-1": "OPENAI_API_KEY_1",
    "gpt-4-2": "OPENAI_API_KEY_2",
    "openrouter/claude-opus": "OPENROUTER_API_KEY",
    "openrouter/gpt-4": "OPENROUTER_API_KEY",
    "groq/llama": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private environment (no provider keys, HOME in tmp) and cwd, restored afterwards."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.endswith("_API_KEY") or "_API_KEY_" in name or name.startswith("LLMPROXY_"):
            del os.environ[name]
    os.environ.pop("LITELLM_MASTER_KEY", None)
    os.environ["HOME"] = str(tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def entry(name: str, model: str, **params: object) -> dict[str, object]:
    return {"model_name": name, "litellm_params": {"model": model, **params}}


# ---- config.example.yaml ----


def test_example_without_keys_disables_each_deployment_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the master key is set: naming an unset variable for it is a config error.
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master-0123456789")
    cfg = load_config(EXAMPLE)
    assert {d.id: d.key_env for d in cfg.deployments} == EXAMPLE_VARS
    for i, dep in enumerate(cfg.deployments):
        assert dep.key is None
        assert dep.disabled_reason and EXAMPLE_VARS[dep.id] in dep.disabled_reason
        mine = [w for w in cfg.warnings if w.startswith(f"model_list[{i}] ")]
        assert len(mine) == 1, mine
        assert EXAMPLE_VARS[dep.id] in mine[0]
    assert cfg.master_key is not None
    assert set(cfg.groups) == {
        "claude-opus",
        "claude-sonnet",
        "gpt-4",
        "openrouter/claude-opus",
        "openrouter/gpt-4",
        "groq/llama",
        "deepseek",
    }
    assert cfg.fallbacks["gpt-4"] == ("claude-sonnet", "openrouter/gpt-4")
    assert cfg.num_retries == 3
    assert cfg.cache is not None and cfg.cache.ttl == 3600


def test_example_with_keys_enables_every_deployment() -> None:
    for var in set(EXAMPLE_VARS.values()):
        os.environ[var] = f"sk-{var.lower()}-0123456789"
    os.environ["LITELLM_MASTER_KEY"] = "sk-master-0123456789"
    cfg = load_config(EXAMPLE)
    for dep in cfg.deployments:
        assert dep.disabled_reason is None
        assert dep.key is not None
        assert dep.key.reveal() == f"sk-{EXAMPLE_VARS[dep.id].lower()}-0123456789"
    assert cfg.master_key is not None and cfg.master_key.reveal() == "sk-master-0123456789"
    assert not [w for w in cfg.warnings if "disabled" in w]
    by_id = {d.id: d for d in cfg.deployments}
    assert (by_id["claude-opus-key1"].provider, by_id["claude-opus-key1"].model) == (
        "anthropic",
        "claude-opus-4-20250514",
    )
    assert by_id["claude-sonnet"].model == "claude-sonnet-4-20250514"
    assert by_id["openrouter/claude-opus"].model == "anthropic/claude-opus-4"
    assert by_id["groq/llama"].model == "llama-3.3-70b-versatile"
    assert by_id["deepseek"].provider == "deepseek"


# ---- os.environ/ and .env ----


def test_os_environ_anywhere(tmp_path: Path) -> None:
    os.environ |= {
        "T_KEY": "sk-from-env-0123456789",
        "T_BASE": "http://127.0.0.1:9/v1",
        "T_RPM": "60",
        "T_HDR": "org-9",
        "T_MASTER": "sk-master-from-env",
        "T_TTL": "120",
    }
    doc = {
        "model_list": [
            entry(
                "g",
                "openai/gpt-4o",
                api_key="os.environ/T_KEY",
                api_base="os.environ/T_BASE",
                rpm="os.environ/T_RPM",
                extra_headers={"OpenAI-Organization": "os.environ/T_HDR"},
            )
        ],
        "general_settings": {"master_key": "os.environ/T_MASTER"},
        "litellm_settings": {"cache": True, "cache_params": {"ttl": "os.environ/T_TTL"}},
    }
    cfg = load_config(write(tmp_path / "c.yaml", doc))
    (dep,) = cfg.deployments
    assert dep.key is not None and dep.key.reveal() == "sk-from-env-0123456789"
    assert dep.api_base == "http://127.0.0.1:9/v1"
    assert dep.rpm == 60
    assert dict(dep.extra_headers) == {"OpenAI-Organization": "org-9"}
    assert cfg.master_key is not None and cfg.master_key.reveal() == "sk-master-from-env"
    assert cfg.cache is not None and cfg.cache.ttl == 120


def test_env_file_beside_the_config(tmp_path: Path) -> None:
    conf = write(tmp_path / "conf" / "config.yaml", {"model_list": []})
    (tmp_path / "conf" / ".env").write_text("BESIDE_VAR=beside\nSHARED_VAR=from-file\n")
    (tmp_path / ".env").write_text("CWD_VAR=cwd\n")
    os.environ["SHARED_VAR"] = "already-set"
    assert load_env_file(conf, None) == tmp_path / "conf" / ".env"
    assert os.environ["BESIDE_VAR"] == "beside"
    assert os.environ["SHARED_VAR"] == "already-set"  # variables already set win
    assert "CWD_VAR" not in os.environ  # only one .env is read


def test_env_file_in_cwd_when_none_beside(tmp_path: Path) -> None:
    conf = write(tmp_path / "conf" / "config.yaml", {"model_list": []})
    (tmp_path / ".env").write_text("CWD_VAR=cwd\n")
    assert load_env_file(conf, None) == Path(".env")
    assert os.environ["CWD_VAR"] == "cwd"


def test_explicit_env_file_wins(tmp_path: Path) -> None:
    conf = write(tmp_path / "conf" / "config.yaml", {"model_list": []})
    (tmp_path / "conf" / ".env").write_text("WHICH=beside\n")
    explicit = tmp_path / "secrets.env"
    explicit.write_text("WHICH=explicit\n")
    assert load_env_file(conf, str(explicit)) == explicit
    assert os.environ["WHICH"] == "explicit"
    with pytest.raises(ConfigError, match="missing.env"):
        load_env_file(conf, str(tmp_path / "missing.env"))


def test_environment_variables_section(tmp_path: Path) -> None:
    os.environ["PRESET"] = "kept"
    doc = {
        "environment_variables": {"NEW_KEY_VAR": "sk-set-by-config-0123", "PRESET": "ignored"},
        "model_list": [entry("g", "openai/gpt-4o", api_key="os.environ/NEW_KEY_VAR")],
    }
    cfg = load_config(write(tmp_path / "c.yaml", doc))
    assert os.environ["NEW_KEY_VAR"] == "sk-set-by-config-0123"
    assert os.environ["PRESET"] == "kept"
    assert cfg.deployments[0].key is not None
    assert cfg.deployments[0].key.reveal() == "sk-set-by-config-0123"


# ---- limits ----


def test_rpm_tpm_inside_beside_and_router_defaults() -> None:
    doc = {
        "model_list": [
            entry("a", "openai/gpt-4o", api_key="k" * 12, rpm=10, tpm=1000),
            {**entry("b", "openai/gpt-4o", api_key="k" * 12), "rpm": 20, "tpm": 2000},
            entry("c", "openai/gpt-4o", api_key="k" * 12),
            entry("d", "openai/gpt-4o", api_key="k" * 12, tpm=4000),
        ],
        "router_settings": {"rpm": 500, "tpm": 90000},
    }
    deps = {d.id: d for d in build_config(doc).deployments}
    assert (deps["a"].rpm, deps["a"].tpm) == (10, 1000)
    assert (deps["b"].rpm, deps["b"].tpm) == (20, 2000)
    assert (deps["c"].rpm, deps["c"].tpm) == (500, 90000)
    assert (deps["d"].rpm, deps["d"].tpm) == (500, 4000)


def test_deployment_params_are_read() -> None:
    doc = {
        "model_list": [
            {
                **entry(
                    "g",
                    "openai/gpt-4o",
                    api_key="k" * 12,
                    timeout=30,
                    stream_timeout=5,
                    max_retries=1,
                    weight=3,
                    order=2,
                ),
                "model_info": {
                    "id": "my-id",
                    "input_cost_per_token": 0.001,
                    "output_cost_per_token": 0.002,
                    "max_input_tokens": 1000,
                },
            }
        ]
    }
    (dep,) = build_config(doc).deployments
    assert (dep.id, dep.timeout, dep.stream_timeout, dep.max_retries) == ("my-id", 30, 5, 1)
    assert (dep.weight, dep.order, dep.max_input_tokens) == (3, 2, 1000)
    assert (dep.input_cost_per_token, dep.output_cost_per_token) == (0.001, 0.002)


# ---- providers and prefixes ----


@pytest.mark.parametrize(
    ("model", "provider", "upstream"),
    [
        ("claude-opus-4-20250514", "anthropic", "claude-opus-4-20250514"),
        ("claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
        ("gpt-4o", "openai", "gpt-4o"),
        ("gpt-3.5-turbo", "openai", "gpt-3.5-turbo"),
        ("o1-mini", "openai", "o1-mini"),
        ("o3", "openai", "o3"),
        ("o4-mini", "openai", "o4-mini"),
        ("text-embedding-3-small", "openai", "text-embedding-3-small"),
        ("groq/llama-3.3-70b", "groq", "llama-3.3-70b"),
        ("openrouter/openai/gpt-4", "openrouter", "openai/gpt-4"),
        ("openrouter/anthropic/claude-3", "openrouter", "anthropic/claude-3"),
        ("anthropic/claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-20250514"),
        ("openai/gpt-4o", "openai", "gpt-4o"),
        ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
        ("together_ai/meta-llama/Llama-3-70b", "together_ai", "meta-llama/Llama-3-70b"),
        ("mock/anything", "mock", "anything"),
    ],
)
def test_provider_inference_and_prefix_stripping(model: str, provider: str, upstream: str) -> None:
    (dep,) = build_config({"model_list": [entry("g", model, api_key="k" * 12)]}).deployments
    assert (dep.provider, dep.model) == (provider, upstream)


@pytest.mark.parametrize("model", ["llama-3.3-70b", "gemini-pro"])
def test_unknown_provider_is_a_config_error_naming_the_path(tmp_path: Path, model: str) -> None:
    doc = {"model_list": [entry("ok", "gpt-4o", api_key="k" * 12), entry("bad", model)]}
    path = write(tmp_path / "c.yaml", doc)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "model_list[1].litellm_params.model" in message
    assert model in message


# ---- warnings and errors ----


def test_unknown_keys_warn_once_each(tmp_path: Path) -> None:
    doc = {
        "model_list": [
            {**entry("g", "openai/gpt-4o", api_key="k" * 12, frobnicate=1), "model_extra": 2}
        ],
        "router_settings": {"enable_pre_call_checks": True},
        "litellm_settings": {"success_callback": ["langfuse"], "set_verbose": True},
        "general_settings": {"store_model_in_db": True},
        "mystery_section": {"a": 1},
    }
    cfg = load_config(write(tmp_path / "c.yaml", doc))
    expected = [
        "model_list[0].litellm_params.frobnicate",
        "model_list[0].model_extra",
        "router_settings.enable_pre_call_checks",
        "litellm_settings.success_callback",
        "litellm_settings.set_verbose",
        "general_settings.store_model_in_db",
        "mystery_section",
    ]
    for key in expected:
        assert len([w for w in cfg.warnings if w.startswith(key + ":")]) == 1, (key, cfg.warnings)
    assert len(cfg.deployments) == 1


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "model_list:\n  - model_name: a\n    litellm_params: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "line" in message and "YAML" in message


@pytest.mark.parametrize(
    ("where", "value", "path", "reason"),
    [
        ("rpm", "fast", "model_list[3].litellm_params.rpm", "integer"),
        ("timeout", "soon", "model_list[3].litellm_params.timeout", "number"),
        ("extra_headers", "x", "model_list[3].litellm_params.extra_headers", "mapping"),
        ("rpm", -1, "model_list[3].litellm_params.rpm", "greater than or equal"),
    ],
)
def test_type_errors_name_file_path_and_reason(
    tmp_path: Path, where: str, value: object, path: str, reason: str
) -> None:
    entries = [entry(f"g{i}", "openai/gpt-4o", api_key="k" * 12) for i in range(4)]
    entries[3]["litellm_params"][where] = value  # type: ignore[index]
    file = write(tmp_path / "c.yaml", {"model_list": entries})
    with pytest.raises(ConfigError) as info:
        load_config(file)
    message = str(info.value)
    assert str(file) in message
    assert path in message
    assert reason in message


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"model_list": {"a": 1}}, "model_list"),
        ({"model_list": [{"litellm_params": {"model": "gpt-4o"}}]}, "model_list[0].model_name"),
        ({"model_list": [{"model_name": "a"}]}, "model_list[0].litellm_params"),
        ({"router_settings": {"routing_strategy": "fastest"}}, "router_settings.routing_strategy"),
        ({"router_settings": {"num_retries": "many"}}, "router_settings.num_retries"),
        ({"litellm_settings": {"cache": "sometimes"}}, "litellm_settings.cache"),
        ({"litellm_settings": {"cache_params": {"type": "disk"}}}, "cache_params.type"),
        ({"router_settings": {"fallbacks": "gpt-4"}}, "router_settings.fallbacks"),
        ("- just\n- a list\n", "top level"),
    ],
)
def test_other_type_errors(tmp_path: Path, doc: object, path: str) -> None:
    file = write(tmp_path / "c.yaml", doc)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert path in str(info.value)
    assert str(file) in str(info.value)


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "c.yaml", ""))
    assert cfg.deployments == ()


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_duplicate_ids_are_an_error() -> None:
    one = {**entry("a", "openai/gpt-4o", api_key="k" * 12), "model_info": {"id": "same"}}
    two = {**entry("b", "openai/gpt-4o", api_key="k" * 12), "model_info": {"id": "same"}}
    with pytest.raises(ConfigError, match="same"):
        build_config({"model_list": [one, two]})


# ---- lookup order ----


def test_lookup_order(tmp_path: Path) -> None:
    assert find_config(None) == (DEMO_CONFIG, True)  # nothing anywhere: the demo
    home_conf = write(tmp_path / "home" / ".litellm" / "config.yaml", {"model_list": []})
    assert find_config(None) == (home_conf, False)
    cwd_conf = write(tmp_path / "config.yaml", {"model_list": []})
    assert find_config(None)[0].resolve() == cwd_conf.resolve()
    env_conf = write(tmp_path / "env.yaml", {"model_list": []})
    os.environ["LLMPROXY_CONFIG"] = str(env_conf)
    assert find_config(None) == (env_conf, False)
    explicit = write(tmp_path / "explicit.yaml", {"model_list": []})
    assert find_config(str(explicit)) == (explicit, False)


def test_demo_config_needs_no_keys() -> None:
    cfg = load_config(DEMO_CONFIG, demo=True)
    assert cfg.demo
    assert cfg.deployments
    assert all(d.provider == "mock" and d.disabled_reason is None for d in cfg.deployments)


def test_provider_default_key_variable() -> None:
    os.environ["GROQ_API_KEY"] = "gsk-default-variable-0123456789"
    doc = {
        "model_list": [
            entry("fast", "groq/llama-3.3-70b"),
            entry("cheap", "deepseek/deepseek-chat"),
            entry("local", "ollama/llama3"),
            entry("oai-compatible", "openai/my-model", api_base="http://127.0.0.1:9/v1"),
        ]
    }
    cfg = build_config(doc)
    deps = {d.id: d for d in cfg.deployments}
    assert deps["fast"].key is not None
    assert deps["fast"].key.reveal() == "gsk-default-variable-0123456789"
    assert deps["fast"].disabled_reason is None
    assert deps["cheap"].disabled_reason and "DEEPSEEK_API_KEY" in deps["cheap"].disabled_reason
    assert [w for w in cfg.warnings if "DEEPSEEK_API_KEY" in w]
    assert deps["local"].disabled_reason is None and deps["local"].key is None
    assert deps["oai-compatible"].disabled_reason is None


def test_unset_api_base_variable_disables_the_deployment() -> None:
    doc = {
        "model_list": [
            entry("self-hosted", "openai/my-model", api_key="k" * 12, api_base="os.environ/NO_BASE")
        ]
    }
    cfg = build_config(doc)
    (dep,) = cfg.deployments
    assert dep.disabled_reason and "NO_BASE" in dep.disabled_reason
    assert len([w for w in cfg.warnings if "NO_BASE" in w]) == 1


def test_empty_model_list_warns() -> None:
    cfg = build_config({})
    assert any(w.startswith("model_list:") for w in cfg.warnings)


def test_a_setting_whose_optional_package_is_missing_is_a_config_error() -> None:
    from proxy.config.loader import require_package
    from proxy.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pip install 'llmproxy-tui\[scale\]'"):
        require_package("no_such_package_for_llmproxy", "router_settings.redis_*")
    require_package("orjson", "anything")  # an installed package passes


def test_no_secret_reaches_a_repr() -> None:
    """Keys and passwords must not print through repr() (a log line, a traceback)."""
    from proxy.config.loader import build_config
    from proxy.providers.openai import OpenAIProvider
    from proxy.schema import ChatRequest

    secrets = ("sk-provider-key-0123456789", "redis-pass-0123", "pw-in-url-0123",
               "cache-pass-0123", "sk-master-key-0123456789")  # fmt: skip
    config = build_config({
        "model_list": [{"model_name": "g", "litellm_params": {"model": "openai/gpt-4o",
                                                                "api_key": secrets[0]}}],
        "router_settings": {"redis_password": secrets[1],
                            "redis_url": f"redis://:{secrets[2]}@127.0.0.1:6379"},
        "litellm_settings": {"cache": True, "cache_params": {"password": secrets[3]}},
        "general_settings": {"master_key": secrets[4]},
    })  # fmt: skip
    request = OpenAIProvider().build_request(
        ChatRequest(model="g", body={"messages": []}), config.deployments[0]
    )
    assert request.headers["authorization"] == f"Bearer {secrets[0]}"  # still sent upstream
    printed = repr(config) + repr(request) + str(config.deployments)
    assert not [s for s in secrets if s in printed]
