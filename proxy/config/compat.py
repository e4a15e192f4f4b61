"""LiteLLM spellings and values read into the forms `settings.py` validates (before validation).

LiteLLM accepts several names for one setting and values we serve differently; each is mapped
here with a warning when behaviour differs, so a user's file loads instead of being refused.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ConfigError

_CACHE_SPELLINGS = {
    "redis_url": "url",
    "redis_host": "host",
    "redis_port": "port",
    "redis_password": "password",
}
# LiteLLM cache types -> the exact-match store we serve in their place.
_CACHE_TYPES = {
    "local": "local",
    "redis": "redis",
    "redis-semantic": "redis",
    "qdrant-semantic": "local",
}

POLICY_KINDS = (
    "BadRequestError",
    "AuthenticationError",
    "TimeoutError",
    "RateLimitError",
    "ContentPolicyViolationError",
    "InternalServerError",
)
"""LiteLLM's error kinds, as retry_policy (`<kind>Retries`) and allowed_fails_policy
(`<kind>AllowedFails`) name them."""
_POLICY_SUFFIX = {"retry_policy": "Retries", "allowed_fails_policy": "AllowedFails"}

HARMLESS = frozenset(
    {
        "litellm_settings.set_verbose",
        "litellm_settings.json_logs",
        "litellm_settings.turn_off_message_logging",
        "litellm_settings.redact_user_api_key_info",
        "litellm_settings.telemetry",
        "litellm_settings.suppress_debug_info",
        "litellm_settings.enable_preview_features",
        "litellm_settings.log_raw_request_response",
        "general_settings.store_model_in_db",
        "general_settings.ui_access_mode",
        "general_settings.proxy_batch_write_at",
        "general_settings.database_connection_pool_limit",
        "general_settings.database_connection_timeout",
        "general_settings.disable_spend_logs",
        "general_settings.disable_error_logs",
        "general_settings.disable_adding_master_key_hash_to_db",
        "general_settings.allow_requests_on_db_unavailable",
        "general_settings.maximum_spend_logs_retention_period",
        "general_settings.disable_master_key_return",
        "general_settings.proxy_budget_rescheduler_min_time",
        "general_settings.proxy_budget_rescheduler_max_time",
        "general_settings.disable_reset_budget",
        "general_settings.ui_username",
        "general_settings.ui_password",
        "router_settings.set_verbose",
        "router_settings.debug_level",
        "model_list.model_info.mode",
        "model_list.model_info.base_model",
        "model_list.model_info.description",
        "model_list.model_info.supports_function_calling",
        "model_list.model_info.supports_vision",
        "model_list.model_info.supports_reasoning",
        "model_list.model_info.supports_prompt_caching",
        "model_list.model_info.supports_tool_choice",
        "model_list.model_info.access_groups",
    }
)
"""Ignored keys that change nothing about what is served (UI, database housekeeping, logs'
verbosity, metadata); --check lists them on one quiet line."""
HARMLESS_NOTE = "ignored (no effect on serving)"


def is_harmless(dotted: str) -> bool:
    """Whether an ignored key (`model_list[3].model_info.mode`) is one of `HARMLESS`."""
    plain = "".join(part.split("[", 1)[0] + "." for part in dotted.split(".")).rstrip(".")
    return plain in HARMLESS


def normalize(doc: dict[str, Any], where: str, warnings: list[str]) -> None:
    """Rewrites LiteLLM's other spellings in place and refuses what we cannot honour.

    Raises:
        ConfigError: `general_settings.custom_auth` (a Python hook we cannot run: skipping
            someone's access control silently is worse than not starting).
    """
    general = doc.get("general_settings")
    if isinstance(general, dict) and general.get("custom_auth"):
        raise ConfigError(
            f"{where}: general_settings.custom_auth: {general['custom_auth']!r} is a Python "
            "auth hook, which llmproxy-tui cannot run; remove it and protect the proxy with "
            "master_key (and virtual keys) instead. The proxy refuses to start rather than "
            "skip your access control."
        )
    router = doc.get("router_settings")
    if isinstance(router, dict):
        for name, suffix in _POLICY_SUFFIX.items():
            if isinstance(policy := router.get(name), dict):
                router[name] = _policy(policy, f"router_settings.{name}", suffix, warnings)
    settings = doc.get("litellm_settings")
    if isinstance(settings, dict) and isinstance(params := settings.get("cache_params"), dict):
        settings["cache_params"] = _cache_params(params, warnings)


def _policy(policy: dict[str, Any], where: str, suffix: str, warnings: list[str]) -> dict[str, Any]:
    known = {kind + suffix for kind in POLICY_KINDS}
    out = {}
    for key, value in policy.items():
        if key in known:
            out[key] = value
        else:
            warnings.append(
                f"{where}.{key}: not one of LiteLLM's error kinds "
                f"({', '.join(sorted(known))}), ignored"
            )
    return out


def _cache_params(params: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    out = dict(params)
    for spelling, name in _CACHE_SPELLINGS.items():
        if spelling in out:
            value = out.pop(spelling)
            out.setdefault(name, value)
    kind = out.get("type")
    if isinstance(kind, str) and kind in _CACHE_TYPES and _CACHE_TYPES[kind] != kind:
        served = _CACHE_TYPES[kind]
        store = "Redis" if served == "redis" else "in-memory"
        warnings.append(
            f"litellm_settings.cache_params.type: '{kind}' is not served; the exact-match "
            f"{store} cache is used instead (only identical requests hit)"
        )
        out["type"] = served
    for name in ("similarity_threshold", "redis_semantic_cache_embedding_model"):
        if name in out:
            out.pop(name)
            warnings.append(
                f"litellm_settings.cache_params.{name}: semantic caching is not served, ignored"
            )
    return out
