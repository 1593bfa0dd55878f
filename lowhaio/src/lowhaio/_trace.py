"""One emit point for trace events: the `lowhaio` debug log and the plugins' hooks.

`Tracer(plugins)` builds one pluggy `PluginManager` per pool, refusing misspelt hook names at
once (`check_pending`), and binds each implemented hook once. A request asks `active()` once:
with no plugin and debug logging off it skips every emit, so tracing costs one check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs

logger = logging.getLogger("lowhaio")

# Each event's debug message; its fields are the hook's arguments.
_CONNECTION = "connection %s %%(scheme)s://%%(host)s:%%(port)s at %%(address)s"
MESSAGES = {
    "dns_resolved": "%(host)s resolved to %(addresses)s",
    "connection_opened": _CONNECTION % "opened to",
    "connection_reused": _CONNECTION % "reused to",
    "connection_closed": _CONNECTION % "closed to" + ": %(reason)s",
    "request_head_sent": "%(method)s %(scheme)s://%(host)s:%(port)s%(path)s head sent",
    "request_body_sent": "body sent, %(size)s bytes",
    "response_head_received": "response %(code)s",
    "response_body_received": "response body received, %(size)s bytes",
    "request_failed": "failed: %(error)r",
}


class Tracer:
    """Emits trace events to the debug log and to the plugins that implement their hooks."""

    __slots__ = ("_hooks",)

    def __init__(self, plugins: Iterable[object]) -> None:
        self._hooks: dict[str, Any] = {}
        plugins = tuple(plugins)
        if plugins:
            manager = pluggy.PluginManager("lowhaio")
            manager.add_hookspecs(hookspecs)
            for plugin in plugins:
                manager.register(plugin)
            manager.check_pending()
            for event in MESSAGES:
                hook = getattr(manager.hook, f"lowhaio_{event}")
                if hook.get_hookimpls():
                    self._hooks[event] = hook

    def active(self) -> bool:
        """Whether anything listens: asked once per request."""
        return bool(self._hooks) or logger.isEnabledFor(logging.DEBUG)

    def emit(self, event: str, **fields: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logged = {k: v.decode("latin-1") if type(v) is bytes else v for k, v in fields.items()}
            logger.debug("request %(request_id)s: " + MESSAGES[event], logged)
        hook = self._hooks.get(event)
        if hook is not None:
            try:
                hook(**fields)
            except Exception:
                logger.exception("lowhaio plugin failed in lowhaio_%s", event)
