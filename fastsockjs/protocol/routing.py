"""Paths under a prefix -> what answers them, or 404 / 405 (sans-I/O).

The table mirrors the protocol definition: the greeting, ``/info``,
``/iframe*.html``, raw ``/websocket``, and session URLs
``/<server_id>/<session_id>/<transport>`` where neither id is empty or has a
dot. A trailing slash is tolerated everywhere, as sockjs-node does.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Route", "NotFound", "MethodNotAllowed", "route", "owns"]

_SESSION_RE = re.compile(r"/([^/.]+)/([^/.]+)/([a-z_]+)/?")
_IFRAME_RE = re.compile(r"/iframe[0-9a-z._-]*\.html/?")


class Route(NamedTuple):
    """What answers a request. A tuple, immutable and built in a quarter of the time
    of a frozen dataclass: a session's first request of each kind builds one, and
    with more sessions than the mount remembers (4096 paths), every request does."""

    #: greeting, iframe, info, info_options, raw_websocket, options, or a
    #: session endpoint name (xhr, xhr_send, ..., websocket).
    kind: str
    server_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


NOT_FOUND = NotFound()


def owns(prefix: str, path: str) -> bool:
    """Whether ``path`` is under ``prefix`` (``prefix``, ``prefix/``, ``prefix/...``)."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or path[len(prefix)] == "/"


def route(
    session_methods: Mapping[str, tuple[str, ...]],
    enabled: Collection[str],
    method: str,
    rest: str,
) -> Route | NotFound | MethodNotAllowed:
    """Route ``rest``, the path after the prefix ('' or starting with '/').

    ``session_methods``: each session endpoint's allowed methods (the
    transports' table); ``enabled``: the endpoints the mount's options leave on.
    """
    if rest in ("", "/"):
        return _only(method, ("GET",), Route("greeting"))
    m = _SESSION_RE.fullmatch(rest)
    if m is not None:
        endpoint = m.group(3)
        methods = session_methods.get(endpoint)
        if methods is None or endpoint not in enabled:
            return NOT_FOUND
        if method == "OPTIONS" and "OPTIONS" in methods:
            return Route("options", m.group(1), m.group(2))
        return _only(method, methods, Route(endpoint, m.group(1), m.group(2)))
    if rest in ("/info", "/info/"):
        if method == "OPTIONS":
            return Route("info_options")
        return _only(method, ("GET", "OPTIONS"), Route("info"))
    if rest in ("/websocket", "/websocket/"):
        if "raw_websocket" not in enabled:
            return NOT_FOUND
        return _only(method, ("GET",), Route("raw_websocket"))
    if _IFRAME_RE.fullmatch(rest):
        return _only(method, ("GET",), Route("iframe"))
    return NOT_FOUND


def _only(method: str, methods: tuple[str, ...], ok: Route) -> Route | MethodNotAllowed:
    if method in methods:
        return ok
    return MethodNotAllowed(methods)
