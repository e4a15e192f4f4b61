"""What a reload changes: the groups and deployments added, removed and changed between two
configs, and the settings that cannot change while the proxy runs (kept at their old values
until a restart). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from proxy.config.types import Config, Deployment

RESTART_ROUTER = ("redis_host", "redis_port", "redis_password", "redis_url", "redis_namespace")
"""router_settings keys read once at start (the links to Redis)."""


@dataclass(frozen=True)
class ConfigChanges:
    """The difference between the config serving and the one a reload read."""

    groups_added: tuple[str, ...] = ()
    groups_removed: tuple[str, ...] = ()
    groups_changed: tuple[str, ...] = ()
    """Groups in both whose deployments, fallbacks or alias target changed."""
    deployments_added: tuple[str, ...] = ()
    deployments_removed: tuple[str, ...] = ()
    deployments_changed: tuple[str, ...] = ()
    """Same id, different settings (key, api_base, limits...): their state starts afresh."""
    settings_changed: tuple[str, ...] = ()
    """Sections whose other settings changed, applied at once (`router_settings`...)."""
    restart_needed: tuple[str, ...] = ()
    """Settings that changed in the file but keep their old value until a restart."""

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in dataclasses.fields(self))

    def as_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def summary(self) -> str:
        """Returns one line: what changed, e.g. `groups added: fast; deployments changed: a`."""
        parts = [
            f"{f.name.replace('_', ' ')}: {', '.join(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) and f.name != "restart_needed"
        ]
        if self.restart_needed:
            parts.append(f"needs a restart (kept): {', '.join(self.restart_needed)}")
        return "; ".join(parts) or "nothing changed"


def compare(old: Config, new: Config) -> ConfigChanges:
    """Returns what changes from `old` to `new` (see ConfigChanges)."""
    old_deps = {d.id: d for d in old.deployments}
    new_deps = {d.id: d for d in new.deployments}
    old_groups, new_groups = old.groups, new.groups
    changed_groups = [
        name
        for name in new_groups
        if name in old_groups
        and (
            _ids(old_groups[name]) != _ids(new_groups[name])
            or any(old_deps[i] != new_deps[i] for i in _ids(new_groups[name]))
            or old.fallbacks.get(name) != new.fallbacks.get(name)
            or old.context_window_fallbacks.get(name) != new.context_window_fallbacks.get(name)
        )
    ]
    return ConfigChanges(
        groups_added=tuple(g for g in new_groups if g not in old_groups),
        groups_removed=tuple(g for g in old_groups if g not in new_groups),
        groups_changed=tuple(changed_groups),
        deployments_added=tuple(i for i in new_deps if i not in old_deps),
        deployments_removed=tuple(i for i in old_deps if i not in new_deps),
        deployments_changed=tuple(
            i for i, dep in new_deps.items() if i in old_deps and old_deps[i] != dep
        ),
        settings_changed=tuple(_live_settings(old, new)),
        restart_needed=tuple(restart_needed(old, new)),
    )


def _ids(deps: list[Deployment]) -> list[str]:
    return [d.id for d in deps]


def restart_needed(old: Config, new: Config) -> list[str]:
    """Returns the settings that differ but are read once at start, by their YAML names."""
    out = [
        name
        for name, a, b in (
            ("general_settings.master_key", old.master_key, new.master_key),
            ("general_settings.database_url", old.database_url, new.database_url),
            (
                "general_settings.usage_retention_days",
                old.usage_retention_days,
                new.usage_retention_days,
            ),
            ("general_settings.allowed_ips", old.allowed_ips, new.allowed_ips),
            ("general_settings.allowed_hosts", old.allowed_hosts, new.allowed_hosts),
            (
                "general_settings.client_read_timeout",
                old.client_read_timeout,
                new.client_read_timeout,
            ),
            (
                "general_settings.client_idle_timeout",
                old.client_idle_timeout,
                new.client_idle_timeout,
            ),
            (
                "general_settings.max_client_connections",
                old.max_client_connections,
                new.max_client_connections,
            ),
            ("litellm_settings.cache", old.litellm.cache, new.litellm.cache),
            ("litellm_settings.cache_params", old.litellm.cache_params, new.litellm.cache_params),
            ("litellm_settings callbacks (otel, langfuse)", old.callbacks, new.callbacks),
        )
        if a != b
    ]
    out += [
        f"router_settings.{key}"
        for key in RESTART_ROUTER
        if getattr(old.router, key, None) != getattr(new.router, key, None)
    ]
    if _tls(old) != _tls(new):
        out.append("model_list litellm_params.ssl_verify")
    for name in ("alerting", "alerting_webhook_url"):  # read by observe/alerts.py at start
        if getattr(old, name, None) != getattr(new, name, None):
            out.append(f"general_settings.{name}")
    return out


def _tls(config: Config) -> set[tuple[str, Any]]:
    return {
        (d.api_base, d.ssl_verify)
        for d in config.deployments
        if d.ssl_verify is not None and d.ssl_verify is not True
    }


def keep_restart_settings(old: Config, new: Config) -> Config:
    """Returns `new` with every setting `restart_needed` names at its value in `old`."""
    router = new.router.model_copy(update={k: getattr(old.router, k, None) for k in RESTART_ROUTER})
    litellm = new.litellm.model_copy(
        update={"cache": old.litellm.cache, "cache_params": old.litellm.cache_params}
    )
    return dataclasses.replace(
        new,
        router=router,
        litellm=litellm,
        master_key=old.master_key,
        database_url=old.database_url,
        usage_retention_days=old.usage_retention_days,
        allowed_ips=old.allowed_ips,
        allowed_hosts=old.allowed_hosts,
        client_read_timeout=old.client_read_timeout,
        client_idle_timeout=old.client_idle_timeout,
        max_client_connections=old.max_client_connections,
        callbacks=old.callbacks,
    )


def _live_settings(old: Config, new: Config) -> list[str]:
    """Returns the sections whose live-applied settings changed (beyond the deployments)."""
    out = []
    if _without(old.router, RESTART_ROUTER) != _without(new.router, RESTART_ROUTER):
        out.append("router_settings")
    if _without(old.litellm, ("cache", "cache_params")) != _without(
        new.litellm, ("cache", "cache_params")
    ):
        out.append("litellm_settings")
    if (old.num_retries, old.fallbacks, old.context_window_fallbacks) != (
        new.num_retries,
        new.fallbacks,
        new.context_window_fallbacks,
    ):
        out.append("retries and fallbacks")
    if (old.aliases, old.hidden_aliases) != (new.aliases, new.hidden_aliases):
        out.append("router_settings.model_group_alias")
    if (old.background_health_checks, old.health_check_interval) != (
        new.background_health_checks,
        new.health_check_interval,
    ):
        out.append("general_settings background health checks")
    return list(dict.fromkeys(out))


def _without(model: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump()
    for key in keys:
        data.pop(key, None)
    return data
