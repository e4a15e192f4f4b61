"""The LiteLLM `config.yaml` format, as pydantic models: types checked, unknown keys kept.

Unknown keys are allowed here (`extra="allow"`) so that `config.py` can report each once as a
warning instead of refusing a user's file over a key we do not serve.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxy import durations

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
    order: int | None = Field(default=None, ge=0)
    """Lower tiers are tried first (LiteLLM accepts 0)."""
    mock_response: str | None = None
    extra_headers: dict[str, str] | None = None
    custom_llm_provider: str | None = None
    """Names the provider, `model` being then the upstream name as it is."""
    ssl_verify: bool | str | None = None
    """False: do not check the upstream's certificate; a path: the CA bundle to check it with."""
    # Defaults sent upstream when the client's request does not set them.
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    extra_body: dict[str, Any] | None = None
    """Keys merged into the upstream body (the client's own keys win)."""
    thinking: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    drop_params: bool | None = None
    """Overrides litellm_settings.drop_params for this deployment."""
    additional_drop_params: list[str] | None = None
    """Top-level body keys never sent to this deployment."""
    api_version: str | None = None
    """Azure: the `api-version` query parameter (else AZURE_API_VERSION)."""
    azure_ad_token: str | None = Field(default=None, repr=False)
    """Azure: an Entra ID token, sent as a bearer token instead of the `api-key` header."""
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_session_token: str | None = Field(default=None, repr=False)
    aws_region_name: str | None = None
    """Bedrock: the region (else AWS_REGION_NAME, AWS_REGION, AWS_DEFAULT_REGION)."""
    aws_profile_name: str | None = None
    """Bedrock: a profile of the AWS config files, when no aws_* keys are given."""
    aws_bedrock_runtime_endpoint: str | None = None
    """Bedrock: the runtime's URL (a VPC endpoint), else AWS_BEDROCK_RUNTIME_ENDPOINT, else
    the region's `https://bedrock-runtime.{region}.amazonaws.com`; `api_base` wins."""
    vertex_project: str | None = None
    """Vertex AI: the Google Cloud project (else VERTEXAI_PROJECT, else the credentials')."""
    vertex_location: str | None = None
    """Vertex AI: the region (`us-central1`, `global`; else VERTEXAI_LOCATION)."""
    vertex_credentials: str | dict[str, Any] | None = Field(default=None, repr=False)
    """Vertex AI: a service-account JSON file's path, or the JSON itself."""
    max_budget: float | None = Field(default=None, ge=0)
    """USD this deployment may spend per `budget_duration` window; past it the router skips
    it until the window resets (see `proxy/routing/budgets.py`)."""
    budget_duration: str | None = None
    """LiteLLM's duration (`30s`, `1h`, `1d`, `30d`, `1mo`); None: the budget never resets."""

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else check_budget_duration(value)


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


class ProviderBudget(_Section):
    """One entry of `router_settings.provider_budget_config` (LiteLLM's shape)."""

    budget_limit: float = Field(ge=0)
    """USD every deployment of the provider may spend together per `time_period`."""
    time_period: str
    """LiteLLM's duration: `1d`, `30d`, `1mo`, ..."""

    @field_validator("time_period")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_budget_duration(value)


def check_budget_duration(value: str) -> str:
    """Returns `value` when it is a budget window LiteLLM's forms allow.

    Raises:
        ValueError: not a duration, or a month count that is not whole.
    """
    try:
        amount, unit = durations.parse(value)
    except durations.DurationError as exc:
        raise ValueError(str(exc)) from None
    if unit == "mo" and amount != int(amount):
        raise ValueError(f"{value!r}: months must be a whole number (1mo, 2mo)")
    return value


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
    retry_policy: dict[str, int] | None = None
    """Retries per error kind (LiteLLM's `RateLimitErrorRetries`, ...); see `policies.py`."""
    allowed_fails_policy: dict[str, int] | None = None
    """Failures per error kind before a cooldown (`RateLimitErrorAllowedFails`, ...)."""
    provider_budget_config: dict[str, ProviderBudget] = {}
    """USD per window per provider (LiteLLM's names: `openai`, `anthropic`, `azure`, ...):
    past it every deployment of that provider is skipped until the window resets."""


class CacheParams(_Section):
    type: Literal["local", "redis"] = "local"
    ttl: float = Field(default=3600.0, gt=0)
    host: str | None = None
    port: int | None = None
    password: str | None = Field(default=None, repr=False)
    url: str | None = Field(default=None, repr=False)
    """`redis://…` (also spelled `redis_url`); wins over host and port."""
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
    default_params: dict[str, Any] = {}
    """Body parameters every deployment sends when the client does not set them."""
    ssl_verify: bool | str | None = None
    """The default for every deployment's `ssl_verify`."""
    success_callback: str | list[str] = []
    """Where successful requests are reported: `otel`, `langfuse` (a span each, see
    `proxy/config/callbacks.py`), `prometheus` (GET /metrics); others are warned about."""
    failure_callback: str | list[str] = []
    """The same, for failed requests."""
    callbacks: str | list[str] = []
    """The same, for every request."""


class GeneralSettings(_Section):
    master_key: str | None = None
    database_url: str | None = None
    allowed_ips: list[str] | None = None
    """Only clients from these addresses or networks (CIDR) are served (403 otherwise)."""
    custom_auth: str | None = None
    """A Python hook in LiteLLM; refused here (see loader), never skipped silently."""
    usage_retention_days: int = Field(default=90, gt=0)
    allowed_hosts: list[str] = []
    """Host names a proxy without a master key answers to besides its listen address,
    `localhost`, `127.0.0.1` and `[::1]` (in `Host` and `Origin`); `*` allows any."""
    client_read_timeout: float = Field(default=30, gt=0)
    """Seconds a client has to send a whole request, head and body, from its first byte;
    a slower one gets 408 and its connection is closed."""
    client_idle_timeout: float = Field(default=5, gt=0)
    """Seconds a connection with no request under way (new, or kept alive) stays open."""
    background_health_checks: bool = False
    """Probe every enabled deployment every `health_check_interval` seconds (the cheapest
    key check its provider allows); a failing probe cools it down before a request meets it."""
    health_check_interval: float = Field(default=300, gt=0)
    store_prompts_in_spend_logs: bool = False
    """Store each request's bodies (client, upstream, answer) in memory, bounded, redacted,
    for the dashboard's request detail and `GET /llmproxy/requests/{id}/bodies`."""
    max_client_connections: int | None = Field(default=None, gt=0)
    """Client connections open at once. Past it a new connection closes the oldest idle or
    still-sending one, else gets 503. Default: from the open-file limit (at most 10,000)."""
    alerting: list[str] = []
    """LiteLLM's alert channels: `slack` (posts to $SLACK_WEBHOOK_URL), `webhook` (posts the
    event's JSON to $WEBHOOK_URL), or an http(s) URL (a webhook). Budget crossings are posted."""
    alerting_threshold: float | None = Field(default=None, gt=0)
    """LiteLLM's seconds before a request counts as slow or hanging (accepted; only budget
    alerts are posted)."""
    alerting_webhook_url: str | None = None
    """A webhook that receives each alert's JSON (like an http(s) URL in `alerting`)."""


class RawConfig(_Section):
    model_list: list[ModelEntry] = []
    router_settings: RouterSettings = RouterSettings()
    litellm_settings: LitellmSettings = LitellmSettings()
    general_settings: GeneralSettings = GeneralSettings()
    environment_variables: dict[str, str | int | float | bool] = {}
