"""Real processes for the deployment tests: redis-server, fastsockjs workers (through
the CLI's supervisor), haproxy; and small SockJS clients that talk to them.

Everything binds 127.0.0.1; every wait is bounded; each process runs in its own
session (process group) so that stopping it can never touch anything else.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import websocket  # websocket-client

from tests.helpers import Proc, wait_for

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/chat"


# -- ports and waiting ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` (SO_REUSEADDR, as asyncio's do:
    connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_range(n: int, attempts: int = 200) -> int:
    """P such that P .. P+n-1 are all free. Chosen below the ephemeral range: there,
    outgoing connections (of a busy machine) never take the neighbours."""
    import random

    low, high = _ephemeral_range()
    lo, hi = (20000, low - n) if low - n > 20000 else (high + 1, 65535 - n)
    for _ in range(attempts):
        first = random.randrange(lo, hi)
        if all(_bindable(first + i) for i in range(n)):
            return first
    raise RuntimeError(f"no {n} consecutive free ports in {attempts} attempts")


class RedisServer:
    """redis-server on a free port, no persistence, in a temp dir; restartable."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir
        self.port = free_port_range(1)
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.starts += 1
        self.proc = Proc(
            "redis",
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            self.dir / "redis.log",
        )
        try:
            wait_for(self.ping, 10, f"redis-server on {self.port}\n{self.proc.log_text()}")
        except BaseException:
            self.stop()
            raise
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(5)
            self.proc = None


