#!/usr/bin/env python3
"""Atheris target: arbitrary bytes into fastsockjs's HTTP connection.

Each input is fed to a fresh ``fastsockjs.aio.http.HttpProtocol`` with a fake
transport, behind a real ``Listener`` with the test-server services mounted
(echo, close, ticker, amplify, broadcast, cookie_needed_echo,
disabled_websocket_echo), so request routing, every transport, the session
state machine and the WebSocket layer after an upgrade are all reachable.

The first byte of the input picks how the rest is cut into reads (1..255
bytes per ``data_received``, 0 = one read), so the parser's resumption is
exercised as well.

A finding is any of:

* an exception escaping ``data_received`` / ``eof_received`` / ``connection_lost``
  (asyncio would log "Fatal error" and drop the connection);
* an ERROR logged by ``fastsockjs`` or ``asyncio`` (an internal error answered 500);
* bytes written back that are not a valid sequence of HTTP/1.1 responses
  (``httpcheck``), a status outside the protocol's set, a 500 with a body
  the protocol does not define, or invalid WebSocket frames after a 101;
* a write after the transport was closed (silently lost data);
* the connection or a session left registered after the connection ended.

Run (see fuzz/README.md)::

    pip install atheris
    python fuzz/fuzz_http.py -atheris_runs=100000 -dict=fuzz/http.dict fuzz/corpus/http
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpcheck
import wsmodel

try:  # instrument fastsockjs (pure-Python parts) for coverage feedback when fuzzing
    import atheris

    _instrument: contextlib.AbstractContextManager[object] = (
        atheris.instrument_imports(include=["fastsockjs"])
        if __name__ == "__main__"
        else contextlib.nullcontext()
    )
except ImportError:  # the pytest run needs no atheris
    atheris = None
    _instrument = contextlib.nullcontext()

with _instrument:
    from fastsockjs import Listener
    from fastsockjs.aio.http import HttpProtocol
    from fastsockjs.cli import testserver
    from fastsockjs.options import make_options

#: Small limits so that 413 / 414 / 431 / 1009 are within a fuzzer's reach.
MAX_MESSAGE = 4096
#: An upgrade to the echo service's SockJS websocket, without a body: what
#: follows its head is the client's WebSocket stream, checked against wsmodel.
_ECHO_WS = re.compile(rb"GET /echo/[^/.?]+/[^/.?]+/websocket/? HTTP/1\.1")


class FakeTransport:
    """Enough of asyncio.Transport for HttpProtocol; records what is written."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.eof = False
        self.written_after_close = b""
        self.reading = True

    def write(self, data: bytes) -> None:
        if self.closing or self.eof:
            self.written_after_close += bytes(data)
            return
        self.out += data

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Finding(AssertionError):
    pass


class Harness:
    """One listener and loop reused for every input (as one server would be)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors = _Errors()
        self.listener = Listener(
            max_body=MAX_MESSAGE, max_request_line=1024, max_header_bytes=4096
        )
        self.servers = testserver("http://127.0.0.1/static/sockjs.min.js")
        for server in self.servers:
            server.options = make_options(server.options, max_message_size=MAX_MESSAGE)
            server.install_handlers(self.listener)

    def run(self, data: bytes) -> None:
        loggers = [logging.getLogger(name) for name in ("fastsockjs", "asyncio")]
        for logger in loggers:
            logger.addHandler(self.errors)
        try:
            self.loop.run_until_complete(self._one(data))
        finally:
            for logger in loggers:
                logger.removeHandler(self.errors)

    def close(self) -> None:
        for endpoint in self.listener.endpoints:
            for session in endpoint.all_sessions():
                session.expire()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    async def _tick(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def _one(self, data: bytes) -> None:
        listener = self.listener
        del self.errors.records[:]
        step = data[0] if data else 0
        body = data[1:]
        transport = FakeTransport()
        proto = HttpProtocol(listener)
        proto.connection_made(transport)
        lost = False
        try:
            chunks = [body] if not step else [body[i : i + step] for i in range(0, len(body), step)]
            for chunk in chunks:
                if transport.closing:
                    break  # asyncio stops reading once the transport is closing
                # (after write_eof it keeps reading: a lingering close drains the client)
                proto.data_received(chunk)
                await self._tick()
            if not transport.closing and not proto.eof_received():
                transport.close()
            await self._tick()
            proto.connection_lost(None)
            lost = True
            await self._tick()
        finally:
            if not lost:
                proto.connection_lost(None)
            # Everything this input created must be gone once its connection is:
            # the connection, and any WebSocket session it carried (HTTP
            # sessions legitimately wait disconnect_delay for the next request).
            leftover = proto in listener.connections
            open_ws = [
                s
                for endpoint in listener.endpoints
                for s in endpoint.ws_live
                if int(getattr(s, "state", 3)) == 1
            ]
            for endpoint in listener.endpoints:
                for session in endpoint.all_sessions():
                    session.expire()
            listener.timers.close()
        self.check(bytes(transport.out), transport, leftover, open_ws)
        self.check_websocket(body, bytes(transport.out))

    def check(
        self, out: bytes, transport: FakeTransport, leftover: bool, open_ws: list[object]
    ) -> None:
        if self.errors.records:
            rec = self.errors.records[0]
            raise Finding(f"error logged: {rec.getMessage()} {rec.exc_info!r}")
        if transport.written_after_close:
            raise Finding(f"wrote after close: {transport.written_after_close[:120]!r}")
        if leftover:
            raise Finding("connection still registered after connection_lost")
        if open_ws:
            raise Finding(f"WebSocket session(s) outlived their connection: {open_ws!r}")
        parsed = httpcheck.parse_responses(out, eof=True)
        httpcheck.check_responses(parsed)
        last = parsed.responses[-1] if parsed.responses else None
        if last is not None and last.status == 101 and b"WebSocket Protocol Handshake" not in out:
            wsmodel.server_frames(last.upgraded_tail)  # (hixie-76 frames are not RFC 6455)


    @staticmethod
    def check_websocket(sent: bytes, out: bytes) -> None:
        """For an echo WebSocket session, the frames must be what RFC 6455 asks for."""
        end = sent.find(b"\r\n\r\n")
        if end < 0 or not _ECHO_WS.fullmatch(sent[: sent.find(b"\r\n")]):
            return
        head = sent[:end].lower()
        if b"content-length" in head or b"transfer-encoding" in head or b"key1:" in head:
            return
        if not out.startswith(b"HTTP/1.1 101 ") or b"\r\n\r\n\x81\x01o" not in out:
            return
        stream = out[out.index(b"\r\n\r\n\x81\x01o") + 7 :]
        expected = wsmodel.expect_sockjs(sent[end + 4 :], MAX_MESSAGE)
        problem = wsmodel.compare(expected, wsmodel.observe(stream, sockjs=True))
        if problem is not None:
            raise Finding(f"WebSocket: {problem}")


_HARNESS: Harness | None = None


def one_input(data: bytes) -> None:
    """The fuzz target (also called by tests/fuzz/test_fuzz_targets.py)."""
    global _HARNESS
    if _HARNESS is None:
        _HARNESS = Harness()
    _HARNESS.run(data)


def reset() -> None:
    """Drop the shared harness (closes its event loop)."""
    global _HARNESS
    if _HARNESS is not None:
        _HARNESS.close()
        _HARNESS = None


def main() -> None:
    assert atheris is not None, "pip install atheris"
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
