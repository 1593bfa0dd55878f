"""One emit point for trace events: the `lowhaio` debug log and the plugins' hooks.

`Tracer(plugins)` builds one pluggy `PluginManager` per pool, refusing misspelt hook names at
once (`check_pending`), and binds each implemented hook once. A request asks `active()` once:
with no plugin and debug logging off it skips every emit, so tracing costs one check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from . import hookspecs

logger = logging.getLogger("lowhaio")

# Each event's debug message; its fields are the hook's arguments.
_CONNECTION = "connection %s %%(scheme)s://%%(host)s:%%(port)s at %%(address)s%%(via)s"
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
        # Per event, each implementation and the arguments it takes. They are called one by
        # one, rather than through the hook, so that one that raises does not keep the event
        # from the others.
        self._hooks: dict[str, list[tuple[Callable[..., object], tuple[str, ...]]]] = {}
        plugins = tuple(plugins)
        if plugins:
            manager = pluggy.PluginManager("lowhaio")
            manager.add_hookspecs(hookspecs)
            for plugin in plugins:
                manager.register(plugin)
            manager.check_pending()
            for event in MESSAGES:
                implementations = getattr(manager.hook, f"lowhaio_{event}").get_hookimpls()
                if implementations:
                    self._hooks[event] = [(i.function, i.argnames) for i in implementations]

    def active(self) -> bool:
        """Whether anything listens: asked once per request."""
        return bool(self._hooks) or logger.isEnabledFor(logging.DEBUG)

    def emit(self, event: str, **fields: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            # Formatted here, so that the record carries no field the message leaves out
            # (response headers, say), for a handler that would show a record's arguments.
            text = {k: v.decode("latin-1") if type(v) is bytes else v for k, v in fields.items()}
            if "via" in text:  # a connection event: through a proxy or a socket path, or not
                text["via"] = f" via {text['via']}" if text["via"] else ""
            logger.debug("request %s: %s", fields["request_id"], MESSAGES[event] % text)
        for function, argnames in self._hooks.get(event, ()):
            try:
                function(*[fields[name] for name in argnames])
            except Exception:
                logger.exception("lowhaio plugin failed in lowhaio_%s", event)
