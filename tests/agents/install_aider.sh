#!/usr/bin/env bash
# aider (PyPI `aider-chat`, pinned below) for tests/e2e/test_more_agents.py, in its own virtualenv
# tests/agents/.venv, apart from the project's Python packages (aider pins ~100 exact versions,
# litellm and openai among them). About 690 MB and 1-2 minutes from PyPI; a second run that
# finds the pinned version installed does nothing.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=0.86.2
VENV=.venv
if [ -x "$VENV/bin/aider" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null)" = "$VERSION" ]; then
    echo "aider-chat $VERSION already in tests/agents/$VENV"
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
# the machine's pip config lists local indexes that may be absent: their warnings are noise
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aider-chat==$VERSION" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
test -x "$VENV/bin/aider"
"$VENV/bin/python" -c 'import importlib.metadata as m; print("aider-chat", m.version("aider-chat"), "in tests/agents/.venv")'
