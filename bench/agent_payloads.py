"""An agent-sized conversation in three client wire formats, and the upstreams' streamed answers.

One coding-agent turn, the same content in each format: a system prompt, 25 tools with JSON
schemas like the ones Claude Code, Codex and OpenCode send, and 40 messages (the task, 18 tool
round trips with file contents and command output, a short reply, a follow-up and one more tool
round trip). `request(door, model)` writes it as a Chat Completions, Messages or Responses body
(about 60 KB each). The answers are what the vendors stream for a short text and one tool call,
about 20 SSE events each: `chat_stream()` (Chat Completions chunks), `messages_stream()`
(Anthropic Messages events) and `responses_stream()` (Responses events; like OpenAI's, the
`response.created`, `in_progress` and `completed` events repeat the request's tools).
"""

from __future__ import annotations

import json
from typing import Any

SESSION_ID = "5b0c3f1e-8d2a-4c57-9e61-0f3a2b7c9d14"
USAGE_IN, USAGE_OUT, USAGE_CACHED = 15_412, 86, 14_080
CREATED = 1_735_000_000

_SYSTEM = (
    "You are an interactive coding agent working in the user's repository. You can read and "
    "edit files, run shell commands and search the code with the tools provided. Follow the "
    "repository's conventions: read the surrounding code before you change it, keep changes "
    "small and focused, and never invent APIs or file paths. Run the project's tests after "
    "every change that could affect behaviour, and report failures with the exact output. "
    "When a command may take long, set a timeout. Prefer the dedicated file tools to shell "
    "commands such as cat, sed or grep. Use the todo list to plan multi-step work and mark each "
    "step done as soon as it is. Answer concisely: a few sentences, with file paths and line "
    "numbers as path:line. Do not add comments that restate the code. Never commit, push or "
    "change git configuration unless the user asks. If the user's request is ambiguous, ask "
    "one short question instead of guessing. Working directory: /home/dev/project. Platform: "
    "linux. Today's date: 2026-03-14. The repository is a Python 3.11 web service with its "
    "tests under tests/ (pytest), its sources under src/service/ and a pyproject.toml."
)


