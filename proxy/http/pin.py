"""The deployment pin: a request's `x-llmproxy-deployment` header names the one deployment of
its group to try ("test this key"). Only the master key may pin (a proxy without one counts as
the master); a virtual key gets 403, in the front door's error shape."""

from __future__ import annotations

from proxy.access import Caller
from proxy.errors import ProxyError
from proxy.schema import PIN_HEADER


def checked_pin(pin: str, caller: Caller) -> str:
    """Returns `pin` (the header's value) when `caller` may pin a request.

    The router checks that it names a deployment of the requested group (else 400).

    Raises:
        ProxyError: 403, the caller is a virtual key.
    """
    if not caller.master:
        raise ProxyError(
            f"The {PIN_HEADER} header (pinning a request to one deployment) needs the master "
            "key; a virtual key may not send it.",
            status=403,
            type="permission_error",
            code="master_key_required",
            param=PIN_HEADER,
        )
    return pin
