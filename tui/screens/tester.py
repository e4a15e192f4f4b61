"""The model tester: sends a prompt through the proxy's own front doors (the real paths, local
or attached) as Chat Completions, Anthropic Messages or OpenAI Responses, streams the answer as
Markdown, and keeps a history of runs. "Test this key" pins each send to that one deployment
(the `x-llmproxy-deployment` request header); ctrl+t unpins and pins again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Markdown, OptionList, Select, Static, TextArea
from textual.worker import Worker

from tui.panes import format as fmt
from tui.screens.tester_wire import (
    FORMATS,
    Delta,
    Prompt,
    StreamReader,
    WireFormat,
    curl_command,
    error_message,
    placeholder_body,
)


@dataclass(frozen=True)
class TesterPreset:
    """What the tester opens with: "test this key" (its group, the key it is for) or a replay
    (the group, API and, for a request the tester sent, its prompt)."""

    group: str
    deployment: str | None = None
    """The key under test: every send to its group carries `x-llmproxy-deployment`, so the
    proxy tries that deployment alone (no other key, no fallback, no cache) until unpinned."""
    wire: str | None = None
    prompt: str | None = None
    system: str | None = None
    temperature: float | None = None
    send: bool = False
    """Send at once (a replay of a prompt the tester sent)."""


class OpenTester(Message):
    """Asks the app to open the tester with a preset (from a key's detail or a request row)."""

    def __init__(self, preset: TesterPreset) -> None:
        super().__init__()
        self.preset = preset


@dataclass
class TesterRun:
    """One test: what was sent and what came back."""

    group: str
    prompt: str
    system: str = ""
    temperature: float | None = None
    started_at: float = 0.0
    wire: str = "chat"
    """The API it went through: a key of `tester_wire.FORMATS`."""
    answer: str = ""
    request_id: str | None = None
    deployment: str | None = None
    provider: str | None = None
    cache: str | None = None
    status: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    cost_known: bool = False
    error: str | None = None
    target: str | None = None
    """The deployment the run was pinned to (`x-llmproxy-deployment`), if any."""

    @property
    def format(self) -> WireFormat:
        return FORMATS[self.wire]

    def body(self) -> dict[str, Any]:
        """Returns the streamed request, in the run's API."""
        return self.format.build(Prompt(self.group, self.prompt, self.system, self.temperature))

    def result_line(self) -> Text:
        """Returns `served by … via API · TTFT · latency · tokens · cost · cache`."""
        via = f"{self.format.label} ({self.format.path})"
        pinned = fmt.plain(f" · pinned to {self.target}", 80, "bold") if self.target else Text()
        if self.error:
            out = Text("✖ ", style="bold red")
            out.append_text(fmt.plain(self.error, 300, style="bold red"))
            return out.append(f"  via {via}", style="dim").append_text(pinned)
        if self.latency_ms is None:
            out = fmt.plain(f"sending to {self.group} via {via}…", 200, "dim")
            return out.append_text(pinned)
        cost = fmt.dollars(self.cost) if self.cost_known else "—"
        tokens = (
            f"{self.usage.get('prompt_tokens', '?')} in / "
            f"{self.usage.get('completion_tokens', '?')} out"
        )
        out = Text("served by ", style="dim")  # the names come from response headers
        out.append_text(fmt.plain(self.deployment or "?", 60, style="bold"))
        out.append_text(fmt.plain(f" ({self.provider or '?'}) via {self.format.label}", 80))
        out.append(
            f" · TTFT {fmt.ms(self.ttft_ms)} · {fmt.ms(self.latency_ms)} · {tokens} · {cost}"
            f" · cache {self.cache or '—'}"
        )
        if self.target and self.deployment and self.deployment != self.target:
            # Only a proxy that ignores the pin (one older than it) lets another key answer.
            out.append_text(
                fmt.plain(f" · not {self.target}: the group picked another key", 80, "yellow")
            )
        return out.append_text(pinned)

    def label(self) -> Text:
        """Returns the history line: `12:00:01 group · API · latency · first words`."""
        first = self.prompt.strip().splitlines()[0][:24] if self.prompt.strip() else ""
        state = "✖" if self.error else fmt.ms(self.latency_ms)
        line = f"{fmt.clock_time(self.started_at)} {self.group} · {self.wire} · {state} · {first}"
        return fmt.plain(line)


class TesterScreen(Screen[None]):
    """Pick a group and an API, write a prompt, ctrl+s sends; escape goes back to the panes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("ctrl+f", "next_format", "API", priority=True),
        Binding("ctrl+t", "toggle_pin", "Pin/unpin key", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__(id="tester")
        self.runs: list[TesterRun] = []
        self.shown: TesterRun | None = None
        self.worker: Worker[TesterRun] | None = None
        """The latest send."""
        self.target: TesterPreset | None = None
        """The key under test ("test this key"), kept while unpinned so ctrl+t pins again."""
        self.pinned = False
        """Sends to the target's group carry its pin (`pin`)."""
        self._preset: TesterPreset | None = None

    def compose(self) -> ComposeResult:
        blink = bool(getattr(self.app, "blink", True))
        yield Static(title(FORMATS["chat"]), id="tester-title")
        with Horizontal(id="tester-body"):
            with Vertical(id="tester-form"):
                with Horizontal(id="tester-options"):
                    yield Select[str]([], prompt="model group", id="tester-group")
                    yield Select[str](
                        [(f.label, f.name) for f in FORMATS.values()],
                        value="chat",
                        allow_blank=False,
                        id="tester-format",
                    )
                    yield self._input("temperature", "tester-temp", blink)
                yield self._input("system prompt (optional)", "tester-system", blink)
                area = TextArea(id="tester-prompt", show_line_numbers=False)
                area.cursor_blink = blink
                area.border_title = "prompt (ctrl+s sends)"
                yield area
                yield Static("", id="tester-pin")
                yield Static("", id="tester-result")
                with VerticalScroll(id="tester-answer-box"):
                    yield Markdown("", id="tester-answer")
            yield OptionList(id="tester-history")
        yield Footer()

    @staticmethod
    def _input(placeholder: str, input_id: str, blink: bool) -> Input:
        box = Input(placeholder=placeholder, id=input_id)
        box.cursor_blink = blink
        return box

    def on_mount(self) -> None:
        self.query_one("#tester-history", OptionList).border_title = "history"
        self._show_pin()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        source = getattr(self.app, "source", None)
        snapshot = source.snapshot() if source is not None else None
        groups = [g["name"] for g in (snapshot or {}).get("groups", []) if "*" not in g["name"]]
        select = self.query_one("#tester-group", Select)
        current = select.value
        select.set_options([(fmt.plain(g, 60), g) for g in groups])
        preset, self._preset = self._preset, None
        if preset is not None and preset.group not in groups:
            groups.append(preset.group)  # a wildcard's model, or a group not in the snapshot
            select.set_options([(fmt.plain(g, 60), g) for g in groups])
        if preset is not None:
            select.value = preset.group
        elif current in groups:
            select.value = current
        elif groups:
            select.value = groups[0]
        if preset is not None:
            self._apply(preset)
        self.query_one("#tester-prompt", TextArea).focus()
        if preset is not None and preset.send:
            self.action_send()

    def preset(self, preset: TesterPreset) -> None:
        """Opens with `preset` next time the screen shows (the app pushes it right after)."""
        self._preset = preset

    def _apply(self, preset: TesterPreset) -> None:
        if preset.wire in FORMATS:
            self.query_one("#tester-format", Select).value = preset.wire
        if preset.prompt is not None:
            self.query_one("#tester-prompt", TextArea).text = preset.prompt
        if preset.system is not None:
            self.query_one("#tester-system", Input).value = preset.system
        if preset.temperature is not None:
            self.query_one("#tester-temp", Input).value = str(preset.temperature)
        self.target = preset if preset.deployment else None
        self.pinned = self.target is not None
        self._show_pin()
        if preset.deployment:
            line = Text("testing key ", style="dim")
            line.append_text(fmt.plain(preset.deployment, 60, style="bold"))
            line.append(" through its group ", style="dim")
            line.append_text(fmt.plain(preset.group, 60, style="bold"))
            line.append(": pinned, so no other key of the group answers", style="dim")
            self.query_one("#tester-result", Static).update(line)

    @property
    def pin(self) -> str | None:
        """The deployment the next send is pinned to: the key under test while pinned and its
        group is the one selected, else None (the group picks the key)."""
        target = self.target
        if target is None or not self.pinned:
            return None
        group = self.query_one("#tester-group", Select).value
        return target.deployment if group == target.group else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Shows ctrl+t (pin/unpin) only while a key is under test."""
        return self.target is not None if action == "toggle_pin" else True

    def action_toggle_pin(self) -> None:
        """Unpins the key under test (sends go to its group, any key answers) or pins it again."""
        if self.target is None:
            return
        self.pinned = not self.pinned
        self._show_pin()

    def _show_pin(self) -> None:
        """Says, above the result line, what the next send is pinned to (hidden with no key
        under test)."""
        box = self.query_one("#tester-pin", Static)
        target = self.target
        box.display = target is not None
        self.refresh_bindings()
        if target is None:
            return
        dep = fmt.plain(target.deployment or "", 60, style="bold")
        pin = self.pin
        if pin is not None:
            line = Text("⚑ pinned to ", style="bold yellow").append_text(dep)
            line.append(": only this key answers, no fallback, no cache (ctrl+t unpins)")
        elif self.pinned:
            line = Text("pinned to ", style="dim").append_text(dep)
            line.append_text(fmt.plain(f" for group {target.group} only; this group", 80, "dim"))
            line.append(" is not pinned", style="dim")
        else:
            line = Text("unpinned: the group picks the key (ctrl+t pins to ", style="dim")
            line.append_text(dep).append(" again)", style="dim")
        box.update(line)

    def run_for(self, request_id: str) -> TesterRun | None:
        """Returns the tester's run that made request `request_id`, if it made it."""
        return next((r for r in reversed(self.runs) if r.request_id == request_id), None)

    def action_back(self) -> None:
        self.app.pop_screen()

    @property
    def wire(self) -> str:
        """The API the next prompt goes through (a key of FORMATS)."""
        value = self.query_one("#tester-format", Select).value
        return value if isinstance(value, str) else "chat"

    def action_next_format(self) -> None:
        """Switches to the next API (ctrl+f), as the select does."""
        names = list(FORMATS)
        self.query_one("#tester-format", Select).value = names[
            (names.index(self.wire) + 1) % len(names)
        ]

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "tester-format":
            self.query_one("#tester-title", Static).update(title(FORMATS[self.wire]))
        elif event.select.id == "tester-group":
            self._show_pin()

    def action_send(self) -> None:
        group = self.query_one("#tester-group", Select).value
        prompt = self.query_one("#tester-prompt", TextArea).text
        if not isinstance(group, str) or not prompt.strip():
            self.notify("pick a model group and write a prompt", severity="warning")
            return
        temp_text = self.query_one("#tester-temp", Input).value.strip()
        try:
            temperature = float(temp_text) if temp_text else None
        except ValueError:
            self.notify(
                f"temperature must be a number, not {temp_text!r}",
                severity="warning",
                markup=False,
            )
            return
        system = self.query_one("#tester-system", Input).value
        clock = getattr(self.app, "clock", time.time)
        run = TesterRun(group, prompt, system, temperature, clock(), self.wire)
        run.target = self.pin
        self.runs.append(run)
        self.worker = self.stream(run)

    @work(exclusive=True, group="tester", exit_on_error=False)
    async def stream(self, run: TesterRun) -> TesterRun:
        """Sends `run` and streams its answer into the Markdown view."""
        self.shown = run
        answer = self.query_one("#tester-answer", Markdown)
        await answer.update("")
        self._show_result(run)
        md_stream = Markdown.get_stream(answer)
        try:
            await self._exchange(run, md_stream.write)
        except httpx.HTTPError as exc:
            run.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            await md_stream.stop()
        await answer.update(safe_markdown(run.answer or ""))
        self._finish(run)
        return run

    async def _exchange(self, run: TesterRun, write: Any) -> None:
        source = getattr(self.app, "source", None)
        base_url = source.base_url if source is not None else ""
        key = source.api_key if source is not None else None
        wire = run.format
        start = time.perf_counter()
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0)) as client,
            client.stream(
                "POST",
                f"{base_url}{wire.path}",
                json=run.body(),
                headers=wire.headers(key, run.target),  # local or attached: the same path
            ) as response,
        ):
            run.status = response.status_code
            run.request_id = response.headers.get("x-request-id")
            run.deployment = response.headers.get("x-llmproxy-deployment")
            run.provider = response.headers.get("x-llmproxy-provider")
            run.cache = response.headers.get("x-llmproxy-cache")
            if response.status_code >= 400:
                run.error = error_message(response.status_code, await response.aread())
                return
            reader = StreamReader(wire)
            async for data in response.aiter_bytes():
                for delta in reader.feed(data):
                    if self._absorb(run, delta):
                        if run.ttft_ms is None:
                            run.ttft_ms = (time.perf_counter() - start) * 1000
                        await write(safe_markdown(delta.text))
            for delta in reader.close():
                self._absorb(run, delta)
        run.latency_ms = (time.perf_counter() - start) * 1000

    @staticmethod
    def _absorb(run: TesterRun, delta: Delta) -> bool:
        """Adds one event to the run. Returns: whether it brought answer text."""
        run.usage.update(delta.usage)
        if delta.error:
            run.error = delta.error
        run.answer += delta.text
        return bool(delta.text)

    def _finish(self, run: TesterRun) -> None:
        finished = getattr(self.app, "finished", {})
        if run.request_id in finished:
            self._set_cost(run, finished[run.request_id])
        self._show_result(run)
        history = self.query_one("#tester-history", OptionList)
        history.add_option(run.label())
        history.highlighted = history.option_count - 1

    def observe(self, events: list[dict[str, Any]]) -> None:
        """Takes cost from the `request_finished` event of a run's request id."""
        by_id = {run.request_id: run for run in self.runs[-20:] if run.request_id}
        for event in events:
            run = by_id.get(str(event.get("id")))
            if run is not None and event.get("type") == "request_finished":
                self._set_cost(run, event)
                if run is self.shown and self.is_mounted:
                    self._show_result(run)

    @staticmethod
    def _set_cost(run: TesterRun, event: dict[str, Any]) -> None:
        run.cost = event.get("cost")
        run.cost_known = run.cost is not None

    def _show_result(self, run: TesterRun) -> None:
        self.query_one("#tester-result", Static).update(run.result_line())

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        run = self.runs[event.option_index]
        self.shown = run
        self.query_one("#tester-prompt", TextArea).text = run.prompt
        await self.query_one("#tester-answer", Markdown).update(safe_markdown(run.answer or ""))
        self._show_result(run)


