"""`llmproxy-tui --check`: the resolved groups and deployments, keys redacted, as plain text."""

from __future__ import annotations

from proxy.config.types import Config
from proxy.scale.connection import RedisTarget, hide_password


def print_check(config: Config) -> None:
    """Prints what the proxy would serve; never a key beyond its last 4 characters."""
    source = "built-in demo config (mock models, no keys)" if config.demo else str(config.path)
    print(f"config: {source}")
    router = config.router
    print(
        f"routing: {router.routing_strategy}, num_retries {config.num_retries}, "
        f"allowed_fails {router.allowed_fails}, cooldown_time {router.cooldown_time:g}s"
    )
    print(f"cache: {_cache_line(config)}")
    print(f"master key: {config.master_key.redacted if config.master_key else 'none (no auth)'}")
    if router.redis_url or router.redis_host or router.redis_port:
        where = _router_target(config).describe()
        namespace = getattr(router, "redis_namespace", None)
        print(
            f"redis (shared cooldowns, rpm/tpm, in-flight, latency): {where}"
            + (" (password set)" if router.redis_password else "")
            + (f", namespace {namespace}" if namespace else "")
        )
    if config.database_url:
        url = config.database_url.reveal()
        shared = url.startswith(("postgresql://", "postgres://"))
        kind = "postgresql, shared" if shared else "not served: only postgresql://; SQLite used"
        print(f"usage database: {hide_password(url)} ({kind})")
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


def _cache_line(config: Config) -> str:
    cache = config.cache
    if cache is None:
        return "off"
    line = f"{cache.type}, ttl {cache.ttl:g}s"
    if cache.type == "redis":
        router = config.router
        if cache.host or cache.port:
            where = RedisTarget(host=cache.host, port=cache.port).describe()
            secret = cache.password
        else:
            where = (
                router.redis_url
                or f"{router.redis_host or '127.0.0.1'}:{router.redis_port or 6379}"
            )
            secret = router.redis_password
        line += f" at {where}" + (" (password set)" if secret else "")
        line += f", namespace {cache.namespace or 'llmproxy:cache'}"
    return line


def _router_target(config: Config) -> RedisTarget:
    r = config.router
    return RedisTarget(r.redis_url, r.redis_host, r.redis_port, r.redis_password)
