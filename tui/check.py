"""`llmproxy-tui --check`: the resolved groups and deployments, keys redacted, as plain text."""

from __future__ import annotations

from proxy.config import Config


def print_check(config: Config) -> None:
    """Prints what the proxy would serve; never a key beyond its last 4 characters."""
    source = "built-in demo config (mock models, no keys)" if config.demo else str(config.path)
    print(f"config: {source}")
    router = config.router
    print(
        f"routing: {router.routing_strategy}, num_retries {config.num_retries}, "
        f"allowed_fails {router.allowed_fails}, cooldown_time {router.cooldown_time:g}s"
    )
    cache = config.cache
    print(f"cache: {'off' if cache is None else f'{cache.type}, ttl {cache.ttl:g}s'}")
    print(f"master key: {config.master_key.redacted if config.master_key else 'none (no auth)'}")
    if router.redis_url or router.redis_host:
        where = router.redis_url or f"{router.redis_host}:{router.redis_port or 6379}"
        print(
            f"redis: {_hide_password(where)}" + (" (password set)" if router.redis_password else "")
        )
    if config.database_url:
        print(f"usage database: {_hide_password(config.database_url.reveal())}")
    for group, deps in config.groups.items():
        fallbacks = config.fallbacks.get(group)
        extra = f"  fallbacks -> {', '.join(fallbacks)}" if fallbacks else ""
        print(f"\ngroup {group}{extra}")
        for dep in deps:
            limits = ", ".join(
                f"{name} {value}"
                for name, value in (("rpm", dep.rpm), ("tpm", dep.tpm))
                if value is not None
            )
            state = f"DISABLED ({dep.disabled_reason})" if dep.disabled_reason else "ok"
            print(
                f"  {dep.id}: {dep.provider}/{dep.model} at {dep.api_base or '(local)'}; "
                f"key {dep.key_redacted}; {limits or 'no limits'}; timeout "
                f"{dep.timeout:g}s; weight {dep.weight:g}; order {dep.order}; {state}"
            )
    if config.warnings:
        print("\nwarnings:")
        for warning in config.warnings:
            print(f"  - {warning}")


def _hide_password(url: str) -> str:
    """Replaces the password in `scheme://user:password@host` with `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
