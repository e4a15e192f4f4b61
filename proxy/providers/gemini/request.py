"""OpenAI chat (and embeddings) request body → Gemini `generateContent` body (pure, no I/O).

Owns the parameter mapping: generationConfig (sampling, stop sequences, max output tokens
clamped to the model's limit, response_format as a JSON response schema, reasoning_effort as
thinkingConfig), tools and tool_choice, and which OpenAI parameters are dropped silently,
dropped under drop_params, or refused with a 400.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import BadRequest
from proxy.providers.gemini.contents import convert_messages
from proxy.providers.openai_params import refuse_shape_changing

THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
"""Gemini 2.5's `thinkingBudget` per OpenAI reasoning_effort."""
MAX_STOP_SEQUENCES = 5
"""Gemini takes at most five stop sequences."""


def build_body(
    body: dict[str, Any], model: str, *, drop_params: bool, max_output: int | None = None
) -> dict[str, Any]:
    """Returns the `generateContent` body for an OpenAI chat body (model already resolved).

    `max_tokens` (or `max_completion_tokens`) is clamped to `max_output` (the deployment's
    `max_output_tokens`, else the model's known maximum); with a thinking budget, the budget
    is added to it, since Gemini counts thoughts as output.

    Penalties, `logit_bias`, `user`, `store` and `metadata` are dropped: some Gemini models
    refuse penalties, and the rest have no Gemini field.

    Raises:
        BadRequest: a parameter Gemini lacks that would change the answer's shape (unless
            `drop_params`), or a value that cannot be translated.
    """
    refuse_shape_changing(body, drop_params, "Gemini")
    system, contents = convert_messages(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
        choice = _tool_choice(body.get("tool_choice"))
        if choice:
            out["toolConfig"] = {"functionCallingConfig": choice}
    config = _generation_config(body, max_output)
    thinking = _thinking(body.get("reasoning_effort"), model)
    if thinking:
        config["thinkingConfig"] = thinking
        budget = thinking.get("thinkingBudget", 0)
        if budget and "maxOutputTokens" in config:
            # thoughts count against maxOutputTokens: keep the asked-for answer room on top
            room = config["maxOutputTokens"] + budget
            config["maxOutputTokens"] = min(room, max_output) if max_output else room
    if config:
        out["generationConfig"] = config
    return out


def embed_texts(body: dict[str, Any]) -> list[str]:
    """Returns the texts of an OpenAI embeddings body.

    Raises:
        BadRequest: the input is not text (Gemini embeds text, not token arrays).
    """
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest(
            "Gemini embeds text: 'input' must be a string or an array of strings.", param="input"
        )
    return texts


def dimensions(body: dict[str, Any]) -> int | None:
    """Returns the `dimensions` an OpenAI embeddings body asks for, if any."""
    dims = body.get("dimensions")
    return dims if isinstance(dims, int) and not isinstance(dims, bool) else None


def embed_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Returns the `batchEmbedContents` body for an OpenAI embeddings body.

    Raises:
        BadRequest: the input is not text.
    """
    base: dict[str, Any] = {"model": f"models/{model}"}
    dims = dimensions(body)
    if dims is not None:
        base["outputDimensionality"] = dims
    return {"requests": [{**base, "content": {"parts": [{"text": t}]}} for t in embed_texts(body)]}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _generation_config(body: dict[str, Any], limit: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        value = _number(body.get(ours))
        if value is not None:
            out[theirs] = value
    if isinstance(body.get("top_k"), int):
        out["topK"] = body["top_k"]
    if isinstance(body.get("seed"), int) and not isinstance(body["seed"], bool):
        out["seed"] = body["seed"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s]
    if stops:
        out["stopSequences"] = stops[:MAX_STOP_SEQUENCES]
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if requested is not None and (
        isinstance(requested, bool) or not isinstance(requested, int) or requested < 1
    ):
        raise BadRequest("max_tokens must be a positive integer.", param="max_tokens")
    if requested is not None:
        out["maxOutputTokens"] = min(requested, limit) if limit else requested
    out.update(_response_format(body.get("response_format")))
    return out


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if isinstance(schema, dict):
            out["responseJsonSchema"] = schema
        return out
    raise BadRequest(f"response_format type {kind!r} is not supported.", param="response_format")


def _thinking(effort: Any, model: str) -> dict[str, Any] | None:
    """Returns the thinkingConfig for a reasoning_effort: Gemini 3 takes a level, 2.5 a
    budget; thoughts are then included (they come back as reasoning_content)."""
    if effort is None:
        return None
    if effort != "none" and effort not in THINKING_BUDGETS:
        raise BadRequest(
            f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)}.",
            param="reasoning_effort",
        )
    name = model.lower()
    if "gemini-3" in name:
        if effort == "none":
            return {"thinkingLevel": "low"}  # Gemini 3 always thinks
        pro = "flash" not in name  # Pro has only "low" and "high"
        level = {"minimal": "low", "medium": "high"}.get(effort, effort) if pro else effort
        return {"thinkingLevel": level, "includeThoughts": True}
    if effort == "none":
        # 2.5 Pro cannot stop thinking; Flash and Flash-Lite stop at a budget of 0
        return None if "pro" in name else {"thinkingBudget": 0}
    return {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("tools must be an array.", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            where = f"tools[{i}]"
            raise BadRequest(
                f"{where}: only function tools with a name are supported.", param=where
            )
        declaration: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        schema = function.get("parameters")
        if isinstance(schema, dict) and schema.get("properties") != {}:
            # JSON Schema as the client wrote it ($ref, anyOf, additionalProperties...):
            # `parameters` takes only an OpenAPI subset, `parametersJsonSchema` all of it.
            declaration["parametersJsonSchema"] = schema
        out.append(declaration)
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    named = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in named:
        return {"mode": named[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"mode": "ANY", "allowedFunctionNames": [function["name"]]}
    raise BadRequest(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
    )