class HAProxy:
    def __init__(self, binary: str, config: str, workdir: Path) -> None:
        self.cfg = workdir / "haproxy.cfg"
        # A stats socket of the tests' own, to read haproxy's view of each server
        # (haproxy takes socket paths up to 97 bytes: a short directory if need be).
        self.admin = workdir / "admin.sock"
        self._short_dir: str | None = None
        if len(str(self.admin)) > 90:
            self._short_dir = tempfile.mkdtemp(prefix="hap", dir="/tmp")
            self.admin = Path(self._short_dir) / "admin.sock"
        config = config.replace("\nglobal\n", f"\nglobal\n    stats socket {self.admin}\n", 1)
        self.cfg.write_text(config)
        check = subprocess.run([binary, "-c", "-f", str(self.cfg)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            if self._short_dir is not None:
                shutil.rmtree(self._short_dir, ignore_errors=True)
            raise RuntimeError(f"haproxy -c failed:\n{check.stdout}\n{check.stderr}\n{config}")
        self.proc = Proc("haproxy", [binary, "-db", "-f", str(self.cfg)], workdir / "haproxy.log")

    def stop(self) -> None:
        self.proc.stop(5)
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)

    def server_states(self, backend: str) -> dict[str, str]:
        """{server: status} of ``backend`` as haproxy sees it ("UP", "NOLB" while its
        health check says 404 (draining), "DOWN", "UP 1/2" while rising, ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(3)
            s.connect(str(self.admin))
            s.sendall(b"show stat\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
        rows = [line.split(",") for line in lines[1:] if line]
        return {r[sv]: r[st] for r in rows if r[px] == backend and r[sv] != "BACKEND"}


class Cluster:
    """``python -m fastsockjs chat --workers N --broker redis://... --port P`` behind haproxy."""

    def __init__(self, redis: RedisServer, haproxy_bin: str, workdir: Path, workers: int = 2,
                 extra_args: Iterable[str] = (), broker_params: str = "") -> None:
        self.redis = redis
        self.workers = workers
        self.dir = workdir
        self.port = free_port_range(workers)
        self.listen_port = free_port_range(1)
        config = subprocess.run(
            [sys.executable, "-m", "fastsockjs", "haproxy-config", "--workers", str(workers),
             "--port", str(self.port), "--listen-port", str(self.listen_port),
             "--prefix", PREFIX],
            capture_output=True, text=True, timeout=30, check=True, cwd=ROOT,
        ).stdout
        self.config = config
        self.supervisor = Proc(
            "fastsockjs",
            [sys.executable, "-m", "fastsockjs", "chat", "--workers", str(workers),
             "--broker", redis.url + (f"?{broker_params}" if broker_params else ""),
             "--port", str(self.port), "--prefix", PREFIX,
             "--shutdown-timeout", "1",
             # These tests send bursts far above a person's typing (the chat's limit).
             "--rate", "100000/1", *extra_args],
            workdir / "fastsockjs.log", cwd=ROOT,
        )
        try:
            self.wait_workers()
            self.haproxy = HAProxy(haproxy_bin, config, workdir)
            self.wait_balanced()
        except BaseException:
            self.stop()
            raise

    # -- state ---------------------------------------------------------------------------
    def worker_port(self, i: int) -> int:
        return self.port + i

    def status(self, i: int) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.worker_port(i), timeout=3)
        try:
            conn.request("GET", "/_status")
            r = conn.getresponse()
            assert r.status == 200, r.status
            return dict(json.loads(r.read()))
        finally:
            conn.close()

    def health(self, i: int, query: str = "") -> tuple[int, str]:
        """Worker ``i``'s health endpoint: (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.worker_port(i), timeout=3)
        try:
            conn.request("GET", "/_health" + query)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def wait_workers(self, timeout: float = 20) -> None:
        """Every worker answers and its broker is linked to Redis."""
        for i in range(self.workers):
            wait_for(
                lambda i=i: self.status(i)["broker"]["connected"], timeout,
                f"worker w{i}\n{self.supervisor.log_text()}",
            )

    def sid_worker(self, server_id: str, room: str = "probe", timeout: float = 5) -> str:
        """Which worker haproxy sends server id ``server_id`` to (a probe session)."""
        s = XhrPolling(self.listen_port, server_id, room=room)
        try:
            return str(s.hello(timeout)["worker"])
        finally:
            s.close()

    def wait_balanced(self, timeout: float = 15) -> dict[str, str]:
        """haproxy routes to every worker: returns {worker: a server id it owns}.

        First every worker must be UP in haproxy's own view: while they drain
        (Redis was down), haproxy hashes new sessions over the backup servers,
        whose ring places server ids elsewhere, and an owner found then would
        change hands a second later."""
        want = {f"w{i}" for i in range(self.workers)}
        states: dict[str, str] = {}

        def all_up() -> bool:
            states.update(self.haproxy.server_states("fastsockjs_sessions"))
            return all(states.get(w) == "UP" for w in want)

        wait_for(all_up, timeout, f"haproxy sees every worker UP (saw {states})", interval=0.05)
        found: dict[str, str] = {}
        candidates = iter(f"{n:03d}" for n in range(1000))

        def probe() -> bool:
            sid = next(candidates)
            found.setdefault(self.sid_worker(sid), sid)
            return want <= set(found)

        wait_for(probe, timeout, f"haproxy reaching {sorted(want)} (saw {found})", interval=0.02)
        return found

    def log_text(self) -> str:
        out = [f"--- fastsockjs\n{self.supervisor.log_text(8000)}"]
        haproxy = getattr(self, "haproxy", None)
        if haproxy is not None:
            out.append(f"--- haproxy\n{haproxy.proc.log_text(3000)}")
        return "\n".join(out)

    def stop(self) -> None:
        haproxy = getattr(self, "haproxy", None)
        if haproxy is not None:
            haproxy.stop()
        self.supervisor.stop(15)


# -- SockJS clients -------------------------------------------------------------------------
class Client:
    """A SockJS session through some transport; a reader thread collects its messages
    (JSON-decoded chat messages) in arrival order."""

    transport = ""

    def __init__(self, port: int, server_id: str, room: str = "lobby",
                 session_id: str | None = None) -> None:
        self.port = port
        self.server_id = server_id
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.room = room
        self.base = f"{PREFIX}/{server_id}/{self.session_id}"
        self.query = f"?room={room}"
        self.messages: list[dict[str, Any]] = []
        self.frames: list[str] = []
        self.closed = threading.Event()
        self.opened = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()

    def _start_reader(self) -> None:
        threading.Thread(target=self._read_loop, daemon=True).start()

    def _read_loop(self) -> None:
        try:
            self.read_forever()
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def read_forever(self) -> None:
        raise NotImplementedError

    def on_frame(self, frame: str) -> None:
        """One SockJS frame: o, h, a[...], c[...]."""
        self.frames.append(frame)
        if frame == "o":
            self.opened.set()
        elif frame.startswith("a"):
            with self._cond:
                for text in json.loads(frame[1:]):
                    self.messages.append(json.loads(text))
                self._cond.notify_all()
        elif frame.startswith("c"):
            self._stop.set()

    def wait(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise TimeoutError(
                        f"{self.transport} {self.base}: {what} not within {timeout}s "
                        f"(reader ended: {self.closed.is_set()}); "
                        f"got {self.messages[-10:]}, error {self.error!r}, frames {self.frames[-5:]}"
                    )
                self._cond.wait(min(left, 0.2))

    def hello(self, timeout: float = 10) -> dict[str, Any]:
        self.wait(lambda ms: any(m["type"] == "hello" for m in ms), timeout, "hello")
        return next(m for m in self.messages if m["type"] == "hello")

    def joined(self, timeout: float = 10) -> None:
        """Wait for the room's history: the chat has joined this session to its room
        (until then it holds only a few early messages, docs/chat.md)."""
        self.wait(lambda ms: any(m["type"] == "history" for m in ms), timeout, "history")

    @property
    def worker(self) -> str:
        return str(self.hello()["worker"])

    def texts(self) -> list[str]:
        with self._cond:
            return [m["text"] for m in self.messages if m["type"] == "message"]

    def wait_texts(self, texts: Iterable[str], timeout: float = 10) -> None:
        want = set(texts)
        self.wait(
            lambda ms: want <= {m.get("text") for m in ms if m["type"] == "message"},
            timeout, f"{len(want)} messages",
        )

    def send(self, *texts: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()


class XhrPolling(Client):
    transport = "xhr-polling"

    def __init__(self, port: int, server_id: str, room: str = "lobby",
                 session_id: str | None = None) -> None:
        super().__init__(port, server_id, room, session_id)
        self._conn: http.client.HTTPConnection | None = None
        self.send_statuses: list[int] = []
        self._start_reader()

    def _post(self, path: str, body: bytes = b"", timeout: float = 40) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if "xhr_send" not in path:
                self._conn = conn
            conn.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def read_forever(self) -> None:
        while not self._stop.is_set():
            status, body = self._post(self.base + "/xhr" + self.query)
            if status != 200:
                raise ConnectionError(f"xhr poll answered {status}: {body[:200]!r}")
            for frame in body.decode("utf-8").split("\n"):
                if frame:
                    self.on_frame(frame)

    def send(self, *texts: str) -> int:
        status, body = self._post(self.base + "/xhr_send", json.dumps(list(texts)).encode(), 10)
        self.send_statuses.append(status)
        return status

    def close(self) -> None:
        super().close()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class XhrStreaming(XhrPolling):
    transport = "xhr-streaming"

    def read_forever(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=40)
        self._sock = sock
        try:
            path = self.base + "/xhr_streaming" + self.query
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += _recv(sock)
            head, buf = buf.split(b"\r\n\r\n", 1)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                raise ConnectionError(f"xhr_streaming answered {status}")
            assert b"chunked" in head.lower(), head
            text = b""
            while not self._stop.is_set():
                # Chunked body: <hex size>\r\n<data>\r\n ...
                while b"\r\n" not in buf:
                    buf += _recv(sock)
                size_line, rest = buf.split(b"\r\n", 1)
                size = int(size_line, 16)
                while len(rest) < size + 2:
                    rest += _recv(sock)
                chunk, buf = rest[:size], rest[size + 2 :]
                if size == 0:
                    return
                text += chunk
                *frames, text = text.split(b"\n")
                for frame in frames:
                    frame_s = frame.decode("utf-8")
                    if frame_s and not frame_s.startswith("hhhh"):  # the 2 KiB prelude
                        self.on_frame(frame_s)
        finally:
            sock.close()

    def close(self) -> None:
        Client.close(self)
        sock = getattr(self, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class WebSocketClient(Client):
    transport = "websocket"

    def __init__(self, port: int, server_id: str, room: str = "lobby",
                 session_id: str | None = None) -> None:
        super().__init__(port, server_id, room, session_id)
        url = f"ws://127.0.0.1:{port}{self.base}/websocket{self.query}"
        self.ws = websocket.create_connection(url, timeout=10)
        self._send_lock = threading.Lock()
        self._start_reader()

    def read_forever(self) -> None:
        self.ws.settimeout(None)
        while not self._stop.is_set():
            try:
                frame = self.ws.recv()
            except websocket.WebSocketConnectionClosedException:
                return
            if frame == "":
                return
            self.on_frame(frame)

    def send(self, *texts: str) -> int:
        with self._send_lock:
            self.ws.send(json.dumps(list(texts)))
        return 204

    def close(self) -> None:
        super().close()
        try:
            self.ws.sock and self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed")
    return data


TRANSPORTS: dict[str, type[Client]] = {
    "xhr-polling": XhrPolling,
    "xhr-streaming": XhrStreaming,
    "websocket": WebSocketClient,
}


def open_client(transport: str, port: int, server_id: str, room: str) -> Client:
    client = TRANSPORTS[transport](port, server_id, room)
    client.hello(10)
    return client


def close_all(clients: Iterable[Client]) -> None:
    for c in clients:
        c.close()
