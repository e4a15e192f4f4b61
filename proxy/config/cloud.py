"""What the cloud providers (Azure OpenAI, Azure AI, AWS Bedrock) need beyond a key, resolved
once at load time from a deployment's litellm_params and the environment variables LiteLLM
reads, so their adapters stay pure: api versions, bases, regions and AWS credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.config.settings import LitellmParams
from proxy.config.vertex import resolve_vertex
from proxy.secret import Secret

AZURE_DEFAULT_VERSION = "2024-10-21"
"""The api-version sent to `azure/` when neither api_version nor AZURE_API_VERSION is set
(the latest GA version when this was written)."""
AZURE_AI_DEFAULT_VERSION = "2024-05-01-preview"
"""The api-version of Azure AI model inference (`/models/chat/completions`)."""
_AZURE_ENV = {"azure": ("AZURE_API_BASE", "AZURE_API_VERSION", AZURE_DEFAULT_VERSION),
              "azure_ai": ("AZURE_AI_API_BASE", "AZURE_AI_API_VERSION",
                           AZURE_AI_DEFAULT_VERSION)}  # fmt: skip
_AWS_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_REGION_ENV = ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")
_NAMED = ("api_version", "azure_ad_token", *_AWS_KEYS, "aws_region_name", "aws_profile_name")


@dataclass(frozen=True)
class CloudParams:
    """A deployment's provider settings (`Deployment.provider_params`), its credentials
    (`Deployment.credentials`), the base URL they imply, and why it cannot serve, if so."""

    params: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Secret] = field(default_factory=dict)
    api_base: str | None = None
    disabled: str | None = None


def resolve(
    provider: str, params: LitellmParams, has_key: bool, missing: Mapping[str, str], at: str
) -> CloudParams:
    """Returns what `provider` needs for the deployment with these `params` (the plain
    providers need nothing). `missing` maps the dotted path of each `os.environ/` value
    whose variable is unset to that variable; `at` is this entry's `model_list[i]` path.

    Raises:
        ConfigError: a Bedrock deployment, but botocore (the `[aws]` extra) is missing.
    """
    if provider == "vertex_ai":  # project, location and service account: config/vertex.py
        return CloudParams(*resolve_vertex(params, missing, at))
    if provider not in _AZURE_ENV and provider != "bedrock":
        return CloudParams()
    paths = (f"{at}.litellm_params.{name}" for name in _NAMED)
    unset = [missing[path] for path in paths if path in missing]
    if unset:
        return CloudParams(disabled=f"environment variable {unset[0]} is not set")
    if provider == "bedrock":
        return _bedrock(params, at)
    return _azure(provider, params, has_key)


def _azure(provider: str, params: LitellmParams, has_key: bool) -> CloudParams:
    base_env, version_env, default_version = _AZURE_ENV[provider]
    version = params.api_version or os.environ.get(version_env) or default_version
    credentials = {}
    if params.azure_ad_token:
        credentials["azure_ad_token"] = Secret(params.azure_ad_token)
    base = None if params.api_base else os.environ.get(base_env)
    disabled = None
    if not (params.api_base or base):
        disabled = f"api_base missing: no api_base and {base_env} is not set"
    elif not (has_key or credentials):
        key_env = "AZURE_API_KEY" if provider == "azure" else "AZURE_AI_API_KEY"
        disabled = f"key missing: no api_key, no azure_ad_token and {key_env} is not set"
    return CloudParams({"api_version": version}, credentials, base, disabled)


def _bedrock(params: LitellmParams, at: str) -> CloudParams:
    from proxy.config.loader import require_package

    require_package("botocore", f"{at}.litellm_params.model: bedrock/", extra="aws")
    region = params.aws_region_name or next(
        (os.environ[name] for name in _REGION_ENV if os.environ.get(name)), None
    )
    out: dict[str, str] = {}
    if params.aws_access_key_id and params.aws_secret_access_key:
        keys = {n: getattr(params, n) for n in _AWS_KEYS if getattr(params, n)}
    else:
        keys, region = _aws_chain(params.aws_profile_name, region)
    if region is None:
        return CloudParams(disabled="region missing: no aws_region_name and AWS_REGION is not set")
    out["aws_region_name"] = region
    if not keys:
        why = "no aws_access_key_id / aws_secret_access_key and none in the AWS credential chain"
        return CloudParams(out, disabled=f"credentials missing: {why}")
    endpoint = params.aws_bedrock_runtime_endpoint or os.environ.get("AWS_BEDROCK_RUNTIME_ENDPOINT")
    base = (
        None if params.api_base else endpoint or f"https://bedrock-runtime.{region}.amazonaws.com"
    )
    return CloudParams(out, {n: Secret(v) for n, v in keys.items()}, base)


def _aws_chain(profile: str | None, region: str | None) -> tuple[dict[str, str], str | None]:
    """The standard AWS chain (environment, shared files, SSO, container and instance roles)
    read once through botocore; returns (the keys found, the region, else the profile's)."""
    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        found = session.get_credentials()
        region = region or _text(session.get_config_variable("region"))
    except botocore.exceptions.BotoCoreError:
        return {}, region
    if found is None:
        return {}, region
    frozen = found.get_frozen_credentials()
    if not (frozen.access_key and frozen.secret_key):
        return {}, region
    keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}
    if frozen.token:
        keys["aws_session_token"] = frozen.token
    return keys, region


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
