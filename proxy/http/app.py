"""The app factory and the route table: every route the proxy serves, the one place that says
which key each needs, which wire format it answers in, and whether it is served lean.

`create_app` puts the front door (`door.py`) in front of them all, with FastAPI behind it for
the routes that are not lean.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from proxy.endpoints import anthropic_messages, openai_chat, openai_responses
from proxy.http.admin import AdminHandlers
from proxy.http.agent_routes import AgentHandlers
from proxy.http.auth import route_check
from proxy.http.body_routes import BodyHandlers
from proxy.http.door import FrontDoor
from proxy.http.health import HealthHandlers
from proxy.http.key_routes import KeyHandlers
from proxy.http.openai_routes import OpenAIHandlers
from proxy.http.reload import ReloadHandlers
from proxy.http.routes import Auth, LeanHandler, Route, RouteTable
from proxy.http.spend_routes import SpendHandlers
from proxy.runtime import Runtime


def route_table(runtime: Runtime) -> list[Route]:
    """Returns every route the proxy serves, around `runtime`."""
    openai = OpenAIHandlers(runtime)
    agents = AgentHandlers(runtime)
    health = HealthHandlers(runtime)
    admin = AdminHandlers(runtime)
    wire = openai_chat

    def hot(path: str, handler: LeanHandler) -> Route:
        """An OpenAI route of the hot path: POST, a JSON body, a client key, served lean."""
        return Route("POST", v1(path), handler, Auth.KEY, wire, lean=True, json_body=True)

    return [
        hot("/chat/completions", openai.chat),
        hot("/embeddings", openai.embeddings),
        hot("/completions", openai.completions),
        Route(
            "POST",
            v1("/messages"),
            agents.messages,
            Auth.KEY,
            anthropic_messages,
            lean=True,
            json_body=True,
        ),
        Route(
            "POST",
            v1("/messages/count_tokens"),
            agents.count_tokens,
            Auth.KEY,
            anthropic_messages,
            lean=True,
            json_body=True,
        ),
        Route(
            "POST",
            v1("/responses"),
            agents.responses,
            Auth.KEY,
            openai_responses,
            lean=True,
            json_body=True,
        ),
        Route("GET", v1("/models"), openai.models, Auth.KEY, wire),
        # Any name after /models/ (slashes too), so groups a reload adds are found as well.
        Route("GET", v1("/models/"), openai.model, Auth.KEY, wire, prefix=True),
        # What clients probe at start (Claude Code: HEAD /api/hello): HEAD carries no data.
        Route("HEAD", ROOT_PATHS, health.root_probe, Auth.NONE, wire),
        Route("GET", ROOT_PATHS, health.root, Auth.KEY, wire),
        Route("GET", ("/health",), health.health, Auth.NONE, wire),
        Route("GET", ("/health/liveliness", "/health/liveness"), health.alive, Auth.NONE, wire),
        Route("GET", ("/health/readiness",), health.ready, Auth.NONE, wire),
        Route("GET", ("/llmproxy/state",), admin.state, Auth.MASTER, wire),
        Route("GET", ("/llmproxy/events",), admin.events, Auth.MASTER, wire),
        Route("POST", ("/llmproxy/actions",), admin.actions, Auth.MASTER, wire, json_body=True),
        Route("GET", ("/metrics",), admin.metrics, Auth.MASTER, wire),
        Route("POST", ("/llmproxy/reload",), ReloadHandlers(runtime).reload, Auth.MASTER, wire),
        Route("GET", ("/llmproxy/spend",), SpendHandlers(runtime).spend, Auth.MASTER, wire),
        *body_routes(BodyHandlers(runtime)),
        *key_routes(KeyHandlers(runtime)),
    ]


def key_routes(keys: KeyHandlers) -> list[Route]:
    """Returns: LiteLLM's virtual key management routes (FastAPI, OpenAI's error shape)."""
    wire = openai_chat
    return [
        Route("POST", ("/key/generate",), keys.generate, Auth.MASTER, wire, json_body=True),
        Route("GET", ("/key/info",), keys.info, Auth.OWN_KEY, wire),
        Route("POST", ("/key/update",), keys.update, Auth.MASTER, wire, json_body=True),
        Route("POST", ("/key/delete",), keys.delete, Auth.MASTER, wire, json_body=True),
        Route("GET", ("/key/list",), keys.list, Auth.MASTER, wire),
        Route("POST", ("/key/block",), keys.block, Auth.MASTER, wire, json_body=True),
        Route("POST", ("/key/unblock",), keys.unblock, Auth.MASTER, wire, json_body=True),
    ]


def body_routes(bodies: BodyHandlers) -> list[Route]:
    """Returns: the stored request bodies' routes (proxy/http/body_routes.py)."""
    wire = openai_chat
    return [
        Route("GET", ("/llmproxy/requests/",), bodies.bodies, Auth.MASTER, wire, prefix=True),
        Route("GET", ("/llmproxy/bodies",), bodies.status, Auth.MASTER, wire),
    ]


ROOT_PATHS = ("/", "/api/hello")
"""The paths clients probe to see the server answers."""


def v1(path: str) -> tuple[str, str]:
    """Returns `path` with and without the `/v1` prefix: clients use both."""
    return "/v1" + path, path


def create_app(
    runtime: Runtime, routes: Sequence[Route] | None = None, *, listen_host: str = "127.0.0.1"
) -> FrontDoor:
    """Builds the ASGI app around one runtime (no module-level state).

    Args:
        runtime: what the routes serve; started and closed by the app's lifespan.
        routes: the route table; `route_table(runtime)` when None (a test may add to it).
        listen_host: the address the proxy listens on, a name it answers to without a key.

    Returns:
        The front door, an ASGI app.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            runtime.draining = True
            await runtime.close()

    table = RouteTable(route_table(runtime) if routes is None else routes, openai_chat)
    config = runtime.config
    check = route_check(config.master_key, listen_host, config.allowed_hosts, runtime.virtual_keys)
    return FrontDoor(table, check, runtime.scrubber, lifespan, allowed_ips=config.allowed_ips)
