"""OpenAI-wire request bodies fitted to the model they go to (pure, no I/O).

Clients and the proxy's own translations (the Messages and Responses front doors turn Claude
Code's `thinking` into `reasoning_effort` on every request) send parameters some models refuse
with a 400. Each fix here keeps the request's meaning and avoids that 400:

- an output-token ask above the deployment's limit (`model_info.max_output_tokens`, else the
  model's known maximum, `proxy.config.model_limits`) is clamped to it;
- OpenAI's reasoning models (o1, o3, o4, gpt-5, codex-mini) refuse `max_tokens`: to OpenAI it
  is sent as `max_completion_tokens`; every other vendor gets `max_tokens`, the field every
  OpenAI-compatible server takes (not all take `max_completion_tokens`, which OpenClaw sends);
- models that do not reason (gpt-4o, gpt-4.1, llama, mistral, ...) refuse `reasoning_effort`
  (and, on the Responses API, `reasoning`, `text.verbosity` and the encrypted reasoning
  `include`): those hints are dropped. A model this module does not know keeps them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from proxy.config.model_limits import bare_name, output_limit
from proxy.config.types import Deployment
from proxy.errors import BadRequest

# OpenAI's reasoning models: they take max_completion_tokens only (max_tokens is a 400).
_OPENAI_REASONING = re.compile(r"^(o1|o3|o4|gpt-5|codex-mini)")
# Those of them that refuse reasoning_effort all the same.
_OPENAI_NOT_REASONING = re.compile(r"^(o1-mini|o1-preview|gpt-5[.\d]*-chat)")
# Families known not to take reasoning_effort (a 400 on OpenAI, Groq, xAI and others).
_NOT_REASONING = re.compile(
    r"^(gpt-3|gpt-4|chatgpt-|davinci|babbage|text-)"
    r"|llama|mistral|mixtral|codestral|devstral|ministral|pixtral|gemma|phi-|command"
    r"|^qwen2|^qwen-2|deepseek-chat|deepseek-v2|deepseek-v3|^grok-(2|3(?!-mini)|4|beta|vision)"
    r"|^claude-(2|3-(?!7)|instant)"
)
_TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")
_ENCRYPTED_REASONING = "reasoning.encrypted_content"


@functools.lru_cache(maxsize=1024)  # per model name: it runs on every request
def openai_reasoning(model: str) -> bool:
    """Whether `model` is one of OpenAI's reasoning models (o-series, gpt-5, codex-mini),
    which take `max_completion_tokens` and refuse `max_tokens`."""
    return bool(_OPENAI_REASONING.match(bare_name(model)))


@functools.lru_cache(maxsize=1024)
def takes_reasoning(model: str) -> bool:
    """Whether `model` may be sent reasoning parameters: False for families known to refuse
    them, True otherwise (an unknown model keeps the hint)."""
    name = bare_name(model)
    if _OPENAI_NOT_REASONING.match(name):
        return False
    return bool(_OPENAI_REASONING.match(name)) or not _NOT_REASONING.search(name)


def fit_body(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Fits a chat completions (or legacy completions) body to `dep`'s model.

    Call it once `body["model"]` holds the upstream model name (`dep.model` is used when it
    does not). Only top-level keys change, in place (pass the request's own copy).

    Returns:
        `body`: output tokens clamped and under the field the model takes, reasoning_effort
        dropped for a model that does not reason.
    """
    model = _model_of(body, dep)
    asked = _asked_tokens(body)
    if asked is not None:
        limit = output_limit(dep, model)
        tokens = asked if limit is None else min(asked, limit)
        if "messages" in body:  # chat: the field the model takes
            if dep.provider != "openai":
                field = "max_tokens"
            elif openai_reasoning(model):
                field = "max_completion_tokens"
            else:
                field = next(f for f in _TOKEN_FIELDS if f in body)
            for name in _TOKEN_FIELDS:
                body.pop(name, None)
            body[field] = tokens
        else:  # legacy completions: max_tokens is its only field
            body["max_tokens"] = tokens
    if "reasoning_effort" in body and not takes_reasoning(model):
        del body["reasoning_effort"]
    return body


def fit_responses_body(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Fits a Responses API body (a pass-through to an `openai/` deployment) to `dep`'s model.

    Call it once `body["model"]` holds the upstream model name. Only top-level keys change, in
    place (nested `text` and `include` are replaced, not edited).

    Returns:
        `body`: `max_output_tokens` clamped; for a model that does not reason, `reasoning`,
        `text.verbosity` and the encrypted reasoning `include` dropped.
    """
    model = _model_of(body, dep)
    asked = body.get("max_output_tokens")
    limit = output_limit(dep, model)
    if limit is not None and _positive_int(asked) and asked > limit:
        body["max_output_tokens"] = limit
    if not takes_reasoning(model):
        body.pop("reasoning", None)
        text = body.get("text")
        if isinstance(text, dict) and "verbosity" in text:
            rest = {k: v for k, v in text.items() if k != "verbosity"}
            if rest:
                body["text"] = rest
            else:
                del body["text"]
        include = body.get("include")
        if isinstance(include, list) and _ENCRYPTED_REASONING in include:
            rest_include = [i for i in include if i != _ENCRYPTED_REASONING]
            if rest_include:
                body["include"] = rest_include
            else:
                del body["include"]
    return body


def _model_of(body: dict[str, Any], dep: Deployment) -> str:
    model = body.get("model")
    return model if isinstance(model, str) and model else dep.model


def _asked_tokens(body: dict[str, Any]) -> int | None:
    """Returns the output-token ask (`max_completion_tokens` first, as OpenAI reads it)."""
    for name in _TOKEN_FIELDS:
        value = body.get(name)
        if _positive_int(value):
            return value
    return None


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


SHAPE_CHANGING = ("n", "logprobs", "top_logprobs", "modalities", "audio", "functions",
                  "function_call")  # fmt: skip
"""OpenAI parameters that would change the answer's shape, for upstreams that have none of
them: dropped under drop_params, else a 400."""


def refuse_shape_changing(body: Mapping[str, Any], drop_params: bool, vendor: str) -> None:
    """Raises the 400 for a `SHAPE_CHANGING` parameter `vendor` cannot serve (harmless values,
    such as `n: 1` or `modalities: ["text"]`, pass); nothing under `drop_params`.

    Raises:
        BadRequest: the first such parameter, named.
    """
    if drop_params:
        return
    for name in SHAPE_CHANGING:
        value = body.get(name)
        harmless = (
            value in (None, False, 0, [], {})
            or (name == "n" and value == 1)
            or (name == "modalities" and value == ["text"])
        )
        if not harmless:
            raise BadRequest(
                f"{vendor} does not support the parameter '{name}'. Remove it, "
                f"or set litellm_settings.drop_params: true to drop it.",
                param=name,
                code="unsupported_parameter",
            )
