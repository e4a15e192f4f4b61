"""Where the config comes from, read again on a reload: the YAML file (and the files it
`include:`s), its `.env`, and which variables that `.env` set, so a reload may change those
and never a variable of the real environment.

`ConfigSource.load()` is the first read, `reload()` every later one; `stamp()` is what the file
watch compares. All of it is blocking file I/O: call it off the event loop.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import yaml

from proxy.config.loader import load_config
from proxy.config.types import Config
from proxy.errors import ConfigError

Stamp = tuple[tuple[str, int, int] | None, ...]
"""Per watched file: (path, mtime_ns, size), or None while it does not exist."""


class ConfigSource:
    """The config file and its `.env`; re-read by every reload."""

    def __init__(
        self,
        path: Path,
        env_file: str | None = None,
        *,
        demo: bool = False,
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        """Args:
        path: the config file.
        env_file: `--env-file`, when given (it must exist); else `.env` beside the config,
            else `./.env`.
        demo: the built-in demo config (never watched).
        environ: the environment the `.env` goes into (os.environ).
        """
        self.path = path
        self.env_file = env_file
        self.demo = demo
        self._environ = os.environ if environ is None else environ
        self._from_env: dict[str, str] = {}
        """Variables this source set from the `.env` (name -> the value it set)."""
        self.env_path: Path | None = None
        """The `.env` read last, if any."""
        self._watched: tuple[Path, ...] = ()

    def load(self) -> Config:
        """Reads the `.env` and the config (the first time; a reload is the same).

        Returns:
            The new Config.
        Raises:
            ConfigError: a file is missing or invalid; the environment is then as it was.
        """
        return self.reload()

    def reload(self) -> Config:
        """Re-reads the `.env` (variables it set before may change or go; variables of the
        real environment still win) and the config file.

        Returns:
            The new Config.
        Raises:
            ConfigError: a file is missing or invalid; the environment is then as it was.
        """
        env_path = self._env_path()
        values = _read_env(env_path) if env_path is not None else {}
        before = dict(self._from_env)
        touched = set(before) | set(values)
        saved = {name: self._environ.get(name) for name in touched}
        self._apply_env(values)
        try:
            config = load_config(self.path, demo=self.demo)
        except Exception:  # whatever the failure, the environment goes back as it was
            self._restore(saved)
            self._from_env = before
            raise
        self.env_path = env_path
        self._watched = self._files()
        return config

    def _env_path(self) -> Path | None:
        if self.env_file:
            path = Path(self.env_file).expanduser()
            if not path.is_file():
                raise ConfigError(f"{path}: --env-file does not exist")
            return path
        return next((p for p in self._env_candidates() if p.is_file()), None)

    def _env_candidates(self) -> tuple[Path, ...]:
        if self.env_file:
            return (Path(self.env_file).expanduser(),)
        return (self.path.parent / ".env", Path(".env"))

    def _apply_env(self, values: dict[str, str]) -> None:
        environ = self._environ
        for name, value in self._from_env.items():
            if name not in values and environ.get(name) == value:
                del environ[name]  # it came from the old .env, which no longer sets it
        set_now: dict[str, str] = {}
        for name, value in values.items():
            if name in environ and name not in self._from_env:
                continue  # the real environment wins, as at start-up
            environ[name] = value
            set_now[name] = value
        self._from_env = set_now

    def _restore(self, saved: dict[str, str | None]) -> None:
        for name, value in saved.items():
            if value is None:
                self._environ.pop(name, None)
            else:
                self._environ[name] = value

    def watched(self) -> tuple[Path, ...]:
        """Returns the files a change of which reloads: the config, its includes (as of the
        last good read) and the `.env` (where one would be read, existing or not)."""
        if not self._watched:
            self._watched = self._files()
        return self._watched

    @property
    def known_files(self) -> tuple[Path, ...]:
        """The watched files as last listed (no I/O: for the state document)."""
        return self._watched

    def _files(self) -> tuple[Path, ...]:
        files = [self.path, *_includes(self.path, ())]
        files += [p for p in self._env_candidates() if p not in files]
        return tuple(files)

    def stamp(self) -> Stamp:
        """Returns the modification time and size of every watched file (None: missing)."""
        out: list[tuple[str, int, int] | None] = []
        for path in self.watched():
            try:
                st = path.stat()
            except OSError:
                out.append(None)
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)


def _read_env(path: Path) -> dict[str, str]:
    """Returns the variables a `.env` sets (unset ones left out).

    Raises:
        ConfigError: it cannot be read.
    """
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the .env file ({exc})") from None
    return {name: value for name, value in values.items() if value is not None}


def _includes(path: Path, chain: tuple[Path, ...]) -> list[Path]:
    """Returns the files `path` includes, recursively (unreadable ones still listed, so
    fixing them reloads); the loader reports any error."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    names = data.get("include") if isinstance(data, dict) else None
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        return []
    out: list[Path] = []
    here = (*chain, path.resolve())
    for name in names:
        if not isinstance(name, str):
            continue
        target = (path.parent / name).expanduser()
        if target.resolve() in here:
            continue
        out.append(target)
        out += _includes(target, here)
    return out
