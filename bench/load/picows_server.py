"""Minimal raw-WebSocket echo server (picows on uvloop): the bare-metal reference.

Usage: ``python -m bench.load.picows_server [--port 0]``; prints ``READY <port> picows``.
Every text/binary frame is sent back as one frame; no SockJS framing, no sessions.
"""

from __future__ import annotations

import argparse

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from bench.load.serving import ready_until_stopped


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            transport.send(msg_type, frame.get_payload_as_memoryview())
        elif msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


async def serve(port: int) -> None:
    def factory(_request: object) -> Echo:
        return Echo()

    try:  # recent picows use aiofastnet's transports when installed: we want uvloop's
        server = await ws_create_server(
            factory, "127.0.0.1", port, backlog=4096, use_aiofastnet=False
        )
    except TypeError:  # older picows: no such option, always the loop's transports
        server = await ws_create_server(factory, "127.0.0.1", port, backlog=4096)
    await ready_until_stopped(server.sockets[0].getsockname()[1], "picows")
    server.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
