"""Budget alerts: each `BudgetCrossed` on the bus becomes a WARNING log line and, when
`general_settings.alerting` asks, one POST to Slack (`{"text": ...}`) or a webhook (the event's
JSON). Posts go through one shared httpx client with a short timeout, off the request path; a
failing hook is logged (its URL redacted: it is a secret) and never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from proxy.config.types import Config
from proxy.events import BudgetCrossed, Event, EventBus
from proxy.secret import Secret

log = logging.getLogger("llmproxy.alerts")
POST_TIMEOUT = 5.0
"""Seconds one alert POST may take."""
MAX_POSTS = 64
"""Alerts being posted at once; beyond it a crossing is logged, not posted."""


@dataclass(frozen=True)
class AlertTarget:
    """One place alerts are posted to."""

    kind: str
    """"slack" (`{"text": ...}`) or "webhook" (the event's JSON)."""
    url: Secret

    @property
    def shown(self) -> str:
        """Returns: the URL fit for a log line: scheme and host only (the path is the secret
        of a Slack hook)."""
        return redact_webhook(self.url.reveal())


def redact_webhook(url: str) -> str:
    """Returns: `https://hooks.slack.com/…` (scheme and host, never path, query or user)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "…"
    if not parts.scheme or not host:
        return "…"
    return f"{parts.scheme}://{host}/…"


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def alert_targets(
    config: Config, environ: Mapping[str, str] | None = None
) -> tuple[list[AlertTarget], list[str]]:
    """Reads `general_settings.alerting` / `alerting_webhook_url` as LiteLLM does.

    Args:
        config: the loaded config.
        environ: where `SLACK_WEBHOOK_URL` and `WEBHOOK_URL` are read (default os.environ).

    Returns:
        (the targets, warnings for channels that cannot be served).
    """
    env = os.environ if environ is None else environ
    targets: list[AlertTarget] = []
    warnings: list[str] = []
    for entry in config.alerting:
        name = str(entry).strip()
        if _is_url(name):
            targets.append(AlertTarget("webhook", Secret(name)))
        elif name.lower() == "slack":
            url = env.get("SLACK_WEBHOOK_URL") or env.get("ALERTING_WEBHOOK_URL")
            if url:
                targets.append(AlertTarget("slack", Secret(url)))
            else:
                warnings.append(
                    "general_settings.alerting: slack needs SLACK_WEBHOOK_URL, which is not set"
                )
        elif name.lower() == "webhook":
            if url := env.get("WEBHOOK_URL"):
                targets.append(AlertTarget("webhook", Secret(url)))
            else:
                warnings.append(
                    "general_settings.alerting: webhook needs WEBHOOK_URL, which is not set"
                )
        else:
            warnings.append(
                f"general_settings.alerting: {name[:40]!r} is not served (slack, webhook or "
                "an http(s) URL); ignored"
            )
    if config.alerting_webhook_url is not None:
        targets.append(AlertTarget("webhook", config.alerting_webhook_url))
    return targets, warnings


def describe(ev: BudgetCrossed) -> str:
    """Returns: one line naming the budget, the spend and when it resets."""
    what = "soft budget" if ev.kind == "soft_budget" else "budget"
    where = {"key": "virtual key", "deployment": "deployment", "provider": "provider"}
    name = ev.name[:80]
    line = (
        f"{where.get(ev.scope, ev.scope)} {name!r} reached its {what}: "
        f"${ev.spend:.4f} spent of ${ev.budget:.4f}"
    )
    if ev.reset_at is not None:
        reset = datetime.fromtimestamp(ev.reset_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        line += f", resets {reset}"
    if ev.kind == "max_budget" and ev.scope == "key":
        line += "; its requests are refused until then"
    elif ev.kind == "max_budget":
        line += "; it is skipped until then"
    return line


class Alerts:
    """Follows the bus for `BudgetCrossed` and reports each crossing once."""

    def __init__(
        self,
        bus: EventBus,
        targets: list[AlertTarget],
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = POST_TIMEOUT,
    ) -> None:
        self._bus = bus
        self.targets = list(targets)
        self._client = client
        self._own_client = client is None
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self.sent = 0
        """POSTs answered with a 2xx."""
        self.failed = 0

    async def start(self) -> None:
        """Starts listening to the bus (on the serving loop, where the posts then run)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        if self.targets and self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._bus.listen(self._on_event)

    async def stop(self) -> None:
        """Stops listening, waits (bounded) for the posts under way and closes the client."""
        self._bus.unlisten(self._on_event)
        await asyncio.sleep(0)  # crossings handed over just before run now
        if self._posts:
            await asyncio.wait(list(self._posts), timeout=self._timeout)
        self._loop = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _on_event(self, ev: Event) -> None:
        """The bus listener, in the publisher's thread: O(1), hands crossings to the loop."""
        if isinstance(ev, BudgetCrossed) and self._loop is not None:
            self._loop.call_soon_threadsafe(self.handle, [ev])

    def handle(self, events: Sequence[Event]) -> None:
        """Logs and posts every `BudgetCrossed` among `events` (on the loop); never raises."""
        for ev in events:
            if not isinstance(ev, BudgetCrossed):
                continue
            try:
                log.warning("budget: %s", describe(ev))
                for target in self.targets:
                    self._post(target, ev)
            except Exception:  # the edge: an alert must never stop the proxy
                log.exception("budget alert failed")

    def _post(self, target: AlertTarget, ev: BudgetCrossed) -> None:
        if self._client is None or len(self._posts) >= MAX_POSTS:
            log.warning("budget alert to %s not sent: too many alerts at once", target.shown)
            return
        task = asyncio.get_running_loop().create_task(self._send(target, ev))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _send(self, target: AlertTarget, ev: BudgetCrossed) -> None:
        assert self._client is not None
        body: dict[str, Any]
        if target.kind == "slack":
            body = {"text": f"llmproxy-tui: {describe(ev)}"}
        else:
            body = {**ev.as_dict(), "event": "budget_crossed", "message": describe(ev)}
        started = time.monotonic()
        try:
            answer = await self._client.post(target.url.reveal(), json=body)
        except httpx.HTTPError as exc:  # the message may quote the URL: name the kind only
            self.failed += 1
            log.warning("budget alert to %s failed: %s", target.shown, type(exc).__name__)
            return
        if answer.is_success:
            self.sent += 1
            return
        self.failed += 1
        log.warning(
            "budget alert to %s failed: HTTP %d after %.1fs",
            target.shown,
            answer.status_code,
            time.monotonic() - started,
        )
