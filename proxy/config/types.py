"""The resolved configuration the proxy is built from: `Config` and its `Deployment`s.

Providers, the router and the stores import these types; the YAML reading lives in
`proxy/config/loader.py`, so nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.config.callbacks import SpanSink
from proxy.config.settings import CacheParams, LitellmSettings, RouterSettings
from proxy.secret import Secret

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Deployment:
    """One model_list entry, resolved: where to send, with which key, under which limits."""

    id: str
    group: str
    provider: str
    wire: str
    model: str
    """The name the upstream is called with (provider prefix stripped; `*` for wildcards)."""
    api_base: str
    key: Secret | None
    key_env: str | None
    """The variable the key came from, for messages (never the key itself)."""
    disabled_reason: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    stream_timeout: float = DEFAULT_TIMEOUT
    max_retries: int | None = None
    weight: float = 1.0
    order: int = 1
    mock_response: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_cost_per_token: float | None = None
    cache_write_cost_per_token: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    """`model_info.max_output_tokens`: larger max_tokens asks are clamped to it (else the
    upstream model's known maximum is, see `proxy.config.model_limits`)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """OpenAI body parameters sent when the client's request does not set them
    (`litellm_settings.default_params`, then the deployment's own `max_tokens`, ...)."""
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    """`litellm_params.extra_body`: keys added to the upstream's own body, whatever its wire
    format, when the request does not set them."""
    drop_params: bool | None = None
    """The deployment's own `drop_params`; None: litellm_settings.drop_params decides."""
    drop: tuple[str, ...] = ()
    """`additional_drop_params`: top-level body keys never sent to this deployment."""
    ssl_verify: bool | str | None = None
    """None: certificates checked as usual; False: not checked; a path: the CA bundle."""
    provider_params: Mapping[str, str] = field(default_factory=dict)
    """Provider settings beyond the common ones, resolved (`api_version`, `aws_region_name`)."""
    credentials: Mapping[str, Secret] = field(default_factory=dict)
    """Provider credentials beyond `key`, by their litellm_params name (`azure_ad_token`,
    `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`)."""
    max_budget: float | None = None
    """`litellm_params.max_budget`: USD per `budget_duration` window; past it the router skips
    this deployment until the window resets (`proxy/routing/budgets.py`)."""
    budget_duration: str | None = None
    """`litellm_params.budget_duration` (`1d`, `30d`, `1mo`); None: the budget never resets."""

    @property
    def wildcard(self) -> bool:
        return self.group.endswith("*")

    def upstream_model(self, requested: str) -> str:
        """Returns the model name to send upstream for a request naming `requested`.

        For a wildcard group (`openrouter/*` with model `*`), the rest of the requested name
        fills the `*`: `openrouter/anthropic/claude-3` sends `anthropic/claude-3`.
        """
        if "*" not in self.model:
            return self.model
        prefix = self.group.split("*", 1)[0]
        rest = requested[len(prefix) :] if requested.startswith(prefix) else requested
        return self.model.replace("*", rest, 1)

    @property
    def key_redacted(self) -> str:
        return self.key.redacted if self.key else "-"

    def scrub(self, text: str) -> str:
        """Returns `text` with this deployment's key and credentials redacted (an upstream, or
        a proxy in front of it, may echo what it was sent)."""
        for secret in (self.key, *self.credentials.values()):
            value = secret.reveal() if secret is not None else ""
            if secret is not None and value and value in text:
                text = text.replace(value, secret.redacted)
        return text


@dataclass(frozen=True)
class Config:
    deployments: tuple[Deployment, ...]
    router: RouterSettings
    litellm: LitellmSettings
    master_key: Secret | None
    database_url: Secret | None
    usage_retention_days: int
    num_retries: int
    fallbacks: Mapping[str, tuple[str, ...]]
    context_window_fallbacks: Mapping[str, tuple[str, ...]]
    warnings: tuple[str, ...] = ()
    path: Path | None = None
    demo: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)
    """`router_settings.model_group_alias`, resolved: alias -> the model_name it serves as
    (only aliases whose target is a configured group; the others are warnings)."""
    hidden_aliases: frozenset[str] = frozenset()
    """Aliases left out of GET /v1/models (`hidden: true`)."""
    allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """`general_settings.allowed_ips`: when set, only clients in these networks are served."""
    allowed_hosts: tuple[str, ...] = ()
    """`general_settings.allowed_hosts`: more names a keyless proxy answers to."""
    client_read_timeout: float = 30.0
    """`general_settings.client_read_timeout`: seconds to send a whole request."""
    client_idle_timeout: float = 5.0
    """`general_settings.client_idle_timeout`: seconds an idle connection stays open."""
    max_client_connections: int | None = None
    """`general_settings.max_client_connections`; None: from the open-file limit."""
    callbacks: tuple[SpanSink, ...] = ()
    background_health_checks: bool = False
    """`general_settings.background_health_checks`: probe every deployment in the background."""
    health_check_interval: float = 300.0
    """`general_settings.health_check_interval`: seconds between two probes of a deployment."""
    store_prompts: bool = False
    """`general_settings.store_prompts_in_spend_logs`: store request bodies (proxy/store/bodies)."""
    """`litellm_settings.*callback*` asking for spans (otel, langfuse), resolved."""
    alerting: tuple[str, ...] = ()
    """`general_settings.alerting`: `slack`, `webhook` or webhook URLs (budget alerts)."""
    alerting_webhook_url: Secret | None = None
    """`general_settings.alerting_webhook_url`: a webhook for alerts (a secret: never shown)."""

    @property
    def groups(self) -> dict[str, list[Deployment]]:
        """Every name a client may ask for -> its deployments: the model_names, then the
        aliases, each with its target group's deployments (so the router resolves both)."""
        out: dict[str, list[Deployment]] = {}
        for dep in self.deployments:
            out.setdefault(dep.group, []).append(dep)
        for alias, target in self.aliases.items():
            if target in out and alias not in out:
                out[alias] = list(out[target])
        return out

    @property
    def listed_models(self) -> list[str]:
        """The names GET /v1/models lists: the groups and the aliases not hidden."""
        return [name for name in self.groups if name not in self.hidden_aliases]

    @property
    def secrets(self) -> list[Secret]:
        """Every key the config holds (provider keys, the master key), for scrubbing text."""
        keys = [d.key for d in self.deployments if d.key is not None]
        keys += [c for d in self.deployments for c in d.credentials.values()]
        # extra_headers often carry a token (an org key, a gateway secret): never echo one.
        keys += [Secret(v) for d in self.deployments for v in d.extra_headers.values() if v]
        return keys if self.master_key is None else [*keys, self.master_key]

    @property
    def cache(self) -> CacheParams | None:
        return self.litellm.cache_params if self.litellm.cache else None
