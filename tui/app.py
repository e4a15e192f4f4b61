"""`DashboardApp`: the home screen (Keys, Requests, Cache, Cost, Log), zoom, bindings, themes,
and the refresh loop that drains a `LiveSource` a few times a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey
from textual.worker import Worker, WorkerState

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane
from tui.panes.budgets import BudgetsPane
from tui.panes.cache_rate import CacheRatePane
from tui.panes.cost import CostPane
from tui.panes.header import DemoBanner, StatusHeader
from tui.panes.key_health import KeyHealthPane
from tui.panes.log import LogPane
from tui.panes.request_log import RequestLogPane
from tui.panes.sessions import SessionsPane
from tui.screens.help import HelpScreen, focused_pane
from tui.screens.key_detail import KeyDetailScreen
from tui.screens.quit import QuitScreen
from tui.screens.request_detail import RequestDetailScreen
from tui.screens.tester import (
    OpenTester,
    TesterPreset,
    TesterScreen,
    replay_preset,
    request_curl,
)
from tui.settings import Settings, load, save, settings_path
from tui.source import LiveSource

PANES = Binding.Group("Panes", compact=True)
TOGGLES = {
    "exclamation_mark": "keys",
    "at": "requests",
    "number_sign": "cache",
    "dollar_sign": "cost",
    "percent_sign": "log",
}
"""shift+1 … shift+5 (on a US layout) toggle the panes 1 … 5."""
TOGGLE_KEYS = {"exclamation_mark": "!", "at": "@", "number_sign": "#", "dollar_sign": "$",
               "percent_sign": "%"}  # fmt: skip
COMPACT_WIDTH, COMPACT_HEIGHT = 110, 32
THEMES = ("textual-dark", "textual-light")
MAX_PENDING = 5000
BUSY_EVENTS_PER_S = 400.0
"""Events a second (two a request) from which the dashboard repaints only every BUSY_REPAINT_S;
below half of it, it repaints every tick again."""
BUSY_REPAINT_S = 2.0
"""Under heavy traffic the panes are drained and repainted this often: the proxy in this
process shares the GIL and the core with every repaint (bench/dashboard_cost.py)."""


class DashboardApp(App[int]):
    """The dashboard; it never knows whether its source is in-process or remote."""

    CSS_PATH = "app.tcss"
    TITLE = "llmproxy-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            # Sessions (7) is in help, not in the footer: at 80 columns that room is `t`'s.
            Binding(str(i), f"zoom('{name}')", title, group=PANES, show=name != "sessions")
            for i, (name, title) in enumerate(
                [
                    ("keys", "Keys"),
                    ("requests", "Requests"),
                    ("cache", "Cache"),
                    ("cost", "Cost"),
                    ("log", "Log"),
                    ("budgets", "Budgets"),  # shown once the proxy has virtual keys
                    ("sessions", "Sessions"),  # zoomed only: no room at home
                ],
                start=1,
            )
        ),
        # btop's shift+number: hide or show a pane at home, so the request list gets its room.
        *(
            Binding(key, f"toggle_pane('{name}')", f"Hide/show {name}", show=False)
            for key, name in TOGGLES.items()
        ),
        Binding("t", "tester", "Tester"),
        # `?` and `q` are drawn at the footer's right end (`#footer-keys`), never cut off.
        Binding("question_mark", "help", "Help", show=False),
        Binding("T", "toggle_theme", "Theme"),
        Binding("ctrl+r", "reload_config", "Reload config", show=False),
        Binding("q", "quit", "Quit", show=False),
        # Not a priority binding: in a text box ctrl+c copies (the box's own binding wins).
        Binding("ctrl+c", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        source: LiveSource,
        *,
        config_label: str = "",
        demo: bool = False,
        clock: Callable[[], float] = time.time,
        refresh_interval: float | None = 0.25,
        blink: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.config_label = config_label
        self.demo = demo
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.blink = blink
        """Cursor blink in the tester's inputs (off in snapshot tests)."""
        self.zoomed: str | None = None
        self.finished: dict[str, dict[str, Any]] = {}
        """`request_finished` events by request id (bounded), for the tester and details."""
        self._pending: list[dict[str, Any]] = []
        self._last_snapshot: dict[str, Any] | None = None
        self._panes: list[Pane] | None = None
        self._busy = False
        self._tester: TesterScreen | None = None
        self._drained_at = float("-inf")
        self.monotonic: Callable[[], float] = time.monotonic
        """The repaint pacing's clock (tests set it)."""
        self._reload_seen = -1
        """The number of the latest config reload told of (-1: no snapshot read yet)."""
        # The theme chosen last time. A small read, here and not on the event loop: the
        # launcher builds the app before `run()` starts the loop.
        saved = load(settings_path()).theme
        self.theme = saved if saved is not None and saved in THEMES else THEMES[0]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield DemoBanner()
        with Vertical(id="home"):
            yield KeyHealthPane()
            yield BudgetsPane()
            yield RequestLogPane()
            with Horizontal(id="bottom"):
                yield CacheRatePane()
                yield CostPane()
            yield LogPane()
            yield SessionsPane()
        with Horizontal(id="footer-bar"):
            yield Footer()
            with Horizontal(id="footer-keys"):
                yield FooterKey("question_mark", "?", "Help", "help")
                yield FooterKey("q", "q", "Quit", "quit")

    @property
    def panes(self) -> list[Pane]:
        if self._panes is None:
            self._panes = list(self.query(Pane).results(Pane))  # fixed once composed
        return self._panes

    async def on_mount(self) -> None:
        self.query_one(DemoBanner).display = self.demo
        self._set_compact(self.size.width, self.size.height)
        await self.prepare()
        await self.source.start()
        if self.refresh_interval:
            self.set_interval(self.refresh_interval, self.refresh_data)
        self.refresh_data()
        self.query_one(KeyHealthPane).focus_main()

    def on_resize(self, event: Resize) -> None:
        self._set_compact(event.size.width, event.size.height)

    def _set_compact(self, width: int, height: int) -> None:
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.set_class(compact, "compact")
        # At 80 columns the footer's room goes to keys (ctrl+p still opens the palette).
        self.query_one(Footer).show_command_palette = not compact
        for pane in self.panes:
            pane.set_compact(compact)

    def refresh_data(self) -> None:
        """Drains the source and applies one batch to every pane (the interval calls this)."""
        tick = self.monotonic()
        waited = tick - self._drained_at
        if self._busy and waited < BUSY_REPAINT_S and len(self.screen_stack) == 1:
            # Heavy traffic: events wait in the bus's bounded queue until the next repaint.
            return
        events = self.source.drain()
        self._drained_at = tick
        # Over at least one tick, so a frame drawn at once after another is not "heavy".
        rate = len(events) / max(waited, self.refresh_interval or 0.25)
        self._busy = rate >= BUSY_EVENTS_PER_S * (0.5 if self._busy else 1.0)
        for event in events:
            if event.get("type") == "request_finished":
                self.finished[event["id"]] = event
        while len(self.finished) > 1000:
            del self.finished[next(iter(self.finished))]
        if self._tester is not None and events:
            self._tester.observe(events)
        self._pending.extend(events)
        del self._pending[:-MAX_PENDING]
        snapshot = self.source.snapshot()
        if snapshot is not None:
            self._note_reload(snapshot)
        now = self.clock()
        header = self.query_one(StatusHeader)
        connected = self.source.connected
        header.show(
            snapshot,
            connected=connected,
            error=self.source.error,
            config_label=self.config_label,
            now=now,
            events=events,
        )
        # Old numbers must not look live: the panes dim while the proxy is unreachable.
        self.query_one("#home").set_class(not connected and snapshot is not None, "-stale")
        if snapshot and snapshot.get("server", {}).get("demo") and not self.demo:
            self.demo = True
            self.query_one(DemoBanner).display = True
        if self.demo and snapshot:
            self.query_one(DemoBanner).show(str(snapshot.get("server", {}).get("listen") or ""))
        if len(self.screen_stack) > 1:
            return  # behind the tester or a dialog: keep events for later
        frame = Frame(
            snapshot,
            self._pending,
            now,
            fresh=snapshot is not self._last_snapshot,
            busy_every=BUSY_REPAINT_S if self._busy else None,
        )
        self._pending = []
        self._last_snapshot = snapshot
        with self.batch_update():
            for pane in self.panes:
                pane.apply(frame)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The Budgets key (6) is there only while the proxy has virtual keys."""
        if action == "zoom" and parameters == ("budgets",):
            return self._has_virtual_keys()
        return True

    def _has_virtual_keys(self) -> bool:
        panes = self.query(BudgetsPane)
        return bool(panes) and panes.first().has_keys

    def action_toggle_pane(self, name: str) -> None:
        """Hides pane `name` at home, or shows it again (its number still zooms it)."""
        pane = self.query_one(f"#{name}", Pane)
        hidden = not pane.has_class("-hidden")
        pane.set_class(hidden, "-hidden")
        bottom = self.query_one("#bottom")
        bottom.set_class(all(p.has_class("-hidden") for p in bottom.query(Pane)), "-hidden")
        if hidden and self.focused is not None and pane in self.focused.ancestors:
            self.query_one(RequestLogPane).focus_main()
        key = next(k for k, n in TOGGLES.items() if n == name)
        word = "hidden" if hidden else "shown"
        self.notify(f"{pane.TITLE} {word} · {TOGGLE_KEYS[key]} toggles it", timeout=3, markup=False)

    def action_zoom(self, name: str) -> None:
        """Zooms pane `name` to full screen, or back to the home layout when it already is."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        home = self.query_one("#home")
        self.zoomed = None if self.zoomed == name else name
        home.set_class(self.zoomed is not None, "zoomed")
        for pane in self.panes:
            pane.set_class(pane.id == self.zoomed, "-zoomed")
        self.query_one("#bottom").set_class(self.zoomed in ("cache", "cost"), "-zoomed")
        self.query_one(f"#{name}", Pane).focus_main()

    def action_tester(self, preset: TesterPreset | None = None) -> None:
        if self._tester is None:
            self._tester = TesterScreen()
            self.install_screen(self._tester, name="tester")  # kept, with its history
        if preset is not None:
            self._tester.preset(preset)
            if self.screen is self._tester:
                self._tester.on_screen_resume()
        if self.screen is not self._tester:
            self.push_screen("tester")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_rows(), focused=focused_pane(self.focused)))

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]
        self._save_settings(Settings(theme=self.theme))  # the choice outlives this run

    @work(thread=True, group="settings", exit_on_error=False)
    def _save_settings(self, settings: Settings) -> None:
        save(settings_path(), settings)

    async def action_quit(self) -> None:
        """Quits; when that stops the proxy (it runs in this process), asks first."""
        if isinstance(self.screen, QuitScreen):
            return
        if not getattr(self.source, "in_process", False):
            await self.stop()
            return
        server = (self.source.snapshot() or {}).get("server") or {}
        self.push_screen(QuitScreen(int(server.get("in_flight") or 0)), self._answered)

    async def _answered(self, stop: bool | None) -> None:
        if stop:
            await self.stop()

    async def stop(self) -> None:
        """Stops following the source (and the proxy, when it is in this process) and exits."""
        self.query_one(StatusHeader).update("Stopping: finishing in-flight requests…")
        await self.shutdown()
        self.exit(0)

    async def prepare(self) -> None:
        """Runs before the source starts; the local app starts the proxy here."""

    async def shutdown(self) -> None:
        """Stops following the source; the local app also stops the proxy here."""
        await self.source.stop()

    def help_rows(self) -> list[tuple[str, str, str]]:
        """Returns (where, key, description) for every binding shown in help."""
        rows = [
            ("Everywhere", self.get_key_display(b), b.description)
            for b in _shown(self.BINDINGS)
            if b.action != "zoom('budgets')" or self._has_virtual_keys()
        ]
        rows += [
            ("Everywhere", "?", "Help"),
            ("Everywhere", "q", "Quit (asks before it stops the proxy)"),
            ("Tables", "j / k", "Down / up"),
            ("Tables", "g / G", "First / last row"),
            ("Tables", "ctrl+d / ctrl+u", "Half a page down / up"),
        ]
        for pane in self.panes:
            rows += [
                (pane.TITLE, self.get_key_display(b), b.description) for b in _shown(pane.BINDINGS)
            ]
        rows += [
            ("Everywhere", "7", "Sessions: one row per agent session"),
            ("Everywhere", "shift+1 … 5 (! @ # $ %)", "Hide/show a pane at home"),
            ("Keys", "enter", "Key details: why it fails, its requests"),
            ("Keys", "enter, then t", "Test this key in the tester"),
            ("Requests", "enter", "Request details (B there: store request bodies)"),
            ("Requests", "c", "Copy as curl (the key as $LLMPROXY_KEY)"),
            ("Requests", "R", "Replay in the tester (a tester prompt is sent again)"),
            ("Requests", "K", "Jump to the key that served it"),
            ("Requests", "G / end / f", "Follow the newest (moving up pauses)"),
            ("Tester", "ctrl+s", "Send"),
            ("Tester", "ctrl+f", "API: Chat Completions / Anthropic Messages / OpenAI Responses"),
            ("Tester", "escape", "Back to the panes"),
            ("Everywhere", "ctrl+p", "Command palette"),
            ("Everywhere", "ctrl+r", "Reload the config and .env"),
            ("Everywhere", "tab", "Next pane"),
        ]
        return rows

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for pane in self.panes:
            yield SystemCommand(
                f"Zoom {pane.TITLE}",
                f"Key {pane.KEY}: show the {pane.TITLE} pane full screen, or back",
                lambda p=pane.PANE_ID: self.action_zoom(p),
            )
        yield SystemCommand("Tester", "Key t: send a prompt through the proxy", self.action_tester)
        yield SystemCommand("Help", "Key ?: every key binding", self.action_help)
        yield SystemCommand("Toggle light/dark theme", "Key T", self.action_toggle_theme)
        yield SystemCommand(
            "Reload config", "Key ctrl+r: re-read the config and .env", self.action_reload_config
        )
        yield SystemCommand(
            "Clear cache", "Key x on the Cache pane", lambda: self.run_action_request("clear_cache")
        )
        keys = self.query_one(KeyHealthPane)
        for name, label in [
            ("reset", "Reset cooldown"),
            ("toggle", "Disable/enable"),
            ("probe", "Probe key"),
        ]:
            yield SystemCommand(
                f"{label} (selected deployment)",
                "Keys pane",
                lambda n=name: self._key_action(keys, n),
            )

    def _key_action(self, keys: KeyHealthPane, name: str) -> None:
        if name == "toggle":
            keys.action_toggle_disabled()
        else:
            keys.action_deployment(name)

    def action_reload_config(self) -> None:
        """Re-reads the proxy's config and `.env` (an invalid file keeps the old one)."""
        self.run_action_request("reload")

    def _note_reload(self, snapshot: dict[str, Any] | None) -> None:
        """Tells of a reload the dashboard did not ask for (SIGHUP, a file change, POST)."""
        last = (snapshot or {}).get("reload") or {}
        number = int(last.get("number") or 0)
        if number <= self._reload_seen:
            return
        first, self._reload_seen = self._reload_seen < 0, number
        if first and last.get("ok") is not False:
            return  # reloads before the dashboard looked: nothing to tell
        line = fmt.clean(describe_result("reload", None, last), 500)
        severity = _reload_severity(last)
        self.notify(line, title="config", severity=severity, timeout=_TOLD, markup=False)
        level = "ERROR" if last.get("ok") is False else "INFO"
        record = {"time": self.clock(), "level": level, "logger": "config", "message": line}
        self.query_one(LogPane).write(record)

    def on_pane_action_requested(self, message: Pane.ActionRequested) -> None:
        self.run_action_request(message.action, message.deployment)

    def run_action_request(self, action: str, deployment: str | None = None) -> None:
        """Runs an admin action in a worker and notifies its result."""
        self._run_action(action, deployment)

    @work(group="actions", exit_on_error=False)
    async def _run_action(self, action: str, deployment: str | None) -> dict[str, Any]:
        result = await self.source.action(action, deployment)
        if action == "reload":
            self._reload_seen = max(self._reload_seen, int(result.get("number") or 0))
        # A probe's detail is the upstream's text: never markup.
        line = fmt.clean(describe_result(action, deployment, result), 500)
        severity = _reload_severity(result) if action == "reload" else "information"
        self.notify(line, title=action, markup=False, severity=severity)
        record = {"time": self.clock(), "level": "INFO", "logger": "operator", "message": line}
        self.query_one(LogPane).write(record)  # what was done, and by whom, stays on record
        await self.source.refresh()
        return result

    @on(RequestLogPane.DetailRequested)
    def _open_detail(self, message: RequestLogPane.DetailRequested) -> None:
        request = self.finished.get(message.request["id"], message.request)
        self.push_screen(RequestDetailScreen(request, self.source))

    @on(OpenTester)
    def _open_tester(self, message: OpenTester) -> None:
        self.action_tester(message.preset)  # "test this key", a request's replay

    @on(RequestLogPane.RowAction)
    def _request_action(self, message: RequestLogPane.RowAction) -> None:
        """Copies the request as curl, replays it in the tester, or shows its key."""
        request = self.finished.get(str(message.request["id"]), message.request)
        run = self._tester.run_for(str(request["id"])) if self._tester is not None else None
        if message.action == "curl":
            keyed = self.source.api_key is not None
            line = request_curl(request, run, self.source.base_url, keyed=keyed)
            self.copy_to_clipboard(line)
            self.notify(fmt.clean(line, 2000, keep="\n"), title="copied as curl", markup=False)
        elif message.action == "replay":
            if run is None:
                self.notify("the proxy keeps no prompts: write one to replay", markup=False)
            self.action_tester(replay_preset(request, run))
        elif message.action == "key":
            self._show_key(request.get("deployment"))

    def _show_key(self, dep_id: str | None) -> None:
        table = self.query_one("#keys-table", DataTable)
        if not dep_id or dep_id not in table.rows:
            self.notify("no key served this request", severity="warning")
            return
        if self.zoomed is not None:
            self.action_zoom(self.zoomed)  # back to the home layout, where the Keys pane is
        self.query_one(KeyHealthPane).remove_class("-hidden")
        table.move_cursor(row=table.get_row_index(dep_id), animate=False)
        table.focus()

    @on(KeyHealthPane.DetailRequested)
    def _open_key(self, message: KeyHealthPane.DetailRequested) -> None:
        dep = self.query_one(KeyHealthPane).deployment(message.deployment)
        if dep is None:
            return
        requests = [
            r for r in self.query_one(RequestLogPane).requests.values()
            if r.get("deployment") == message.deployment
        ]  # fmt: skip
        self.push_screen(KeyDetailScreen(dep, requests, self.clock()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self.notify(
                fmt.clean(f"{type(error).__name__}: {error}", 500),
                title=event.worker.name,
                severity="error",
                markup=False,
            )


_TOLD = 15.0
"""Seconds a reload's notice stays (a failed one says why the old config still serves)."""


def _reload_severity(result: dict[str, Any]) -> SeverityLevel:
    if not result.get("ok"):
        return "error"
    return "warning" if result.get("restart_needed") else "information"


def _shown(bindings: Iterable[BindingType]) -> list[Binding]:
    return [b for b in bindings if isinstance(b, Binding) and b.show and b.description]


def describe_result(action: str, deployment: str | None, result: dict[str, Any]) -> str:
    """Returns a one-line account of an action's result."""
    target = f" {deployment}" if deployment else ""
    if action == "probe":
        ok = "ok" if result.get("ok") else "FAILED"
        status = result.get("status")
        latency = result.get("latency_ms") or 0.0
        return f"probe{target}: {ok} (HTTP {status}, {latency:.0f} ms) {result.get('detail', '')}"
    if action == "reload":
        if not result.get("ok"):
            return f"config reload FAILED, the old config keeps serving: {result.get('error')}"
        return f"config reloaded ({result.get('trigger')}): {result.get('summary')}"
    if action == "clear_cache":
        return f"cache cleared: {result.get('cleared', 0)} entries"
    return f"{action}{target}: {'ok' if result.get('ok', True) else result}"
