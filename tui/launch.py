"""Runs the dashboard: `run_local` with the proxy in this process (its own loop, in a thread
worker) or `run_attach` to a proxy running elsewhere. The CLI calls these two functions."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from textual import work
from textual.worker import Worker

from proxy.events import BusLogHandler
from tui.app import DashboardApp
from tui.source import LocalSource, RemoteSource

if TYPE_CHECKING:
    from proxy.http.server import ProxyServer
    from proxy.runtime import Runtime

EXIT_OK, EXIT_PORT = 0, 3
START_TIMEOUT = 30.0


class LocalDashboardApp(DashboardApp):
    """The dashboard with the proxy serving in a thread worker on its own event loop."""

    def __init__(self, runtime: Runtime, server: ProxyServer, **kwargs: Any) -> None:
        super().__init__(LocalSource(server, runtime), **kwargs)
        self.server = server
        self.bind_error: OSError | None = None
        self._proxy: Worker[None] | None = None

    async def prepare(self) -> None:
        self._proxy = self._serve()
        self._watch_start()

    @work(thread=True, group="proxy", exit_on_error=False)
    def _serve(self) -> None:
        """Serves until `server.stop()`; repaints never stall proxy I/O."""
        self.server.run()

    @work(group="proxy-start", exit_on_error=False)
    async def _watch_start(self) -> None:
        await asyncio.to_thread(self.server.started.wait, START_TIMEOUT)
        if self.server.bind_error is not None:
            self.bind_error = self.server.bind_error
            self.exit(EXIT_PORT)

    async def shutdown(self) -> None:
        """Stops the proxy: in-flight requests finish, usage is flushed, then the loop ends.

        The source stops first: a snapshot it asked the proxy's loop for must finish (or be
        cancelled) while that loop still runs, or its coroutine is never awaited."""
        await super().shutdown()
        self.server.stop()
        if self._proxy is not None:
            await self._proxy.wait()


def run_local(runtime: Runtime, server: ProxyServer, *, config_label: str, demo: bool) -> int:
    """Runs the dashboard with the proxy in-process on the server's host and port.

    Returns:
        0 after a clean stop (`q`, ctrl+c), 3 when the port is taken.
    """
    handler = BusLogHandler(runtime.bus)
    root = logging.getLogger()
    root.addHandler(handler)  # also keeps logging's last-resort stderr handler off the screen
    app = LocalDashboardApp(runtime, server, config_label=config_label, demo=demo)
    try:
        app.run()
    finally:
        root.removeHandler(handler)
        server.stop()  # idempotent; covers an app that ended without `q`
    if app.bind_error is not None:
        reason = app.bind_error.strerror or str(app.bind_error)
        print(
            f"llmproxy-tui: cannot listen on {server.host}:{server.port}: {reason}", file=sys.stderr
        )
        return EXIT_PORT
    return EXIT_OK if app.return_code in (None, 0) else int(app.return_code)


def run_attach(url: str, key: str | None) -> int:
    """Runs the dashboard fed by a proxy running elsewhere (`/llmproxy/state` and `/events`).

    Returns:
        0 after a clean stop.
    """
    app = DashboardApp(RemoteSource(url, key), config_label=f"attached to {url}")
    app.run()
    return EXIT_OK if app.return_code in (None, 0) else int(app.return_code)
