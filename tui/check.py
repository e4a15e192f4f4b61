"""`llmproxy-tui --check`: the resolved groups and deployments, keys redacted, as plain text."""

from __future__ import annotations

from proxy.config.callbacks import served_elsewhere
from proxy.config.compat import HARMLESS_NOTE
from proxy.config.types import Config, Deployment
from proxy.scale.connection import RedisTarget, hide_password
from proxy.secret import redact_url


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
    for line in callback_lines(config):
        print(line)
    if config.allowed_ips:
        print(f"allowed_ips: {', '.join(str(net) for net in config.allowed_ips)}")
    for name in ("retry_policy", "allowed_fails_policy"):
        policy = getattr(router, name, None)
        if policy:
            items = ", ".join(f"{k} {v}" for k, v in policy.items())
            print(f"{name}: {items}")
    for name, budget in router.provider_budget_config.items():
        print(f"provider {name} budget ${budget.budget_limit:g} per {budget.time_period}")
    for group, deps in config.groups.items():
        fallbacks = config.fallbacks.get(group)
        extra = f"  fallbacks -> {', '.join(fallbacks)}" if fallbacks else ""
        print(f"\ngroup {group}{extra}")
        for dep in deps:
            print(_deployment_line(dep))
    _print_warnings(config.warnings)


def _deployment_line(dep: Deployment) -> str:
    """One deployment: served or DISABLED and why, where, with which key (redacted), limits,
    timeout, weight, order, and what it sends or drops beyond the client's request."""
    if dep.disabled_reason:
        where = f" at {redact_url(dep.api_base)}" if dep.api_base else ""
        return f"  {dep.id}: {dep.provider}/{dep.model}{where}; DISABLED ({dep.disabled_reason})"
    limits = ", ".join(
        f"{name} {value}"
        for name, value in (("rpm", dep.rpm), ("tpm", dep.tpm))
        if value is not None
    )
    line = (
        f"  {dep.id}: {dep.provider}/{dep.model} at {redact_url(dep.api_base or '(local)')}; "
        f"key {dep.key_redacted}; {limits or 'no limits'}; timeout "
        f"{dep.timeout:g}s; weight {dep.weight:g}; order {dep.order}"
    )
    if dep.defaults:
        line += "; defaults " + ", ".join(_default(k, v) for k, v in dep.defaults.items())
    if dep.extra_body:
        line += f"; extra_body {', '.join(dep.extra_body)}"
    if dep.drop:
        line += f"; never sends {', '.join(dep.drop)}"
    if dep.drop_params is not None:
        line += f"; drop_params {str(dep.drop_params).lower()}"
    if dep.max_budget is not None:
        line += f"; budget ${dep.max_budget:g} per {dep.budget_duration or 'ever (never resets)'}"
    if dep.ssl_verify is False:
        line += "; TLS certificate NOT checked"
    elif isinstance(dep.ssl_verify, str):
        line += f"; TLS checked with {dep.ssl_verify}"
    return line + "; ok"


def _default(name: str, value: object) -> str:
    """`temperature=0.2`; a name only for anything but a number or a short word (extra_body
    values may be anything, a secret included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return name
    text = str(value)
    return f"{name}={text}" if len(text) <= 16 and name in _SHOWN else name


_SHOWN = frozenset({"max_tokens", "temperature", "top_p", "reasoning_effort"})


def _print_warnings(warnings: tuple[str, ...]) -> None:
    """The warnings, with ignored keys that change nothing on one quiet line at the end."""
    quiet = [w.split(":", 1)[0] for w in warnings if w.endswith(HARMLESS_NOTE)]
    loud = [w for w in warnings if not w.endswith(HARMLESS_NOTE)]
    if loud:
        print("\nwarnings:")
        for warning in loud:
            print(f"  - {warning}")
    if quiet:
        print(f"\nignored, no effect on serving: {', '.join(quiet)}")


def _cache_line(config: Config) -> str:
    cache = config.cache
    if cache is None:
        return "off"
    line = f"{cache.type}, ttl {cache.ttl:g}s"
    if cache.type == "redis":
        router = config.router
        if cache.url or cache.host or cache.port:
            where = RedisTarget(cache.url, cache.host, cache.port).describe()
            secret = cache.password
        else:
            where = _router_target(config).describe()
            secret = router.redis_password
        line += f" at {where}" + (" (password set)" if secret else "")
        line += f", namespace {cache.namespace or 'llmproxy:cache'}"
    return line


def _router_target(config: Config) -> RedisTarget:
    r = config.router
    return RedisTarget(r.redis_url, r.redis_host, r.redis_port, r.redis_password)


def callback_lines(config: Config) -> list[str]:
    """What `litellm_settings.*callback*` does: a span per request to where, on which
    outcomes (the endpoint's credentials never shown), and the callbacks served elsewhere."""
    lines = []
    for sink in config.callbacks:
        on = {(True, False): "successful ", (False, True): "failed "}.get(
            (sink.on_success, sink.on_failure), ""
        )
        auth = f", headers {', '.join(sink.headers)} set" if sink.headers else ""
        lines.append(
            f"callback {sink.name}: a span per {on}request -> "
            f"{redact_url(sink.endpoint)} (OTLP/HTTP, service {sink.service_name}{auth})"
        )
    lines += [f"callback {line}" for line in served_elsewhere(config.litellm)]
    return lines
