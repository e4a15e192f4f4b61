"""Each `model_list` entry resolved into `Deployment`s: provider, base URL, key, limits, defaults.

A deployment that cannot serve (an unknown provider prefix, a key or base URL whose variable
is unset) is kept, disabled with its reason, and warned about: one entry never sinks the file.
A bare `model: "*"` pass-through becomes one wildcard group per provider whose key is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.config.catalog import (
    INFERRED_PREFIXES,
    OLLAMA,
    PROVIDERS,
    ProviderSpec,
    huggingface_model,
    known,
    split_model,
    unknown_provider_hint,
)
from proxy.config.cloud import resolve as resolve_cloud
from proxy.config.settings import LitellmParams, ModelEntry, RawConfig
from proxy.config.types import DEFAULT_TIMEOUT, Deployment
from proxy.errors import ConfigError
from proxy.secret import Secret

DEFAULT_KEYS = ("max_tokens", "temperature", "top_p", "stop", "thinking", "reasoning_effort")
"""`litellm_params` sent upstream as body parameters when the client does not set them."""
_TEMPLATE = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def build_deployments(
    raw: RawConfig, missing: dict[str, str], warnings: list[str], where: str
) -> list[Deployment]:
    """Resolves every model_list entry (a `*` pass-through may make several deployments).

    Raises:
        ConfigError: a bare model name whose provider cannot be inferred, a missing CA
            bundle, or one deployment id used twice.
    """
    out: list[Deployment] = []
    counts: dict[str, int] = {}
    seen_ids: set[str] = set()
    for i, entry in enumerate(raw.model_list):
        counts[entry.model_name] = counts.get(entry.model_name, 0) + 1
        deps = list(_entry_deployments(raw, entry, i, counts[entry.model_name], missing, where))
        if not deps:
            warnings.append(
                f"model_list[{i}] ({entry.model_name}): the '*' pass-through serves nothing: "
                "no provider key variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) is set"
            )
        for dep in deps:
            if dep.id in seen_ids:
                raise ConfigError(
                    f"{where}: model_list[{i}].model_info.id: '{dep.id}' is used twice"
                )
            seen_ids.add(dep.id)
            if dep.disabled_reason:
                warnings.append(f"model_list[{i}] ({dep.id}): disabled: {dep.disabled_reason}")
            out.append(dep)
    _same_tls_per_base(out, where)
    _budget_warnings(raw, out, warnings)
    return out


def _budget_warnings(raw: RawConfig, deps: list[Deployment], warnings: list[str]) -> None:
    """Warns about a provider budget no deployment is charged to (a misspelt provider)."""
    providers = {d.provider for d in deps}
    for name in raw.router_settings.provider_budget_config:
        if name not in providers:
            warnings.append(
                f"router_settings.provider_budget_config.{name}: no deployment uses the "
                f"provider '{name}' (providers here: {', '.join(sorted(providers)) or 'none'})"
            )


def _same_tls_per_base(deps: list[Deployment], where: str) -> None:
    """The certificate check is the connection's, so one base URL has one `ssl_verify`.

    Raises:
        ConfigError: two deployments on one api_base that differ in ssl_verify.
    """
    seen: dict[str, Deployment] = {}
    for dep in deps:
        if not dep.api_base or dep.disabled_reason:
            continue
        other = seen.setdefault(dep.api_base, dep)
        if _tls(other) != _tls(dep):
            raise ConfigError(
                f"{where}: ssl_verify: deployments '{other.id}' and '{dep.id}' share the "
                f"api_base {dep.api_base} but not ssl_verify; set the same on both"
            )


def _entry_deployments(
    raw: RawConfig, entry: ModelEntry, i: int, n: int, missing: dict[str, str], where: str
) -> Iterator[Deployment]:
    params = entry.litellm_params
    at = f"model_list[{i}].litellm_params"
    if params.model == "*" and not params.custom_llm_provider:
        yield from _passthrough(raw, entry, i, missing, where)
        return
    model_var = missing.get(f"{at}.model")
    provider, upstream = split_model(params.model, params.custom_llm_provider)
    if model_var is None and provider is None:
        raise ConfigError(
            f"{where}: {at}.model: cannot infer the provider of '{params.model}'; write it "
            "as provider/model with the provider that serves it (llmproxy-tui --check lists "
            "what each deployment resolves to)"
        )
    dep_id = _dep_id(raw, entry, n)
    if model_var is not None:
        reason = f"model missing: environment variable {model_var} is not set"
        yield _disabled(raw, entry, dep_id, provider or "?", upstream, reason)
    elif provider is None or not known(provider):
        reason = unknown_provider_hint(provider or "", upstream, params.api_base)
        yield _disabled(raw, entry, dep_id, provider or "?", upstream, reason)
    else:
        if provider == "huggingface":
            upstream = huggingface_model(upstream)
        yield _deployment(raw, entry, i, dep_id, PROVIDERS[provider], upstream, missing, where)


def _dep_id(raw: RawConfig, entry: ModelEntry, n: int) -> str:
    info = entry.model_info
    if info and info.id:
        return info.id
    size = sum(1 for e in raw.model_list if e.model_name == entry.model_name)
    return f"{entry.model_name}-{n}" if n > 1 or size > 1 else entry.model_name


def _passthrough(
    raw: RawConfig, entry: ModelEntry, i: int, missing: dict[str, str], where: str
) -> Iterator[Deployment]:
    """LiteLLM's `model: "*"`: the client's model name picks the provider, as a prefix
    (`groq/llama-3.3-70b`) or inferred (`gpt-4o`, `claude-…`). One wildcard group per provider
    whose key variable is set; with an api_base, the name goes to that server (openai_like)."""
    params, head = entry.litellm_params, entry.model_name.removesuffix("*")
    base_id = (entry.model_info.id if entry.model_info else None) or entry.model_name
    empty: dict[str, str] = {}
    if params.api_base:
        spec = PROVIDERS["openai_like"]
        yield _deployment(raw, entry, i, base_id, spec, "*", missing, where, group=f"{head}*")
        return
    # Each provider's own key variable only: a key written in the entry is for one provider,
    # and must not be sent to every provider a client names.
    entry = entry.model_copy(update={"litellm_params": params.model_copy(update={"api_key": None})})
    keyed = [
        spec
        for spec in PROVIDERS.values()
        if spec.key_env and any(os.environ.get(v) for v in (spec.key_env, *spec.also_key_env))
    ]
    for spec in keyed:
        group = f"{head}{spec.name}/*"
        yield _deployment(raw, entry, i, f"{base_id}-{spec.name}", spec, "*", empty, where, group)
    for prefix, name in INFERRED_PREFIXES:
        if PROVIDERS[name] in keyed:
            group = f"{head}{prefix}*"
            dep_id = f"{base_id}-{prefix}"
            yield _deployment(
                raw, entry, i, dep_id, PROVIDERS[name], f"{prefix}*", empty, where, group
            )


def _disabled(
    raw: RawConfig, entry: ModelEntry, dep_id: str, provider: str, upstream: str, reason: str
) -> Deployment:
    """A deployment that cannot be served (shown in --check and the state, never chosen)."""
    params = entry.litellm_params
    return Deployment(
        id=dep_id,
        group=entry.model_name,
        provider=provider,
        wire="openai",
        model=upstream,
        api_base=(params.api_base or "").rstrip("/"),
        key=None,
        key_env=None,
        disabled_reason=reason,
        order=params.order if params.order is not None else 1,
        weight=params.weight if params.weight is not None else 1.0,
    )


def _deployment(
    raw: RawConfig,
    entry: ModelEntry,
    i: int,
    dep_id: str,
    spec: ProviderSpec,
    upstream: str,
    missing: dict[str, str],
    where: str,
    group: str | None = None,
) -> Deployment:
    params, info = entry.litellm_params, entry.model_info
    at = f"model_list[{i}].litellm_params"
    key, key_env, disabled = _key_for(spec, params, f"{at}.api_key", missing)
    cloud = resolve_cloud(spec.name, params, key is not None, missing, f"model_list[{i}]")
    if cloud.disabled and not (disabled and cloud.disabled.startswith("key missing")):
        disabled = f"{disabled}; {cloud.disabled}" if disabled else cloud.disabled
    if cloud.api_base and not params.api_base:
        params = params.model_copy(update={"api_base": cloud.api_base})
    base, base_problem = _base_for(spec, params, missing.get(f"{at}.api_base"))
    if base_problem:  # never send the key to the provider's default URL instead of the one meant
        disabled = f"{disabled}; {base_problem}" if disabled else base_problem
    if base and "@" in urlsplit(base).netloc:  # aiohttp refuses them beside an auth header
        userinfo = (
            "api_base carries credentials (user:password@host): the proxy sends the key in its "
            "own header; send them as extra_headers (e.g. Authorization) and drop them from the URL"
        )
        disabled = f"{disabled}; {userinfo}" if disabled else userinfo
    router = raw.router_settings
    timeout = (
        params.timeout or router.timeout or raw.litellm_settings.request_timeout or DEFAULT_TIMEOUT
    )
    return Deployment(
        id=dep_id,
        group=group or entry.model_name,
        provider=spec.name,
        wire=spec.wire,
        model=upstream,
        api_base=base,
        key=key,
        key_env=key_env,
        disabled_reason=disabled,
        rpm=_first(params.rpm, entry.rpm, router.rpm),
        tpm=_first(params.tpm, entry.tpm, router.tpm),
        timeout=timeout,
        stream_timeout=params.stream_timeout or timeout,
        max_retries=params.max_retries,
        weight=params.weight if params.weight is not None else 1.0,
        order=params.order if params.order is not None else 1,
        mock_response=params.mock_response,
        extra_headers=dict(params.extra_headers or {}),
        input_cost_per_token=info.input_cost_per_token if info else None,
        output_cost_per_token=info.output_cost_per_token if info else None,
        cache_read_cost_per_token=info.cache_read_input_token_cost if info else None,
        cache_write_cost_per_token=info.cache_creation_input_token_cost if info else None,
        max_input_tokens=info.max_input_tokens if info else None,
        max_output_tokens=(info.max_output_tokens or info.max_tokens) if info else None,
        defaults=_defaults(raw.litellm_settings.default_params, params),
        extra_body=dict(params.extra_body or {}),
        drop_params=params.drop_params,
        drop=tuple(params.additional_drop_params or ()),
        ssl_verify=_ssl_verify(raw, params, f"{where}: {at}.ssl_verify"),
        provider_params=cloud.params,
        credentials=cloud.credentials,
        max_budget=params.max_budget,
        budget_duration=params.budget_duration,
    )


def _tls(dep: Deployment) -> bool | str:
    return True if dep.ssl_verify is None else dep.ssl_verify


def _base_for(
    spec: ProviderSpec, params: LitellmParams, unset_var: str | None
) -> tuple[str, str | None]:
    """Returns (base URL, why it cannot be used or None)."""
    if unset_var:
        return "", f"api_base missing: environment variable {unset_var} is not set"
    base = params.api_base or (os.environ.get(spec.base_env) if spec.base_env else None)
    if not base:
        base = spec.default_base
        if spec.needs_base:
            return "", f"api_base missing: {spec.name}/ has no default, so name the server's URL"
        for var in _TEMPLATE.findall(base):
            value = os.environ.get(var)
            if not value:
                return "", f"api_base missing: environment variable {var} is not set"
            base = base.replace("{" + var + "}", value)
    base = base.rstrip("/")
    if spec.name in OLLAMA and not base.endswith("/v1"):
        base += "/v1"
    return base, None


def _defaults(shared: dict[str, Any], params: LitellmParams) -> dict[str, Any]:
    """litellm_settings.default_params, then the deployment's own."""
    out = dict(shared)
    for name in DEFAULT_KEYS:
        value = getattr(params, name)
        if value is not None:
            out[name] = value
    return out


def _ssl_verify(raw: RawConfig, params: LitellmParams, where: str) -> bool | str | None:
    value = params.ssl_verify
    if value is None:
        value = raw.litellm_settings.ssl_verify
    if isinstance(value, str):
        if value.lower() in ("false", "true"):
            return value.lower() == "true"
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(f"{where}: the CA bundle {value} does not exist")
        return str(path)
    return value


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _key_for(
    spec: ProviderSpec, params: LitellmParams, dotted: str, missing: dict[str, str]
) -> tuple[Secret | None, str | None, str | None]:
    """Returns (key, the variable it came from, why the deployment is disabled or None)."""
    if dotted in missing:
        unset = missing[dotted]
        return None, unset, f"key missing: environment variable {unset} is not set"
    if params.api_key:
        return Secret(params.api_key), None, None
    for var in (spec.key_env, *spec.also_key_env):
        value = os.environ.get(var) if var else None
        if var and value:
            return Secret(value), var, None
    if not spec.needs_key or spec.name == "mock" or (spec.name == "openai" and params.api_base):
        return None, None, None
    default_env = spec.key_env
    return (
        None,
        default_env,
        (
            f"key missing: no api_key and {default_env} is not set"
            if default_env
            else "key missing: no api_key"
        ),
    )
