"""One module per SockJS transport; each exports its ``ROUTES``, and the
tables the engine routes with are built here from them.

A handler is ``handler(endpoint, request, exchange, route)``: it answers
through ``exchange`` (respond / stream / upgrade) and touches sessions only
through ``endpoint``. Handlers do no I/O of their own.

A new transport is a new module with its ``ROUTES``, listed in ``_MODULES``,
and its name in :data:`fastsockjs.options.TRANSPORTS` (what the options accept).
"""

from __future__ import annotations

from fastsockjs.options import Options
from fastsockjs.transports import eventsource, htmlfile, info, jsonp, websocket, xhr
from fastsockjs.transports.base import Handler, RouteSpec

_MODULES = (info, xhr, eventsource, htmlfile, jsonp, websocket)

ROUTES: tuple[RouteSpec, ...] = tuple(spec for module in _MODULES for spec in module.ROUTES)

#: Route kind -> handler.
HANDLERS: dict[str, Handler] = {spec.kind: spec.handler for spec in ROUTES}
#: Session endpoint (``/<server>/<session>/<endpoint>``) -> allowed methods.
SESSION_METHODS: dict[str, tuple[str, ...]] = {
    spec.kind: spec.methods for spec in ROUTES if spec.session and spec.methods
}
#: Endpoint -> the transports that use it (it is enabled while any of them is).
ENDPOINT_TRANSPORTS: dict[str, tuple[str, ...]] = {
    spec.kind: spec.transports for spec in ROUTES if spec.transports
}
#: Transports that keep a whole session on one TCP connection.
SINGLE_CONNECTION = frozenset({"websocket", "websocket-raw"})


def enabled_endpoints(options: Options) -> frozenset[str]:
    """The endpoints ``options`` leave on (those without transports always are)."""
    return frozenset(
        spec.kind
        for spec in ROUTES
        if not spec.transports or any(options.enabled(t) for t in spec.transports)
    )


__all__ = [
    "ENDPOINT_TRANSPORTS",
    "HANDLERS",
    "ROUTES",
    "SESSION_METHODS",
    "SINGLE_CONNECTION",
    "enabled_endpoints",
]
