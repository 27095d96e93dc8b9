"""The xhr-polling floor: the least Python that can answer the load generator's
xhr-polling exchange on uvloop, as a reference for what the event loop and the
sockets cost per request (the HTTP counterpart of the raw picows echo).

Usage: ``python -m bench.load.floor_server [--port 0]``; prints ``READY <port> floor``.

It is not a SockJS server: it trusts its client. One ``bytes.find`` for the end of
the head, ``Content-Length`` read at a fixed spelling, no header dictionary, no
JSON check, no timers, no CORS or cookie headers; a session is a queue and a held
poll. The answers have the shape of fastsockjs's: ``o``/``a[...]`` framed bodies
with Content-Length on a kept-alive connection, and 204 for a send. Whatever a real
server spends per request above this floor is its own Python; what the floor
spends is the event loop's and the kernel's.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from bench.load.serving import ready_until_stopped

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript; charset=UTF-8\r\nContent-Length: "
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
_CL = b"\r\ncontent-length: "


class Session:
    __slots__ = ("poll", "queue")

    def __init__(self) -> None:
        self.poll: Floor | None = None
        self.queue: list[bytes] = []


class Floor(asyncio.Protocol):
    __slots__ = ("sessions", "transport", "buf")

    def __init__(self, sessions: dict[bytes, Session]) -> None:
        self.sessions = sessions
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def answer(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_HEAD + b"%d\r\n\r\n" % len(body) + body)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            start = head.lower().find(_CL)
            length = 0
            if start >= 0:
                stop = head.find(b"\r\n", start + 2)
                length = int(head[start + len(_CL) : stop if stop > 0 else None])
            if len(buf) < end + 4 + length:
                break
            body = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            path = head[: head.find(b" HTTP/")].split(b"/")
            self.handle(path[-2], path[-1], body)
        self.buf = buf

    def handle(self, sid: bytes, what: bytes, body: bytes) -> None:
        session = self.sessions.get(sid)
        if what == b"xhr":
            if session is None:
                self.sessions[sid] = Session()
                self.answer(b"o\n")
            elif session.queue:
                frames, session.queue = session.queue, []
                self.answer(b"a[" + b",".join(frames) + b"]\n")
            else:
                session.poll = self
        elif what == b"xhr_send" and session is not None:
            assert self.transport is not None
            self.transport.write(_NO_CONTENT)
            # body is a JSON array: its items go out as they came
            session.queue.append(body[1:-1])
            poll = session.poll
            if poll is not None:
                session.poll = None
                frames, session.queue = session.queue, []
                poll.answer(b"a[" + b",".join(frames) + b"]\n")

    def connection_lost(self, exc: BaseException | None) -> None:
        for session in self.sessions.values():
            if session.poll is self:
                session.poll = None


async def serve(port: int) -> None:
    sessions: dict[bytes, Session] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(sessions), "127.0.0.1", port, backlog=4096)
    await ready_until_stopped(server.sockets[0].getsockname()[1], "floor")
    server.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    uvloop.run(serve(p.parse_args().port))


if __name__ == "__main__":
    main()
