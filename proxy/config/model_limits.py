"""The most output tokens well-known models give in one answer, so a larger `max_tokens` ask is
clamped by the proxy instead of refused by the upstream with a 400.

`model_info.max_output_tokens` (or LiteLLM's older `model_info.max_tokens`) on a deployment
always wins; this table is the fallback for the models coding agents use most. The bundled
genai-prices data has context windows but no output limits, and LiteLLM's model map is not
available offline, so the numbers are kept here, from the vendors' model pages:

- Anthropic (platform.claude.com/docs/en/models, each model's overview page, "Max output"):
  Claude 5 and later, Opus 4.6+ and Sonnet 4.6: 128K; Opus 4.5, Sonnet 4.5, Haiku 4.5, Sonnet 4
  and Sonnet 3.7: 64K; Opus 4 and 4.1: 32K; Claude 3.5: 8192; other Claude 3: 4096.
- OpenAI (platform.openai.com/docs/models, "Max output tokens"): gpt-5 family 128,000 (its
  `-chat` models 16,384, gpt-5-pro 272,000); gpt-4.1 family 32,768; gpt-4o and gpt-4o-mini
  16,384 (the first gpt-4o snapshot, 2024-05-13, 4,096); gpt-4.5 16,384; gpt-4-turbo 4,096;
  gpt-4 8,192; gpt-3.5-turbo 4,096; o1, o3, o4-mini and codex-mini 100,000; o1-mini 65,536;
  o1-preview 32,768.

A model this table does not know is not clamped unless its deployment names a limit.
Names are matched on the upstream model's last path segment, so `openrouter/openai/gpt-4o`,
`anthropic/claude-sonnet-4.5` and Bedrock-style `anthropic.claude-opus-4-6-v1` are known too.
"""

from __future__ import annotations

import functools
import re

from proxy.config.types import Deployment

# Claude's two naming styles: claude-<line>-<major>[-<minor>] (4 and later) and
# claude-<major>[-<minor>]-<line> (Claude 3.x); dots read as dashes (`claude-sonnet-4.5`).
_CLAUDE_NEW = re.compile(r"claude-(?P<line>[a-z]+)-(?P<major>\d+)(?:-(?P<minor>\d)(?!\d))?")
_CLAUDE_OLD = re.compile(r"claude-(?P<major>\d)(?:-(?P<minor>\d))?-(?P<line>opus|sonnet|haiku)")

# OpenAI's models, most specific prefix first.
_OPENAI: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 32_768),
    ("gpt-4o-2024-05-13", 4_096),
    ("gpt-4o", 16_384),
    ("chatgpt-4o", 16_384),
    ("gpt-4.5", 16_384),
    ("gpt-4-turbo", 4_096),
    ("gpt-4-1106", 4_096),
    ("gpt-4-0125", 4_096),
    ("gpt-4-vision", 4_096),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 4_096),
    ("o1-mini", 65_536),
    ("o1-preview", 32_768),
    ("o1", 100_000),
    ("o3", 100_000),
    ("o4", 100_000),
    ("codex-mini", 100_000),
)


def bare_name(model: str) -> str:
    """Returns the model's own name: lower-case, its last path segment, without a `:tag`."""
    return model.rsplit("/", 1)[-1].split(":", 1)[0].lower()


@functools.lru_cache(maxsize=1024)  # per model name: it runs on every request
def known_max_output(model: str) -> int | None:
    """Returns the most output tokens `model` gives in one answer, or None when not known."""
    name = bare_name(model)
    if "claude" in name:
        return _claude(name.replace(".", "-"))
    if name.startswith("gpt-5"):
        if name.startswith("gpt-5-pro"):
            return 272_000
        return 16_384 if "-chat" in name else 128_000
    return next((limit for prefix, limit in _OPENAI if name.startswith(prefix)), None)


def output_limit(dep: Deployment, model: str | None = None) -> int | None:
    """Returns the output limit requests to `dep` are clamped to: its `max_output_tokens`,
    else the known maximum of `model` (the upstream name; `dep.model` when None), else None."""
    if dep.max_output_tokens is not None:
        return dep.max_output_tokens
    return known_max_output(model if model is not None else dep.model)


def _claude(name: str) -> int | None:
    new = _CLAUDE_NEW.search(name)
    if new is not None and new["line"] != "instant":
        major, minor, line = int(new["major"]), int(new["minor"] or 0), new["line"]
        if major >= 5:
            return 128_000
        if major == 4:
            if line == "haiku":
                return 64_000
            if minor >= 6:
                return 128_000
            if minor == 5 or line == "sonnet":
                return 64_000
            if line == "opus":
                return 32_000
        return None
    old = _CLAUDE_OLD.search(name)
    if old is None:
        return None
    major, minor = int(old["major"]), int(old["minor"] or 0)
    if major != 3:
        return None
    if minor == 7:
        return 64_000
    if minor == 5:
        return 8_192
    return 4_096
