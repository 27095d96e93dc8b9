"""A small EventEmitter (on / once / off / emit), modelled on Node's.

Handlers may be plain callables or coroutine functions: a coroutine returned
by a handler is handed to ``spawn`` (given by whoever runs the emitter on an
event loop) so that it runs as a task. An exception raised by a handler is
logged and never propagates into the server.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

_log = logging.getLogger("fastsockjs.error")


class EventEmitter:
    __slots__ = ("_handlers", "_spawn")

    def __init__(self, spawn: Callable[[Any], None] | None = None) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._spawn = spawn

    def set_spawner(self, spawn: Callable[[Any], None]) -> None:
        """Where coroutines returned by handlers are started as tasks."""
        self._spawn = spawn

    _aliases: dict[str, str] = {}

    def _event(self, event: str) -> str:
        return self._aliases.get(event, event)

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: Handler) -> EventEmitter: ...

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event``; usable as a decorator without ``handler``."""
        if handler is None:

            def decorator(fn: H) -> H:
                self.on(event, fn)
                return fn

            return decorator
        self._handlers.setdefault(self._event(event), []).append(handler)
        return self

    add_listener = on

    def once(self, event: str, handler: Handler) -> EventEmitter:
        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return handler(*args)

        return self.on(event, wrapper)

    def off(self, event: str, handler: Handler | None = None) -> EventEmitter:
        """Remove ``handler`` (or every handler of ``event`` when omitted)."""
        name = self._event(event)
        if handler is None:
            self._handlers.pop(name, None)
            return self
        handlers = self._handlers.get(name)
        if handlers and handler in handlers:
            handlers.remove(handler)
        return self

    remove_listener = off

    def remove_all_listeners(self) -> None:
        self._handlers.clear()

    def listeners(self, event: str) -> list[Handler]:
        return list(self._handlers.get(self._event(event), ()))

    def emit(self, event: str, *args: Any) -> bool:
        """Call every handler of ``event``; returns whether there was one."""
        handlers = self._handlers.get(event)
        if not handlers:
            return False
        for handler in handlers[:] if len(handlers) > 1 else handlers:
            try:
                result = handler(*args)
            except Exception:
                _log.exception("error in %r handler %r", event, handler)
                continue
            # A coroutine runs as a task; a Future or Task returned is already
            # running. (None and bools, e.g. from conn.write, are the common case.)
            if result is not None and type(result) is not bool and inspect.iscoroutine(result):
                self._start(handler, result)
        return True

    def emit_each(self, event: str, items: list[Any], alive: Any) -> None:
        """``emit(event, item)`` for each item while ``alive.state`` is OPEN (1).

        The per-message path: handlers are looked up once for the whole batch.
        """
        handlers = self._handlers.get(event)
        if not handlers:
            return
        if len(handlers) > 1:
            for item in items:
                if alive.state != 1:
                    return
                self.emit(event, item)
            return
        handler = handlers[0]
        for item in items:
            if alive.state != 1:
                return
            try:
                result = handler(item)
            except Exception:
                _log.exception("error in %r handler %r", event, handler)
                continue
            if result is not None and type(result) is not bool and inspect.iscoroutine(result):
                self._start(handler, result)

    def _start(self, handler: Handler, coro: Any) -> None:
        if self._spawn is None:
            _log.error("coroutine handler %r needs a running server", handler)
            coro.close()
            return
        try:
            self._spawn(coro)
        except Exception:
            _log.exception("could not start coroutine handler %r", handler)
            coro.close()
