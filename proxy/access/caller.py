"""The caller of a request, as the key check found it: the master key or one virtual key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request."""

    alias: str
    """The virtual key's `key_alias`, else its redacted name (`sk-...abcd`); "" for the master
    key."""
    token: str
    """The virtual key's SHA-256 (hex); "" for the master key."""
    master: bool
    """The master key (or a proxy without one): unlimited, never a row."""


MASTER = Caller("", "", True)
"""The master key's caller (also every caller of a proxy without a master key)."""
