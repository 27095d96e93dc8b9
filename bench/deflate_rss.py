"""Server RSS per idle WebSocket session, compression off / default / context
takeover: 1000 raw ``/websocket`` connections each send one compressed
chat-like message and get its echo; the server's VmRSS grows by this much.

    python -m bench.deflate_rss        # Linux (/proc); ports 18931-18933 on 127.0.0.1
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import zlib

from fastsockjs._frames_py import build_frame

N = 1000
SERVER = """
import sys
from fastsockjs import WebSocketCompression, apps, run
comp = {"off": False, "default": True, "takeover": WebSocketCompression(
    server_no_context_takeover=False, client_no_context_takeover=False)}[sys.argv[1]]
run(apps.echo(prefix="/echo", websocket_compression=comp, ws_ping_interval=None),
    host="127.0.0.1", port=int(sys.argv[2]))
"""
HANDSHAKE = (b"GET /echo/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(HANDSHAKE)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    return s


def measure(mode: str, port: int) -> float:
    message = json.dumps([{"id": i, "user": f"u{i % 9}", "text": "hello there how are you"}
                          for i in range(60)]).encode()
    server = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conns: list[socket.socket] = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        conns = [connect(port) for _ in range(50)]  # warm up
        time.sleep(0.5)
        base = rss(server.pid)
        fresh = [connect(port) for _ in range(N)]
        conns += fresh
        for s in fresh:
            if mode == "off":
                s.sendall(build_frame(1, message, True, b"abcd"))
            else:
                z = zlib.compressobj(6, zlib.DEFLATED, -15)
                data = (z.compress(message) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
                s.sendall(build_frame(1, data, True, b"abcd", True))
        for s in fresh:
            s.recv(65536)
        time.sleep(1.0)
        return (rss(server.pid) - base) / N
    finally:
        for s in conns:
            s.close()
        server.terminate()
        server.wait(10)


def main() -> None:
    for i, mode in enumerate(("off", "default", "takeover")):
        print(f"{mode}: {measure(mode, 18931 + i) / 1024:.1f} KiB RSS per idle session")


if __name__ == "__main__":
    main()
