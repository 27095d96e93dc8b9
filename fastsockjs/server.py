"""Server: options, the ``'connection'`` event, mounting and broadcast.

A Server is mounted by a host (the native :class:`fastsockjs.Listener`, or
:class:`fastsockjs.asgi.SockJSApp`), which owns the sockets; the Server only
knows the mounts it was given back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fastsockjs.connection import Connection
from fastsockjs.events import EventEmitter
from fastsockjs.frames import fan_out, text_or_none
from fastsockjs.options import Options, make_options
from fastsockjs.protocol.session import ReadyState

_error_log = logging.getLogger("fastsockjs.error")


class MountedAt(Protocol):
    """A mount as its Server sees it (a host's engine makes it)."""

    prefix: str

    def stats(self) -> dict[str, Any]: ...
    def all_sessions(self) -> list[Any]: ...


class Host(Protocol):
    """What a Server is mounted on."""

    def mount(self, server: Server, options: Options) -> Any: ...


class Server(EventEmitter):
    """A SockJS service, modelled on sockjs-node's ``createServer()``.

    ``server.on('connection', handler)`` (alias ``'open'``) receives each new
    :class:`Connection`. Mount it with :meth:`install_handlers`; one Server can
    be mounted at several prefixes, each with its own option overrides.
    """

    __slots__ = ("options", "endpoints", "log")

    _aliases = {"open": "connection"}

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.options = make_options(options, **kwargs)
        self.endpoints: list[MountedAt] = []
        self.log = self.options.logger or logging.getLogger("fastsockjs")

    def install_handlers(self, host: Host, **overrides: Any) -> Any:
        """Mount on ``host`` (a Listener or a SockJSApp); ``overrides`` replace
        options (e.g. ``prefix``). Returns the mount."""
        return host.mount(self, make_options(self.options, **overrides))

    def attached(self, mount: MountedAt, spawn: Callable[[Any], None]) -> None:
        """Called by the host's engine once mounted: coroutine handlers of
        ``'connection'`` run as tasks through ``spawn``."""
        self.endpoints.append(mount)
        if self._spawn is None:
            self.set_spawner(spawn)

    def detached(self, mount: MountedAt) -> None:
        """Forget ``mount`` (its host has stopped), so the Server can be mounted
        on another host, on another event loop."""
        self.endpoints[:] = [m for m in self.endpoints if m is not mount]
        if not self.endpoints:
            self._spawn = None

    def stats(self) -> dict[str, Any]:
        """Sessions by transport, opened/closed totals, messages and bytes in and
        out, queued bytes, drops and refusals by reason: summed over every mount."""
        total: dict[str, Any] = {
            "sessions": 0,
            "sessions_by_transport": {},
            "opened": 0,
            "closed": 0,
            "messages_in": 0,
            "messages_out": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "dropped": 0,
            "queued_bytes": 0,
            "refused": {},
        }
        for endpoint in self.endpoints:
            part = endpoint.stats()
            for key, value in part.items():
                if isinstance(value, dict):
                    into = total[key]
                    for k, v in value.items():
                        into[k] = into.get(k, 0) + v
                elif key != "prefix":
                    total[key] += value
        total["mounts"] = [e.prefix for e in self.endpoints]
        return total

    def connections(self) -> list[Connection]:
        """Every open connection of this server (all prefixes, all transports)."""
        out: list[Connection] = []
        for endpoint in self.endpoints:
            out.extend(
                s.connection for s in endpoint.all_sessions() if s.state is ReadyState.OPEN
            )
        return out

    def broadcast(self, message: Any, connections: Iterable[Connection]) -> int:
        """Write ``message`` to each connection, encoding it once; returns how many
        took it. Takes what ``conn.write`` takes (a non-string is sent as JSON)."""
        if type(message) is not str:
            message = text_or_none(message, "broadcast", _error_log)
            if message is None:
                return 0
        return fan_out(message, connections)
