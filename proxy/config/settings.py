"""The LiteLLM `config.yaml` format, as pydantic models: types checked, unknown keys kept.

Unknown keys are allowed here (`extra="allow"`) so that `config.py` can report each once as a
warning instead of refusing a user's file over a key we do not serve.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", strict=False, frozen=True)


class LitellmParams(_Section):
    model: str
    """`provider/name`, e.g. `groq/llama-3.3-70b`; the prefix is stripped upstream."""
    api_key: str | None = None
    api_base: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)
    order: int | None = Field(default=None, ge=1)
    mock_response: str | None = None
    extra_headers: dict[str, str] | None = None


class ModelInfo(_Section):
    id: str | None = None
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)
    max_input_tokens: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    """Requests asking for more output tokens are clamped to this, not refused upstream."""
    max_tokens: int | None = Field(default=None, gt=0)
    """LiteLLM's older name for max_output_tokens (used when that one is not set)."""


class ModelEntry(_Section):
    model_name: str
    """The group clients ask for; entries sharing a name are one group."""
    litellm_params: LitellmParams
    model_info: ModelInfo | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)


FallbackList = list[dict[str, list[str]]]


class ModelGroupAlias(_Section):
    """The long form of a `model_group_alias` entry: `{"model": group, "hidden": bool}`."""

    model: str
    hidden: bool = False
    """Served, but left out of GET /v1/models."""


class RouterSettings(_Section):
    routing_strategy: Strategy = "simple-shuffle"
    fallbacks: FallbackList | None = None
    context_window_fallbacks: FallbackList | None = None
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    retry_after: float = Field(default=0.0, ge=0)
    allowed_fails: int = Field(default=3, ge=0)
    cooldown_time: float = Field(default=5.0, ge=0)
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    model_group_alias: dict[str, str | ModelGroupAlias] = {}
    """Another name for a group (alias -> model_name), e.g. the background-model names coding
    agents send (`claude-haiku-4-5-20251001`, `gpt-5.4-nano`) mapped to a configured group."""
    sticky_sessions: bool = True
    """A request naming an agent session stays on the deployment that served that session
    while it is usable, so the provider's prompt cache keeps hitting; false spreads as usual."""
    redis_host: str | None = None
    redis_port: int | None = None
    # Left out of repr (a password, or a URL that may hold one), so no log prints them.
    redis_password: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    redis_namespace: str | None = None
    """Key prefix in Redis, so several clusters can share one server."""


class CacheParams(_Section):
    type: Literal["local", "redis"] = "local"
    ttl: float = Field(default=3600.0, gt=0)
    host: str | None = None
    port: int | None = None
    password: str | None = Field(default=None, repr=False)
    namespace: str | None = None
    max_entries: int = Field(default=10_000, gt=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


class LitellmSettings(_Section):
    cache: bool = False
    cache_params: CacheParams = CacheParams()
    drop_params: bool = False
    request_timeout: float | None = Field(default=None, gt=0)
    num_retries: int | None = Field(default=None, ge=0)
    fallbacks: FallbackList | None = None
    context_window_fallbacks: FallbackList | None = None


class GeneralSettings(_Section):
    master_key: str | None = None
    database_url: str | None = None
    usage_retention_days: int = Field(default=90, gt=0)


class RawConfig(_Section):
    model_list: list[ModelEntry] = []
    router_settings: RouterSettings = RouterSettings()
    litellm_settings: LitellmSettings = LitellmSettings()
    general_settings: GeneralSettings = GeneralSettings()
    environment_variables: dict[str, str | int | float | bool] = {}
