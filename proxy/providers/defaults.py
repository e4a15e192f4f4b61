"""A deployment's default parameters, added to a request body the client sent without them.

`litellm_params.max_tokens`, `temperature`, `top_p`, `stop`, `thinking`, `reasoning_effort`
and `litellm_settings.default_params` (`Deployment.defaults`, OpenAI's names) are sent when the
client did not set them; `extra_body` keys are added to the upstream's own body as they are;
`additional_drop_params` are never sent. The client's own values always win.

- `with_defaults`: an OpenAI chat or completions body (before any adapter fits or translates
  it, so limits and translations see the defaults too);
- `with_extra_body`: a body already translated to the upstream's format (Anthropic's);
- `with_native_defaults`: a client body passed through in the upstream's own format
  (Messages to Anthropic, Responses to OpenAI), with the defaults under that format's names.
"""

from __future__ import annotations

from typing import Any

from proxy.config.types import Deployment

_TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")
# Default names -> the field of each pass-through format (a missing name: not sent there).
_NATIVE_NAMES = {
    "anthropic_messages": {
        "temperature": "temperature",
        "top_p": "top_p",
        "stop": "stop_sequences",
    },
    "openai_responses": {
        "max_tokens": "max_output_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "reasoning_effort": "reasoning",
    },
}


def with_defaults(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Adds `dep`'s defaults and extra_body keys that `body` (an OpenAI chat or completions
    body) does not set, and removes `dep`'s `additional_drop_params`.

    Returns:
        `body` itself when `dep` has none of them, else a new dict (`body` is never changed,
        so a retry on another deployment starts from the client's own request).
    """
    if not dep.defaults and not dep.extra_body and not dep.drop:
        return body
    out = dict(body)
    for name, value in dep.defaults.items():
        if name == "max_tokens" and any(f in out for f in _TOKEN_FIELDS):
            continue  # the client's max_completion_tokens is its output-token ask
        out.setdefault(name, value)
    return with_extra_body(out, dep)


def with_extra_body(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Adds `dep`'s extra_body keys `body` lacks and drops its additional_drop_params, in
    place (pass a body of the request's own)."""
    for name, value in dep.extra_body.items():
        body.setdefault(name, value)
    for name in dep.drop:
        body.pop(name, None)
    return body


def with_native_defaults(body: dict[str, Any], dep: Deployment, wire: str) -> dict[str, Any]:
    """Adds `dep`'s defaults, under the names of `wire` ("anthropic_messages" or
    "openai_responses"), and its extra_body keys to a client body passed through as it is.

    Defaults that format has no field for are not sent (`seed` to Anthropic would be a 400),
    nor `thinking` (the client's own max_tokens may leave no room for its budget). To a
    Messages body with thinking enabled, no sampling default is added (Anthropic refuses
    temperature and top_p with thinking).

    Returns:
        `body` itself when nothing applies, else a new dict.
    """
    names = _NATIVE_NAMES.get(wire, {})
    if not dep.extra_body and not dep.drop and not any(n in names for n in dep.defaults):
        return body
    out = dict(body)
    thinking = isinstance(out.get("thinking"), dict) and out["thinking"].get("type") == "enabled"
    for name, value in dep.defaults.items():
        field = names.get(name)
        if field is None or field in out or (thinking and wire == "anthropic_messages"):
            continue
        if field == "stop_sequences":
            value = [value] if isinstance(value, str) else value
        elif field == "reasoning":
            value = {"effort": value}
        out[field] = value
    return with_extra_body(out, dep)


def drops_params(asked: bool, dep: Deployment) -> bool:
    """Whether parameters a provider lacks are dropped: `dep`'s own `drop_params` when set,
    else `asked` (litellm_settings.drop_params, as the endpoint read it)."""
    return asked if dep.drop_params is None else dep.drop_params
