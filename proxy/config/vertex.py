"""What a `vertex_ai/` deployment needs beyond its model, resolved once at load time as LiteLLM
resolves it: the project, the location, the service-account credentials, the regional base.

`vertex_credentials` is a path to a service-account JSON file or the JSON itself (a string,
or a mapping in the YAML); without it, GOOGLE_APPLICATION_CREDENTIALS names the file, else
Application Default Credentials are asked for at the first request. The token itself is
fetched and refreshed at request time (`proxy/routing/google_auth.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from proxy.config.settings import LitellmParams
from proxy.secret import Secret

CREDENTIALS = "vertex_credentials"
"""`Deployment.credentials` key of the service account JSON text."""
DEFAULT_LOCATION = "us-central1"
KINDS = ("service_account", "authorized_user")
"""The credentials documents served: a service account key, or a user's (gcloud's ADC file)."""
_PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
_LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION")
_NAMED = ("vertex_project", "vertex_location", "vertex_credentials")


class VertexParams(NamedTuple):
    """The `CloudParams` fields for a Vertex deployment."""

    params: dict[str, str]
    credentials: dict[str, Secret]
    api_base: str | None
    disabled: str | None


def resolve_vertex(params: LitellmParams, missing: Mapping[str, str], at: str) -> VertexParams:
    """Returns the project, location, credentials and base of a `vertex_ai/` deployment, or
    why it cannot serve (an unset variable, unreadable credentials, no project).

    Raises:
        ConfigError: google-auth (the `[google]` extra) is not installed.
    """
    from proxy.config.loader import require_package

    require_package("google.auth", f"{at}.litellm_params.model: vertex_ai/", extra="google")
    unset = [missing[p] for p in (f"{at}.litellm_params.{n}" for n in _NAMED) if p in missing]
    if unset:
        return VertexParams({}, {}, None, f"environment variable {unset[0]} is not set")
    info, text, problem = _credentials(params.vertex_credentials)
    location = params.vertex_location or _env(_LOCATION_ENV) or DEFAULT_LOCATION
    project = params.vertex_project or _env(_PROJECT_ENV) or info.get("project_id")
    host = "aiplatform.googleapis.com"
    base = f"https://{host}" if location == "global" else f"https://{location}-{host}"
    out = {"vertex_location": location}
    if project:
        out["vertex_project"] = str(project)
    elif problem is None:
        problem = "project missing: no vertex_project, VERTEXAI_PROJECT or credentials project_id"
    credentials = {CREDENTIALS: Secret(text)} if text else {}
    return VertexParams(out, credentials, base, problem)


def _credentials(value: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """Returns (the credentials document, its JSON text, why it is unusable or None)."""
    if value is None:
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            return {}, None, None  # Application Default Credentials, asked for at first use
        value = path
    if isinstance(value, Mapping):
        text = json.dumps(dict(value))
    elif isinstance(value, str) and value.lstrip().startswith("{"):
        text = value
    elif isinstance(value, str):
        try:
            text = Path(value).expanduser().read_text()
        except OSError as exc:
            return {}, None, f"vertex_credentials: cannot read {value}: {exc.strerror}"
    else:
        return {}, None, "vertex_credentials: expected a file path or service account JSON"
    try:
        info = json.loads(text)
    except ValueError:
        return {}, None, "vertex_credentials: not valid JSON"
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in KINDS:
        return {}, None, f"vertex_credentials: type {kind!r} is not one of {', '.join(KINDS)}"
    assert isinstance(info, dict)
    return info, text, None


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)
