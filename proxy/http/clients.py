"""Who is calling: the client named from its User-Agent, and the agent session a request
belongs to, from the headers agents send (the body's own session fields are read by the
endpoint modules)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

# (substring of the lower-cased User-Agent, name), most specific first.
_CLIENTS = (
    ("claude-cli", "Claude Code"),
    ("claude-code", "Claude Code"),
    ("codex", "Codex"),
    ("opencode", "OpenCode"),
    ("openclaw", "OpenClaw"),
    ("aider", "aider"),
    ("continue", "Continue"),
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("litellm", "litellm"),
    ("ai-sdk", "Vercel AI SDK"),
    ("curl/", "curl"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
)
SESSION_HEADERS = ("x-session-affinity", "x-session-id", "x-claude-code-session-id", "session-id")
"""Headers agents put their session id in, in the order they are believed."""
MAX_SESSION = 200
"""A longer session id is cut: it is a key in memory and in the usage store."""


@functools.lru_cache(maxsize=512)
def client_name(user_agent: str) -> str:
    """Returns the client's name for a User-Agent, or "" when it is not one we know.

    Memoized: a client sends the same User-Agent on every request (bounded, so a client
    varying it cannot grow memory)."""
    if not user_agent:
        return ""
    lowered = user_agent.lower()
    for needle, name in _CLIENTS:
        if needle in lowered:
            return name
    return ""


def header_session(headers: Mapping[str, str]) -> str | None:
    """Returns the session id an agent sent in its headers, or None."""
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:MAX_SESSION]
    return None
