"""The master key's one start-up rule: `master_key: os.environ/NAME` with NAME unset is a config
error, never a proxy that quietly asks clients for no key."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.errors import ConfigError

SETTING = "general_settings.master_key"


def require_master_key(missing: Mapping[str, str], where: str) -> None:
    """Checks that the master key, if the config names a variable for it, got a value.

    Args:
        missing: YAML path -> the `os.environ/NAME` variable that was unset or empty.
        where: the config file, for the message.

    Raises:
        ConfigError: the master key names an unset variable (the message names it).
    """
    var = missing.get(SETTING)
    if var is not None:
        raise ConfigError(
            f"{where}: {SETTING}: the environment variable {var} is not set (or empty); "
            f"set it (in the environment or the .env file) or remove {SETTING} to run "
            "without a key"
        )