def _s(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


def _obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


_PATH = _s("string", "The absolute path of the file (must start with /, never relative).")
_TOOL_SPECS: list[tuple[str, str, dict[str, Any]]] = [
    ("Read", "Reads a file from the local filesystem. You can read any file directly with this "
     "tool. By default it reads up to 2000 lines from the beginning of the file; you can give a "
     "line offset and limit for long files, but it is usually better to read the whole file. "
     "Lines longer than 2000 characters are cut. Results are returned as cat -n output, with "
     "line numbers starting at 1. It can read images, PDFs and Jupyter notebooks, returning "
     "their content for you to look at. It reads files, not directories: use LS for those.",
     _obj(["file_path"], file_path=_PATH,
          offset=_s("integer", "The line number to start reading from. Only give it when the "
                    "file is too large to read at once."),
          limit=_s("integer", "The number of lines to read. Only give it when the file is too "
                   "large to read at once."))),
    ("Write", "Writes a file to the local filesystem, overwriting the existing file if there is "
     "one. If the file exists you must Read it first in this conversation, or the write fails. "
     "Prefer editing existing files; never write new documentation files unless asked.",
     _obj(["file_path", "content"], file_path=_PATH,
          content=_s("string", "The content to write to the file."))),
    ("Edit", "Performs exact string replacements in files. You must Read the file first. Keep "
     "the indentation exactly as it appears after the line-number prefix of Read's output. The "
     "edit fails if old_string is not unique in the file: give more surrounding context to make "
     "it unique, or use replace_all to change every instance of old_string.",
     _obj(["file_path", "old_string", "new_string"], file_path=_PATH,
          old_string=_s("string", "The text to replace."),
          new_string=_s("string", "The text to replace it with (must differ from old_string)."),
          replace_all=_s("boolean", "Replace every occurrence of old_string (default false).",
                         default=False))),
    ("MultiEdit", "Makes several edits to one file in one operation, applied in order; each edit "
     "works on the result of the previous one. All edits must succeed or none is applied.",
     _obj(["file_path", "edits"], file_path=_PATH,
          edits=_s("array", "The edits to apply, in order.", minItems=1,
                   items=_obj(["old_string", "new_string"],
                              old_string=_s("string", "The text to replace."),
                              new_string=_s("string", "The text to replace it with."),
                              replace_all=_s("boolean", "Replace every occurrence.",
                                             default=False))))),
    ("Bash", "Executes a bash command in a persistent shell session with an optional timeout. "
     "Before creating directories or files, check the parent exists with LS. Always quote paths "
     "that contain spaces. The command's output is cut after 30000 characters. Avoid find, grep, "
     "cat, head and tail: use Glob, Grep and Read. Chain dependent commands with &&; run "
     "independent ones as separate calls. Keep the working directory unchanged by using "
     "absolute paths instead of cd. Never use interactive flags such as git rebase -i.",
     _obj(["command"], command=_s("string", "The command to execute."),
          timeout=_s("number", "Optional timeout in milliseconds (at most 600000)."),
          description=_s("string", "A clear description of what the command does, in 5 to 10 "
                         "words, in the active voice."),
          run_in_background=_s("boolean", "Run the command in the background and read its "
                               "output later with BashOutput."))),
    ("BashOutput", "Retrieves output from a running or finished background shell. Returns only "
     "the output that is new since the last call, with the shell's status.",
     _obj(["bash_id"], bash_id=_s("string", "The id of the background shell."),
          filter=_s("string", "Optional regular expression: only matching lines are shown."))),
    ("KillShell", "Kills a running background shell by its id.",
     _obj(["shell_id"], shell_id=_s("string", "The id of the background shell to kill."))),
    ("Glob", "Fast file pattern matching that works with any codebase size. Supports patterns "
     "such as **/*.js or src/**/*.ts and returns matching paths sorted by modification time. "
     "Use it to find files by name; for open-ended searches that need several rounds of "
     "globbing and grepping, use the Task tool instead.",
     _obj(["pattern"], pattern=_s("string", "The glob pattern to match files against."),
          path=_s("string", "The directory to search in (default: the working directory)."))),
    ("Grep", "A powerful search tool built on ripgrep. Supports full regular expression syntax, "
     "filters files with glob or type, and has output modes content (matching lines), "
     "files_with_matches (paths only, the default) and count. Literal braces need escaping.",
     _obj(["pattern"], pattern=_s("string", "The regular expression to search for."),
          path=_s("string", "File or directory to search in (default: working directory)."),
          glob=_s("string", "Glob pattern to filter files, e.g. *.py or *.{ts,tsx}."),
          type=_s("string", "File type to search, e.g. py, js, rust."),
          output_mode=_s("string", "What to return.",
                         enum=["content", "files_with_matches", "count"]),
          context=_s("integer", "Lines of context before and after each match (content mode)."),
          case_insensitive=_s("boolean", "Case-insensitive search."),
          multiline=_s("boolean", "Let patterns span lines (. matches newlines)."),
          head_limit=_s("integer", "Show only the first N lines or entries."))),
    ("LS", "Lists files and directories in a given path. The path must be absolute. You can give "
     "glob patterns to ignore. Prefer Glob and Grep when you know which files to look for.",
     _obj(["path"], path=_s("string", "The absolute path of the directory to list."),
          ignore=_s("array", "Glob patterns to ignore.", items={"type": "string"}))),
    ("WebFetch", "Fetches content from a URL and processes it with a small fast model, using the "
     "prompt to extract what you need. HTTP is upgraded to HTTPS; results are cached for 15 "
     "minutes. When a URL redirects to another host, the tool reports the redirect.",
     _obj(["url", "prompt"], url=_s("string", "The URL to fetch.", format="uri"),
          prompt=_s("string", "What to extract from the fetched page."))),
    ("WebSearch", "Searches the web and returns result blocks with titles and URLs, for facts "
     "beyond your training data. Domain filters restrict or exclude sites.",
     _obj(["query"], query=_s("string", "The search query.", minLength=2),
          allowed_domains=_s("array", "Only include results from these domains.",
                             items={"type": "string"}),
          blocked_domains=_s("array", "Never include results from these domains.",
                             items={"type": "string"}))),
    ("TodoWrite", "Creates and manages a structured task list for the current session, to track "
     "progress on complex multi-step work and show the user what is being done. Mark a task "
     "in_progress before starting it and completed as soon as it is done; only one task should "
     "be in_progress at a time.",
     _obj(["todos"], todos=_s("array", "The updated todo list.",
                              items=_obj(["content", "status", "activeForm"],
                                         content=_s("string", "The task, imperative form.",
                                                    minLength=1),
                                         status=_s("string", "The task's state.",
                                                   enum=["pending", "in_progress", "completed"]),
                                         activeForm=_s("string", "The task, present continuous "
                                                       "form, shown while it runs."))))),
    ("NotebookEdit", "Replaces, inserts or deletes a cell of a Jupyter notebook (.ipynb). Cell "
     "numbers are 0-indexed.",
     _obj(["notebook_path", "new_source"], notebook_path=_PATH,
          cell_id=_s("string", "The id of the cell to edit, or to insert after."),
          new_source=_s("string", "The new source of the cell."),
          cell_type=_s("string", "The cell's type.", enum=["code", "markdown"]),
          edit_mode=_s("string", "What to do.", enum=["replace", "insert", "delete"]))),
    ("Task", "Launches a sub-agent to handle a complex, multi-step task on its own: open-ended "
     "code searches, research across many files, or work that needs many tool calls. Each "
     "agent starts with no memory of this conversation, so the prompt must be complete and "
     "say exactly what the agent should report back.",
     _obj(["description", "prompt", "subagent_type"],
          description=_s("string", "A short (3-5 word) description of the task."),
          prompt=_s("string", "The task for the agent to perform."),
          subagent_type=_s("string", "The kind of agent to use.",
                           enum=["general-purpose", "explore", "plan", "review"]))),
    ("ExitPlanMode", "Call when you are in plan mode and have finished writing a plan that is "
     "ready for the user's approval. Only for tasks that need writing code.",
     _obj(["plan"], plan=_s("string", "The plan, in concise markdown."))),
    ("apply_patch", "Applies a patch to files in the repository. The patch uses the apply_patch "
     "format: *** Begin Patch, then for each file *** Add File, *** Update File or *** Delete "
     "File with its path, hunks introduced by @@ with the surrounding context, lines starting "
     "with + or - or a space, and *** End Patch. Paths are relative to the working directory.",
     _obj(["input"], input=_s("string", "The whole patch, from *** Begin Patch to *** End "
                              "Patch."))),
    ("git_status", "Shows the working tree status: staged, unstaged and untracked files, and "
     "the current branch with its upstream.",
     _obj([], porcelain=_s("boolean", "Machine-readable output (default true)."),
          untracked=_s("string", "How to show untracked files.", enum=["no", "normal", "all"]))),
    ("git_diff", "Shows changes between the working tree, the index and commits, as a unified "
     "diff. Without arguments, the unstaged changes.",
     _obj([], staged=_s("boolean", "Show staged changes instead of unstaged ones."),
          base=_s("string", "A commit or branch to diff against."),
          paths=_s("array", "Limit the diff to these paths.", items={"type": "string"}),
          context_lines=_s("integer", "Lines of context around each change.", minimum=0,
                           maximum=50))),
    ("git_log", "Shows the commit history, newest first.",
     _obj([], max_count=_s("integer", "How many commits to show.", minimum=1, maximum=200),
          path=_s("string", "Only commits touching this path."),
          since=_s("string", "Only commits after this date (ISO 8601)."),
          format=_s("string", "The output format.", enum=["oneline", "short", "full"]))),
    ("run_tests", "Runs the project's test suite or a subset of it with pytest and returns the "
     "summary and the output of failing tests. Use it after every change.",
     _obj([], paths=_s("array", "Test files or node ids to run (default: all).",
                       items={"type": "string"}),
          keyword=_s("string", "Only tests matching this -k expression."),
          fail_fast=_s("boolean", "Stop at the first failure (-x)."),
          timeout_s=_s("integer", "Give up after this many seconds.", minimum=1,
                       maximum=3600))),
    ("lint", "Runs the project's linters (ruff, mypy) on the given paths and returns every "
     "finding as path:line:column: code message.",
     _obj([], paths=_s("array", "Files or directories (default: the whole project).",
                       items={"type": "string"}),
          fix=_s("boolean", "Apply the safe automatic fixes."))),
    ("search_symbols", "Finds definitions and references of a symbol (function, class, method, "
     "variable) across the codebase using the language server.",
     _obj(["symbol"], symbol=_s("string", "The symbol's name, optionally qualified "
                                "(module.Class.method)."),
          kind=_s("string", "What to find.", enum=["definition", "references", "both"]),
          path=_s("string", "Limit the search to this directory."))),
    ("open_pull_request", "Opens a pull request for the current branch with a title and a "
     "description. Only when the user asks for one.",
     _obj(["title", "body"], title=_s("string", "The title, under 70 characters.", maxLength=70),
          body=_s("string", "The description in markdown: summary and test plan."),
          base=_s("string", "The branch to merge into (default: main)."),
          draft=_s("boolean", "Open it as a draft."))),
    ("ask_user", "Asks the user one question and waits for the answer, with optional choices. "
     "Use it only when the request is ambiguous and guessing could waste work.",
     _obj(["question"], question=_s("string", "The question."),
          options=_s("array", "Up to four suggested answers.", maxItems=4,
                     items=_obj(["label"], label=_s("string", "The answer as shown."),
                                description=_s("string", "What choosing it means."))))),
]  # fmt: skip
assert len(_TOOL_SPECS) == 25, len(_TOOL_SPECS)


def _source(name: str, n: int, lines: int) -> str:
    """A plausible Python module excerpt, as Read returns it (cat -n)."""
    out = [f'     1\t"""{name}: the service\'s {name.replace("_", " ")} handling."""', "     2\t"]
    out.append("     3\tfrom __future__ import annotations")
    for i in range(4, lines + 1):
        k = (i + n) % 7
        if k == 0:
            text = f"def {name}_step_{i}(request: Request, *, timeout: float = 30.0) -> Response:"
        elif k == 1:
            text = f'    """Handles step {i} of {name}: validates the payload, then stores it."""'
        elif k == 2:
            text = f"    payload = await request.json()  # {name}:{i}"
        elif k == 3:
            text = f"    if not isinstance(payload.get('items'), list) or len(payload) > {i * 3}:"
        elif k == 4:
            text = f"        raise BadRequest('items must be a list of at most {i * 3} entries')"
        elif k == 5:
            text = f"    result = await store.save(payload, session=request.session_id, n={n})"
        else:
            text = "    return Response(status=201, body=result.as_json())"
        out.append(f"{i:6d}\t{text}")
    return "\n".join(out)


def _turn(i: int) -> tuple[str, str, dict[str, Any], str]:
    """The assistant's text, its tool call (name, arguments) and the tool's result, for turn i."""
    mod = ("sessions", "billing", "accounts", "webhooks", "quotas", "exports")[i % 6]
    kind = i % 6
    if kind == 0:
        return (f"Let me read the {mod} module first.", "Read",
                {"file_path": f"/home/dev/project/src/service/{mod}.py"},
                _source(mod, i, 54))  # fmt: skip
    if kind == 1:
        hits = "\n".join(
            f"src/service/{mod}.py:{10 + 7 * j}:    session_id = request.headers.get("
            f"'x-session-id')  # hit {j}"
            for j in range(18)
        )
        return (f"Now where the session id is read in {mod}.", "Grep",
                {"pattern": "session_id\\s*=", "path": "/home/dev/project/src",
                 "output_mode": "content", "context": 0}, hits)  # fmt: skip
    if kind == 2:
        out = "\n".join(
            f"tests/unit/test_{mod}.py::test_case_{j} " + ("PASSED" if j % 5 else "FAILED")
            for j in range(32)
        )
        return ("Running the unit tests for it.", "Bash",
                {"command": f"python -m pytest -q tests/unit/test_{mod}.py -x",
                 "description": f"Run the {mod} unit tests", "timeout": 120000},
                out + f"\n=== 5 failed, 21 passed in 1.{i:02d}s ===")  # fmt: skip
    if kind == 3:
        return (f"The failing case is in {mod}_step_{i + 4}; fixing the bound check.", "Edit",
                {"file_path": f"/home/dev/project/src/service/{mod}.py",
                 "old_string": f"len(payload) > {(i + 4) * 3}:",
                 "new_string": f"len(payload['items']) > {(i + 4) * 3}:"},
                f"The file /home/dev/project/src/service/{mod}.py has been updated. Here's the "
                "result of running `cat -n` on a snippet of the edited file:\n"
                + _source(mod, i, 16))  # fmt: skip
    if kind == 4:
        listing = "\n".join(f"  - src/service/{mod}/part_{j}.py" for j in range(26))
        return (f"Checking what else lives next to {mod}.", "LS",
                {"path": f"/home/dev/project/src/service/{mod}"},
                f"- /home/dev/project/src/service/{mod}/\n{listing}")  # fmt: skip
    diff = "\n".join(
        f"@@ -{10 + j},3 +{10 + j},3 @@\n-    if len(payload) > {j}:\n+    if len(payload['items'])"
        f" > {j}:"
        for j in range(9)
    )
    return ("Reviewing the diff so far.", "git_diff", {"paths": [f"src/service/{mod}.py"]},
            f"diff --git a/src/service/{mod}.py b/src/service/{mod}.py\n{diff}")  # fmt: skip


_TASK = (
    "The webhook and quota handlers reject valid requests with 'items must be a list' when the "
    "payload has more keys than items. I think every handler in src/service/ checks len(payload) "
    "instead of len(payload['items']). Find all of them, fix them, add a regression test for "
    "each module, and run the whole unit test suite. Don't touch the integration tests."
)
_MIDWAY = (
    "I fixed the bound check in sessions, billing and accounts; webhooks, quotas and exports "
    "have the same pattern and their unit tests fail the same way. Shall I go on with those?"
)
_FOLLOW_UP = "Yes, go on, and run the whole unit suite at the end, not only the touched files."


def conversation() -> list[dict[str, Any]]:
    """The conversation in a neutral form: 40 messages as Chat Completions counts them (the task,
    18 tool round trips, one with two parallel calls, a short reply and a follow-up).

    Returns:
        Dicts with `role` (user, assistant, tool) and `text`, plus `calls` [(id, name,
        arguments)] on assistant turns that call tools and `call_id` on tool results.
    """
    msgs: list[dict[str, Any]] = [{"role": "user", "text": _TASK}]
    for i in range(18):
        turns = [_turn(i)] + ([_turn(i + 19)] if i == 6 else [])
        ids = [f"call_{i:02d}{j}{'x7Kq9Lm2Pz4Rb8Tc'[:13]}" for j in range(len(turns))]
        calls = [(cid, name, args) for cid, (_, name, args, _) in zip(ids, turns, strict=True)]
        msgs.append({"role": "assistant", "text": turns[0][0], "calls": calls})
        msgs += [
            {"role": "tool", "call_id": cid, "name": t[1], "text": t[3]}
            for cid, t in zip(ids, turns, strict=True)
        ]
    msgs.append({"role": "assistant", "text": _MIDWAY})
    msgs.append({"role": "user", "text": _FOLLOW_UP})
    assert len(msgs) == 40, len(msgs)
    return msgs


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _args(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(",", ":"))


# --- requests -----------------------------------------------------------------------------


def chat_body(model: str) -> dict[str, Any]:
    """Returns the Chat Completions body (OpenCode's shape: system message, tool_calls, tool)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": _SYSTEM}]
    for m in conversation():
        if m["role"] == "user":
            messages.append({"role": "user", "content": m["text"]})
        elif m["role"] == "tool":
            messages.append({"role": "tool", "tool_call_id": m["call_id"], "content": m["text"]})
        else:
            msg: dict[str, Any] = {"role": "assistant", "content": m["text"]}
            if m.get("calls"):
                msg["tool_calls"] = [
                    {"id": cid, "type": "function",
                     "function": {"name": name, "arguments": _args(args)}}
                    for cid, name, args in m["calls"]
                ]  # fmt: skip
            messages.append(msg)
    tools = [
        {"type": "function", "function": {"name": n, "description": d, "parameters": p}}
        for n, d, p in _TOOL_SPECS
    ]
    return {
        "model": model,
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 32000,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def messages_body(model: str) -> dict[str, Any]:
    """Returns the Anthropic Messages body (Claude Code's shape: system blocks with
    cache_control, text + tool_use blocks, tool_result blocks, metadata.user_id)."""
    messages: list[dict[str, Any]] = []
    for m in conversation():
        if m["role"] == "user":
            messages.append({"role": "user", "content": [{"type": "text", "text": m["text"]}]})
        elif m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m["call_id"], "content": m["text"]}
            if messages[-1]["role"] == "user":  # parallel calls: their results in one message
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        else:
            content: list[dict[str, Any]] = [{"type": "text", "text": m["text"]}]
            content += [
                {"type": "tool_use", "id": cid, "name": name, "input": args}
                for cid, name, args in m.get("calls", ())
            ]
            messages.append({"role": "assistant", "content": content})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    tools = [{"name": n, "description": d, "input_schema": p} for n, d, p in _TOOL_SPECS]
    user_id = _dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": SESSION_ID})
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-cli;",
            },
            {"type": "text", "text": _SYSTEM, "cache_control": {"type": "ephemeral"}},
        ],  # fmt: skip
        "messages": messages,
        "tools": tools,
        "metadata": {"user_id": user_id},
    }


def responses_tools() -> list[dict[str, Any]]:
    """Returns the tools in the Responses form (as sent, and as echoed in Response objects)."""
    return [
        {"type": "function", "name": n, "description": d, "parameters": p, "strict": False}
        for n, d, p in _TOOL_SPECS
    ]


def responses_body(model: str) -> dict[str, Any]:
    """Returns the Responses body (Codex's shape: developer message, message / function_call /
    function_call_output items, store false, prompt_cache_key)."""
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": _SYSTEM}]},
    ]  # fmt: skip
    for m in conversation():
        if m["role"] == "user":
            items.append({"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": m["text"]}]})  # fmt: skip
        elif m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["call_id"],
                          "output": m["text"]})  # fmt: skip
        else:
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": m["text"]}]})  # fmt: skip
            items += [
                {"type": "function_call", "call_id": cid, "name": name, "arguments": _args(args)}
                for cid, name, args in m.get("calls", ())
            ]
    return {
        "model": model,
        "input": items,
        "tools": responses_tools(),
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "stream": True,
        "store": False,
        "include": [],
        "prompt_cache_key": SESSION_ID,
    }


_BUILDERS = {"chat": chat_body, "messages": messages_body, "responses": responses_body}


def request(wire: str, model: str) -> bytes:
    """Returns the compact JSON body of `wire` (chat, messages, responses) for `model`."""
    return _dumps(_BUILDERS[wire](model)).encode()


# --- streamed answers ---------------------------------------------------------------------

_ANSWER = "The bound check is fixed in all six modules. Running the whole unit suite now."
_CALL_ID = "call_Zk3Qm8Vr2Lp6Hd1Nw"
_CALL_NAME = "Bash"
_CALL_ARGS = _args({"command": "python -m pytest -q tests/unit", "timeout": 300000,
                    "description": "Run the whole unit test suite"})  # fmt: skip


def _pieces(text: str, n: int) -> list[str]:
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else _dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def chat_stream(model: str) -> list[str]:
    """Returns 20 Chat Completions SSE events: role, 7 text chunks, a tool call in 9 chunks,
    the finish chunk, the usage chunk and `data: [DONE]`."""

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> str:
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        ]  # fmt: skip
        return _sse({"id": "chatcmpl-CbAgent0000000000000001", "object": "chat.completion.chunk",
                     "created": CREATED, "model": model, "service_tier": "default",
                     "system_fingerprint": "fp_agent0001", "choices": choices,
                     "usage": usage})  # fmt: skip

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": p}) for p in _pieces(_ANSWER, 7)]
    head = {"index": 0, "id": _CALL_ID, "type": "function",
            "function": {"name": _CALL_NAME, "arguments": ""}}  # fmt: skip
    events.append(chunk({"tool_calls": [head]}))
    events += [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
        for p in _pieces(_CALL_ARGS, 8)
    ]
    events.append(chunk({}, "tool_calls"))
    usage = {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
             "total_tokens": USAGE_IN + USAGE_OUT,
             "prompt_tokens_details": {"cached_tokens": USAGE_CACHED, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}  # fmt: skip
    events.append(chunk(None, usage=usage))
    events.append("data: [DONE]\n\n")
    return events


def messages_stream(model: str) -> list[str]:
    """Returns 20 Anthropic Messages SSE events: message_start with usage, ping, a text block in
    6 deltas, a tool_use block in 6 input_json_delta fragments, message_delta, message_stop."""
    start = {"type": "message_start", "message": {
        "id": "msg_01AgentBenchStream000001", "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN - USAGE_CACHED, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": USAGE_CACHED,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                     "ephemeral_1h_input_tokens": 0},
                  "output_tokens": 1, "service_tier": "standard"}}}  # fmt: skip
    ev = [_sse(start, "message_start")]
    ev.append(
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
    )
    ev.append(_sse({"type": "ping"}, "ping"))
    ev += [
        _sse({"type": "content_block_delta", "index": 0,
              "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
        for p in _pieces(_ANSWER, 6)
    ]  # fmt: skip
    ev.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    block = {"type": "tool_use", "id": "toolu_01AgentBenchCall0001", "name": _CALL_NAME,
             "input": {}}  # fmt: skip
    ev.append(_sse({"type": "content_block_start", "index": 1, "content_block": block},
                   "content_block_start"))  # fmt: skip
    ev += [
        _sse({"type": "content_block_delta", "index": 1,
              "delta": {"type": "input_json_delta", "partial_json": p}}, "content_block_delta")
        for p in ["", *_pieces(_CALL_ARGS, 5)]
    ]  # fmt: skip
    ev.append(_sse({"type": "content_block_stop", "index": 1}, "content_block_stop"))
    ev.append(_sse({"type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"input_tokens": USAGE_IN - USAGE_CACHED,
                              "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": USAGE_CACHED,
                              "output_tokens": USAGE_OUT}}, "message_delta"))  # fmt: skip
    ev.append(_sse({"type": "message_stop"}, "message_stop"))
    return ev


def responses_stream(model: str, *, echo_tools: bool = True) -> list[str]:
    """Returns 21 Responses SSE events: created, in_progress, a message item (added, part added,
    6 text deltas, text done, part done, item done), a function_call item (added, 4 argument
    deltas, arguments done, item done) and completed; each with `type` and `sequence_number`.

    Like OpenAI's, the three Response objects repeat the request's 25 tools (about 17 KB each)
    unless `echo_tools` is false."""
    msg_id, fc_id = "msg_0agentbench0000000000000001", "fc_0agentbench0000000000000002"
    text_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": _ANSWER}
    message = {"id": msg_id, "type": "message", "status": "completed", "role": "assistant",
               "content": [text_part]}  # fmt: skip
    call = {"id": fc_id, "type": "function_call", "status": "completed", "arguments": _CALL_ARGS,
            "call_id": _CALL_ID, "name": _CALL_NAME}  # fmt: skip

    def response(status: str, output: list[Any]) -> dict[str, Any]:
        done = status == "completed"
        usage = {"input_tokens": USAGE_IN, "input_tokens_details": {"cached_tokens": USAGE_CACHED},
                 "output_tokens": USAGE_OUT, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": USAGE_IN + USAGE_OUT}  # fmt: skip
        return {
            "id": "resp_0agentbench00000000000000000001", "object": "response",
            "created_at": CREATED, "status": status, "background": False,
            "completed_at": CREATED + 1 if done else None, "error": None,
            "incomplete_details": None, "instructions": None, "max_output_tokens": None,
            "max_tool_calls": None, "model": model, "output": output,
            "parallel_tool_calls": False, "previous_response_id": None,
            "prompt_cache_key": SESSION_ID, "prompt_cache_retention": None,
            "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
            "service_tier": "default", "store": False, "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
            "tools": responses_tools() if echo_tools else [], "top_logprobs": 0, "top_p": 1.0,
            "truncation": "disabled", "usage": usage if done else None, "user": None,
            "metadata": {},
        }  # fmt: skip

    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, **fields, "sequence_number": len(events)})

    emit("response.created", response=response("in_progress", []))
    emit("response.in_progress", response=response("in_progress", []))
    at = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    emit("response.output_item.added", output_index=0,
         item={**message, "status": "in_progress", "content": []})  # fmt: skip
    emit("response.content_part.added", **at, part={**text_part, "text": ""})
    for p in _pieces(_ANSWER, 6):
        emit("response.output_text.delta", **at, delta=p, logprobs=[], obfuscation="Xq3v")
    emit("response.output_text.done", **at, text=_ANSWER, logprobs=[])
    emit("response.content_part.done", **at, part=text_part)
    emit("response.output_item.done", output_index=0, item=message)
    emit("response.output_item.added", output_index=1,
         item={**call, "status": "in_progress", "arguments": ""})  # fmt: skip
    for p in _pieces(_CALL_ARGS, 4):
        emit("response.function_call_arguments.delta", item_id=fc_id, output_index=1, delta=p,
             obfuscation="p9Z")  # fmt: skip
    emit("response.function_call_arguments.done", item_id=fc_id, output_index=1,
         name=_CALL_NAME, arguments=_CALL_ARGS)  # fmt: skip
    emit("response.output_item.done", output_index=1, item=call)
    emit("response.completed", response=response("completed", [message, call]))
    return [_sse(e, e["type"]) for e in events]
