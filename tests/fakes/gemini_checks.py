"""What the real Gemini API refuses in a `generateContent` body, with its 400 messages: unknown
fields (Google's JSON parser knows every field), roles, empty parts, a part holding no data or
two, function responses not answering the call turn, and (Gemini 3) a replayed function call
without its thought signature.
"""

from __future__ import annotations

from typing import Any

_FIELDS = {
    "": {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
         "safetySettings", "cachedContent", "labels"},
    "generation_config": {"stopSequences", "responseMimeType", "responseSchema",
                          "responseJsonSchema", "candidateCount", "maxOutputTokens",
                          "temperature", "topP", "topK", "seed", "presencePenalty",
                          "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig",
                          "responseModalities", "mediaResolution"},
    "generation_config.thinking_config": {"thinkingBudget", "includeThoughts", "thinkingLevel"},
    "tool_config.function_calling_config": {"mode", "allowedFunctionNames"},
    "function_declaration": {"name", "description", "parameters", "parametersJsonSchema",
                             "response", "responseJsonSchema", "behavior"},
    "part": {"text", "inlineData", "fileData", "functionCall", "functionResponse",
             "executableCode", "codeExecutionResult", "thought", "thoughtSignature",
             "videoMetadata"},
}  # fmt: skip
_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


def problem_of(body: dict[str, Any], model: str) -> str | None:
    """Returns: the real API's 400 message for a `generateContent` body it refuses, or None."""
    unknown = _unknown(body, "", "") or _unknown_nested(body)
    if unknown:
        return unknown
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    calls = 0
    for i, content in enumerate(contents):
        where = f"GenerateContentRequest.contents[{i}]"
        parts = content.get("parts") if isinstance(content, dict) else None
        if content.get("role") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not isinstance(parts, list) or not parts:
            return f"* {where}.parts: contents.parts must not be empty.\n"
        for j, part in enumerate(parts):
            problem = _part_problem(part, f"{where}.parts[{j}]")
            if problem:
                return problem
        answers = sum(1 for p in parts if "functionResponse" in p)
        if answers and answers != calls:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        calls = sum(1 for p in parts if "functionCall" in p)
        if (
            calls
            and "gemini-3" in model
            and "thoughtSignature" not in next(p for p in parts if "functionCall" in p)
        ):
            return (
                f"Function call is missing a thought_signature in functionCall parts. This is "
                f"required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call `default_api:"
                f"{next(p for p in parts if 'functionCall' in p)['functionCall']['name']}` , "
                f"position {i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/"
                f"thought-signatures for more details."
            )
    return None


def _unknown(obj: Any, where: str, kind: str) -> str | None:
    if not isinstance(obj, dict):
        return None
    for name in obj:
        if name not in _FIELDS[kind]:
            at = f" at '{where}'" if where else ""
            return f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    return None


def _unknown_nested(body: dict[str, Any]) -> str | None:
    config = body.get("generationConfig") or {}
    tool_config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    checks: list[tuple[Any, str, str]] = [
        (config, "generation_config", "generation_config"),
        (config.get("thinkingConfig"), "generation_config.thinking_config",
         "generation_config.thinking_config"),
        (tool_config, "tool_config.function_calling_config",
         "tool_config.function_calling_config"),
    ]  # fmt: skip
    for i, tool in enumerate(body.get("tools") or []):
        for j, decl in enumerate(tool.get("functionDeclarations") or []):
            checks.append((decl, f"tools[{i}].function_declarations[{j}]", "function_declaration"))
            if "parameters" in decl and "parametersJsonSchema" in decl:
                return "parameters and parameters_json_schema are mutually exclusive."
    thinking = config.get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        return "You can only set only one of thinking budget and thinking level."
    for obj, where, kind in checks:
        problem = _unknown(obj, where, kind)
        if problem:
            return problem
    return None


def _part_problem(part: Any, where: str) -> str | None:
    if not isinstance(part, dict):
        return f"* {where}: part must be an object."
    problem = _unknown(part, where.replace("GenerateContentRequest.", ""), "part")
    if problem:
        return problem
    data = [name for name in _DATA if name in part]
    if len(data) != 1:
        return f"* {where}.data: required oneof field 'data' must have one initialized field\n"
    call = part.get("functionCall") or part.get("functionResponse")
    if call is not None and not (isinstance(call, dict) and call.get("name")):
        return f"* {where}.{data[0]}.name: Name cannot be empty.\n"
    if "functionResponse" in part and not isinstance(
        part["functionResponse"].get("response"), dict
    ):
        return f"* {where}.function_response.response: must be an object.\n"
    return None
