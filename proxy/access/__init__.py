"""Who is calling and what they may spend: virtual keys (`book.VirtualKeys`), their management
(`admin.KeyAdmin`) and the caller a request carries (`caller.Caller`, `caller.MASTER`)."""

from proxy.access.caller import MASTER, Caller

__all__ = ["MASTER", "Caller"]
