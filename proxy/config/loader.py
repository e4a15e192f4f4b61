"""Loads a LiteLLM `config.yaml` (and `.env`) into one frozen `Config` the proxy is built from.

`load_config(path)` reads the file, applies `environment_variables`, resolves every
`os.environ/NAME`, checks types (`ConfigError` naming file, YAML path and reason), collects
unknown keys as warnings and resolves each `model_list` entry into a `Deployment`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from proxy.config import compat
from proxy.config.allowed_ips import allowed_networks
from proxy.config.callbacks import resolve_callbacks
from proxy.config.deployments import build_deployments
from proxy.config.master_key import require_master_key
from proxy.config.settings import ModelGroupAlias, RawConfig
from proxy.config.types import Config
from proxy.errors import ConfigError
from proxy.secret import Secret

ENV_PREFIX = "os.environ/"

DEMO_CONFIG = Path(__file__).parent.parent / "demo_config.yaml"


def find_config(explicit: str | None) -> tuple[Path, bool]:
    """Returns the config to use and whether it is the built-in demo (contract lookup order)."""
    for candidate in (
        explicit,
        os.environ.get("LLMPROXY_CONFIG"),
        "config.yaml",
        str(Path.home() / ".litellm" / "config.yaml"),
    ):
        if candidate:
            path = Path(candidate).expanduser()
            if candidate in (explicit, os.environ.get("LLMPROXY_CONFIG")) or path.is_file():
                return path, False
    return DEMO_CONFIG, True


def load_env_file(config_path: Path, explicit: str | None) -> Path | None:
    """Loads `.env` (explicit, beside the config, or ./.env); set variables win.

    Raises:
        ConfigError: an explicit `--env-file` that does not exist.
    """
    from dotenv import load_dotenv

    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: --env-file does not exist")
        load_dotenv(path, override=False)
        return path
    for path in (config_path.parent / ".env", Path(".env")):
        if path.is_file():
            load_dotenv(path, override=False)
            return path
    return None


def load_config(path: Path | str, *, demo: bool = False) -> Config:
    """Reads and validates a LiteLLM config file.

    Returns:
        The frozen Config; `warnings` lists unknown keys and disabled deployments.
    Raises:
        ConfigError: unreadable file, bad YAML, or a type error (message names file and path).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    data = _with_includes(data if data is not None else {}, path, ())
    return build_config(data, path=path, demo=demo)


