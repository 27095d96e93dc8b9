"""What the two ASGI directions share: types, scope paths, headers, detection."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from fastsockjs.protocol.http import Request, fold_header
from fastsockjs.protocol.routing import owns

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bytes queued towards the ASGI server (or the native socket) above which a
#: sink reports ``paused``; it reports writable again below LOW_WATER.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


class ClientDisconnected(OSError):
    """``send`` after the client went away (as uvicorn raises it)."""


def is_asgi_app(obj: Any) -> bool:
    """Whether ``obj`` looks like an ASGI 3 application: a callable taking
    exactly three positional arguments (``scope, receive, send``).

    A Listener fallback takes one (the request), so the two never collide.
    """
    if obj is None or not callable(obj):
        return False
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) == 3 and not any(
        p.kind is p.VAR_POSITIONAL for p in sig.parameters.values()
    )


def paths(scope: Scope) -> tuple[str, str]:
    """``(route_path, full_path)`` of an http/websocket scope.

    ``route_path`` is the path below ``root_path`` (where this application is
    mounted: a Starlette ``Mount``, ``uvicorn --root-path``), ``full_path``
    the whole path the client asked for. Both are kept undecoded (from
    ``raw_path``) when the scope allows it, as the native server sees them.
    """
    path: str = scope.get("path", "") or ""
    root: str = scope.get("root_path", "") or ""
    full = path if (not root or owns(root, path)) else root + path
    raw = scope.get("raw_path")
    if raw:
        text = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        text = text.partition("?")[0]
        if _decoded(text) == full:
            full_raw = text
        else:
            full_raw = ""
    else:
        full_raw = ""
    if not full_raw:
        full_raw = quote(full, safe="/:@!$&'()*+,;=~-._%")
    if root and owns(root, full_raw):
        rel = full_raw[len(root) :]
    elif root and owns(root, full):
        rel = full[len(root) :]
    else:
        rel = full_raw
    return rel, full_raw


def _decoded(text: str) -> str:
    if "%" not in text:
        return text
    try:
        return unquote(text.encode("latin-1").decode("utf-8"), errors="surrogateescape")
    except UnicodeDecodeError:
        return unquote(text)


def scope_headers(scope: Scope) -> dict[str, str]:
    """An ASGI header list as the native parser folds it (lower-case names,
    repeated headers joined with ``", "``)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        fold_header(out, name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def request_from_scope(scope: Scope, full_path: str, body: bytes = b"") -> Request:
    """The native :class:`Request` for an ASGI http or websocket scope."""
    headers = scope_headers(scope)
    query = scope.get("query_string") or b""
    url = full_path + ("?" + query.decode("latin-1") if query else "")
    client = scope.get("client") or (None, None)
    websocket = scope.get("type") == "websocket"
    if websocket:
        # The ASGI server has already accepted the handshake: make sure what
        # the transport re-checks is there even when the server (HTTP/2's
        # extended CONNECT, for one) does not pass the HTTP/1.1 headers on.
        headers.setdefault("upgrade", "websocket")
        if "upgrade" not in {t.strip().lower() for t in headers.get("connection", "").split(",")}:
            headers["connection"] = "Upgrade"
        headers.setdefault("sec-websocket-version", "13")
        headers.setdefault("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==")
    return Request(
        "GET" if websocket else str(scope.get("method", "GET")),
        url,
        headers,
        str(scope.get("http_version", "1.1")),
        True,
        body,
        (client[0], client[1]),
        websocket,
    )


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