def safe_markdown(text: str) -> str:
    """Returns an answer's Markdown with control characters (escape sequences) shown escaped,
    its lines and tabs kept: the model's text is rendered, never sent to the terminal."""
    return fmt.clean(text, keep="\n\t\r")


def title(wire: WireFormat) -> str:
    """Returns the tester's title line, naming the API prompts go through."""
    return f"Tester — sends through the proxy's {wire.path} ({wire.label})"


def replay_preset(request: dict[str, Any], run: TesterRun | None) -> TesterPreset:
    """Returns what the tester opens with to replay `request`: the run's own prompt (and pin),
    sent at once, when the tester made it; else its group and API, the prompt to write (the
    proxy keeps no prompts)."""
    if run is not None:
        return TesterPreset(
            run.group,
            deployment=run.target,
            wire=run.wire,
            prompt=run.prompt,
            system=run.system,
            temperature=run.temperature,
            send=True,
        )
    door = str(request.get("front_door") or "chat")
    return TesterPreset(str(request.get("group") or ""), wire=door if door in FORMATS else "chat")


def request_curl(
    request: dict[str, Any], run: TesterRun | None, base_url: str, *, keyed: bool
) -> str:
    """Returns `request` as a curl line (see `tester_wire.curl_command`): the tester's own body
    when it made the request, else its group and API with a placeholder prompt."""
    if run is not None:
        return curl_command(run.format, base_url, run.body(), keyed=keyed, pin=run.target)
    wire = FORMATS.get(str(request.get("front_door") or "chat"), FORMATS["chat"])
    body = placeholder_body(wire, str(request.get("group") or ""), bool(request.get("stream")))
    return curl_command(wire, base_url, body, keyed=keyed)