def _with_includes(data: Any, path: Path, chain: tuple[Path, ...]) -> Any:
    """Merges LiteLLM's `include:` files (paths relative to the including file) into `data`:
    lists (model_list) are joined, sections merged key by key, the including file winning.

    Raises:
        ConfigError: an include that is not a list of paths, unreadable, invalid or circular.
    """
    if not isinstance(data, dict) or "include" not in data:
        return data
    includes = data.pop("include")
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include: expected a list of file paths")
    here = (*chain, path.resolve())
    for name in includes:
        target = (path.parent / name).expanduser()
        if target.resolve() in here:
            raise ConfigError(f"{path}: include: {name} includes itself")
        try:
            loaded = yaml.safe_load(target.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: include: cannot read {target} ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{target}: invalid YAML: {exc}") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise ConfigError(f"{target}: the top level must be a mapping of sections")
        _merge(data, _with_includes(loaded, target, here))
    return data


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        mine = into.get(key)
        if isinstance(mine, list) and isinstance(value, list):
            into[key] = [*mine, *value]
        elif isinstance(mine, dict) and isinstance(value, dict):
            into[key] = {**value, **mine}
        elif key not in into:
            into[key] = value


def build_config(data: Any, *, path: Path | None = None, demo: bool = False) -> Config:
    """Validates an already-parsed config document; see load_config."""
    where = str(path) if path else "<config>"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections")
    warnings: list[str] = []
    _apply_environment_variables(data.get("environment_variables"), where)
    missing: dict[str, str] = {}
    resolved = _resolve_env(data, "", missing)
    compat.normalize(resolved, where, warnings)
    for i, item in enumerate(resolved.get("model_list") or []):
        params = item.get("litellm_params") if isinstance(item, dict) else None
        if isinstance(params, dict) and f"model_list[{i}].litellm_params.model" in missing:
            params["model"] = ""  # disabled below, naming the variable
    try:
        raw = RawConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_format_validation(where, exc, resolved)) from None
    _collect_unknown(raw, "", warnings)
    for dotted, var in missing.items():
        if (
            not dotted.endswith((".api_key", ".api_base", ".litellm_params.model"))
            and dotted != "general_settings.master_key"
        ):
            warnings.append(f"{dotted}: environment variable {var} is not set")
    deployments = build_deployments(raw, missing, warnings, where)
    if not deployments:
        warnings.append("model_list: no models configured, so every request gets 404")
    settings = raw.litellm_settings
    router = raw.router_settings
    master = raw.general_settings.master_key
    require_master_key(missing, where)
    db = raw.general_settings.database_url
    groups = {d.group for d in deployments}
    aliases, hidden = _aliases(router.model_group_alias, groups, warnings)
    names = groups | set(aliases)
    fallbacks = _fallbacks(router.fallbacks or settings.fallbacks, "fallbacks", names, warnings)
    ctx = _fallbacks(
        router.context_window_fallbacks or settings.context_window_fallbacks,
        "context_window_fallbacks",
        names,
        warnings,
    )
    for alias, target in aliases.items():  # an alias falls back as its target group does
        for table in (fallbacks, ctx):
            if alias not in table and target in table:
                table[alias] = tuple(t for t in table[target] if t != alias)
    num_retries = router.num_retries if router.num_retries is not None else settings.num_retries
    callbacks = resolve_callbacks(settings, warnings)
    return Config(
        callbacks=callbacks,
        deployments=tuple(deployments),
        router=router,
        litellm=settings,
        master_key=Secret(master) if master else None,
        database_url=Secret(db) if db else None,
        usage_retention_days=raw.general_settings.usage_retention_days,
        allowed_hosts=tuple(raw.general_settings.allowed_hosts),
        client_read_timeout=raw.general_settings.client_read_timeout,
        client_idle_timeout=raw.general_settings.client_idle_timeout,
        max_client_connections=raw.general_settings.max_client_connections,
        background_health_checks=raw.general_settings.background_health_checks,
        health_check_interval=raw.general_settings.health_check_interval,
        store_prompts=raw.general_settings.store_prompts_in_spend_logs,
        alerting=tuple(raw.general_settings.alerting),
        alerting_webhook_url=(
            Secret(url) if (url := raw.general_settings.alerting_webhook_url) else None
        ),
        num_retries=2 if num_retries is None else num_retries,
        fallbacks=fallbacks,
        context_window_fallbacks=ctx,
        warnings=tuple(warnings),
        path=path,
        demo=demo,
        aliases=aliases,
        hidden_aliases=hidden,
        allowed_ips=allowed_networks(raw.general_settings.allowed_ips, where),
    )


def _apply_environment_variables(section: Any, where: str) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: environment_variables: expected a mapping of NAME: value")
    for name, value in section.items():
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            continue
        os.environ.setdefault(str(name), str(value))


def _resolve_env(node: Any, dotted: str, missing: dict[str, str]) -> Any:
    """Replaces every `os.environ/NAME` string; unset names become None and are recorded."""
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        var = node[len(ENV_PREFIX) :]
        value = os.environ.get(var)
        if value is None or value == "":
            missing[dotted] = var
            return None
        return value
    if isinstance(node, dict):
        return {k: _resolve_env(v, _join(dotted, str(k)), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, f"{dotted}[{i}]", missing) for i, v in enumerate(node)]
    return node


def _join(dotted: str, key: str) -> str:
    return f"{dotted}.{key}" if dotted else key


def _format_validation(where: str, exc: ValidationError, data: Any) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = _dotted(err["loc"])
        value = _lookup(data, err["loc"])
        got = "" if value is _MISSING else f", got {value!r}"
        lines.append(f"{where}: {loc}: {_reason(err)}{got}")
    return "\n".join(lines)


