"""`general_settings.allowed_ips`: which client addresses the proxy serves (read and checked)."""

from __future__ import annotations

import ipaddress

from proxy.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(values: list[str] | None, where: str) -> tuple[Network, ...]:
    """Reads `general_settings.allowed_ips` (addresses or CIDR networks).

    Raises:
        ConfigError: an entry that is neither.
    """
    out: list[Network] = []
    for i, value in enumerate(values or []):
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: general_settings.allowed_ips[{i}]: expected an IP address or a "
                f"network such as 10.0.0.0/8, got {value!r}"
            ) from None
    return tuple(out)


def client_allowed(networks: tuple[Network, ...], host: str | None) -> bool:
    """Whether a client at `host` (the socket's peer address) may be served.

    Returns:
        True when no allow-list is configured, or `host` is in one of `networks`; False for
        any other address, and for a peer whose address is unknown or unreadable.
    """
    if not networks:
        return True
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)