_MISSING = object()


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _reason(err: Any) -> str:
    kind = err["type"]
    simple = {
        "int_parsing": "expected an integer",
        "int_type": "expected an integer",
        "int_from_float": "expected an integer",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "string_type": "expected a string",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "missing": "required key is missing",
        "dict_type": "expected a mapping",
        "list_type": "expected a list",
        "model_type": "expected a mapping",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"expected one of {err['ctx']['expected']}"
    return str(err["msg"]).lower()


def _collect_unknown(model: BaseModel, dotted: str, warnings: list[str]) -> None:
    for key in model.model_extra or {}:
        name = _join(dotted, key)
        if compat.is_harmless(name):
            warnings.append(f"{name}: {compat.HARMLESS_NOTE}")
        else:
            warnings.append(f"{name}: unknown or unsupported key, ignored (LiteLLM acts on it)")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _collect_unknown(value, _join(dotted, name), warnings)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _collect_unknown(item, f"{_join(dotted, name)}[{i}]", warnings)


def _aliases(
    spec: Mapping[str, str | ModelGroupAlias], groups: set[str], warnings: list[str]
) -> tuple[dict[str, str], frozenset[str]]:
    """Resolves `router_settings.model_group_alias` (LiteLLM's alias -> group map).

    An entry is `alias: group` or `alias: {model: group, hidden: bool}`. An alias may name
    another alias (followed, loops refused). An alias whose target is no configured group, or
    only a wildcard group (which would forward the alias's own name upstream), is a warning and
    serves nothing; so is an alias that is itself a model_name (the group wins).

    Returns:
        (alias -> target model_name, the hidden aliases).
    """
    where = "router_settings.model_group_alias"
    wanted: dict[str, str] = {}
    hidden: set[str] = set()
    for alias, value in spec.items():
        if isinstance(value, ModelGroupAlias):
            for key in value.model_extra or {}:
                warnings.append(f"{where}.{alias}.{key}: unknown or unsupported key, ignored")
            target, hide = value.model, value.hidden
        else:
            target, hide = value, False
        if alias in groups:
            warnings.append(
                f"{where}.{alias}: '{alias}' is already a model_name; the alias is ignored"
            )
            continue
        wanted[alias] = target
        if hide:
            hidden.add(alias)
    resolved: dict[str, str] = {}
    for alias, target in wanted.items():
        seen = {alias}
        while target in wanted and target not in seen:
            seen.add(target)
            target = wanted[target]
        if target in seen:
            warnings.append(f"{where}.{alias}: the aliases loop, so '{alias}' serves nothing")
        elif target not in groups or target.endswith("*"):
            why = (
                "is a wildcard group (an alias must name a model_name without '*')"
                if target in groups or any(_wildcard_serves(g, target) for g in groups)
                else "is not a model_name"
            )
            warnings.append(f"{where}.{alias}: '{target}' {why}, so '{alias}' serves nothing")
        else:
            resolved[alias] = target
    return resolved, frozenset(hidden & set(resolved))


def _wildcard_serves(group: str, name: str) -> bool:
    return group.endswith("*") and name.startswith(group[:-1])


def _fallbacks(
    spec: list[dict[str, list[str]]] | None, name: str, groups: set[str], warnings: list[str]
) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in spec or []:
        for group, targets in item.items():
            for t in [group, *targets]:
                if t not in groups and not any(
                    g.endswith("*") and t.startswith(g[:-1]) for g in groups
                ):
                    warnings.append(f"router_settings.{name}: '{t}' is not a model_name")
            out[group] = tuple(t for t in targets if t != group)
    return out


def require_package(module: str, setting: str, extra: str = "scale") -> None:
    """Checks that an optional dependency a setting needs is installed.

    Raises:
        ConfigError: the setting is used but the package is missing (how to install it).
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{setting} is set, but the Python package '{module}' is not installed: "
            f"pip install 'llmproxy-tui[{extra}]'"
        )
