"""Test helpers: a server running in a thread, and small blocking clients.

Servers bind 127.0.0.1 port 0 and the port is read back; every read has a
timeout so no test can hang.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastsockjs import Listener, Server
from fastsockjs._frames_py import build_frame, parse_frames

TIMEOUT = 5.0
CI = os.environ.get("CI", "").lower() == "true"


class ServerThread:
    """Runs a Listener with the given Servers on its own event loop thread."""

    def __init__(
        self,
        make_servers: Callable[[], list[Server]],
        loop_kind: str = "asyncio",
        fallback: Any = None,
        listener_cls: type[Listener] = Listener,
        **listener_kwargs: Any,
    ) -> None:
        self.make_servers = make_servers
        self.listener_cls = listener_cls
        self.loop_kind = loop_kind
        self.fallback = fallback
        self.listener_kwargs = listener_kwargs
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: Listener | None = None
        self.servers: list[Server] = []
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.loop_kind == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.listener.close())  # type: ignore[union-attr]
        loop.close()

    async def _start(self) -> None:
        self.listener = self.listener_cls(self.fallback, **self.listener_kwargs)
        self.servers = self.make_servers()
        for server in self.servers:
            server.install_handlers(self.listener)
        await self.listener.listen("127.0.0.1", 0)
        self.port = self.listener.port

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("server did not start")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""
        assert self.loop is not None
        done = threading.Event()
        box: list[Any] = []

        def wrapper() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

        self.loop.call_soon_threadsafe(wrapper)
        if not done.wait(TIMEOUT):
            raise TimeoutError("server loop did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __getitem__(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs: dict[str, str] = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return Response(r.status, hdrs, data)
    finally:
        conn.close()


class RawHttp:
    """A raw socket HTTP client for streaming: reads the head, then chunks."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes = b"", version: str = "1.1",
    ) -> tuple[int, dict[str, str]]:
        lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
        hdrs = dict(headers or {})
        if body or method == "POST":
            hdrs.setdefault("Content-Length", str(len(body)))
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return self.read_head()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed before the response head")
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                break
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_chunk(self) -> bytes:
        """One chunk of a chunked body (b'' for the last one)."""
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed inside a chunk header")
        size_line, self.buf = self.buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        data = self.read_exact(size + 2)
        assert data[-2:] == b"\r\n", data[-10:]
        return data[:-2]

    def read_until_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def closed(self) -> bool:
        try:
            return not self._fill()
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()



def assert_stalled_request_gets_408(port: int, partial: bytes, within: float = 3.0) -> None:
    """Send a request that never finishes: a 408 must come, within ``within`` seconds,
    and the connection then close."""
    c = RawHttp(port)
    c.send(partial)
    t0 = time.monotonic()
    assert c.read_head()[0] == 408
    assert time.monotonic() - t0 < within
    assert c.closed()


class RawWebSocket:
    """A minimal RFC 6455 client that can also send malformed frames."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.http = RawHttp(port)
        hdrs = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        hdrs.update(headers or {})
        self.status, self.headers = self.http.request("GET", path, hdrs)
        self.buf = bytearray(self.http.buf)
        self.http.buf = b""

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> None:
        self.http.send(build_frame(opcode, payload, fin, b"\x01\x02\x03\x04" if mask else None))

    def send_text(self, text: str) -> None:
        self.send_frame(1, text.encode("utf-8"))

    def send_raw(self, data: bytes) -> None:
        self.http.send(data)

    def recv_frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None if the connection closed."""
        frame = self._next_frame()
        return None if frame is None else frame[1:]

    def recv_message(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next whole message, its fragments joined (a
        server may split a large message; a control frame between fragments is
        returned first, as it comes); None if the connection closed."""
        opcode, parts = 0, []
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            fin, op, payload = frame
            if op >= 8:
                return op, payload
            if op != 0:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        while True:
            frames, pos, err = parse_frames(self.buf, 0, 1 << 30, require_mask=False)
            if frames:
                fin, opcode, payload = frames[0]
                first_len = _frame_len(self.buf)
                del self.buf[:first_len]
                return fin, opcode, payload
            assert err is None, err
            try:
                data = self.http.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data

    def recv_text(self) -> str:
        frame = self.recv_frame()
        assert frame is not None, "connection closed"
        assert frame[0] == 1, frame
        return frame[1].decode("utf-8")

    def close(self) -> None:
        self.http.close()


def _frame_len(buf: bytearray) -> int:
    n = buf[1] & 0x7F
    head = 2
    if n == 126:
        n = int.from_bytes(buf[2:4], "big")
        head = 4
    elif n == 127:
        n = int.from_bytes(buf[2:10], "big")
        head = 10
    if buf[1] & 0x80:
        head += 4
    return head + n


def close_code(payload: bytes) -> tuple[int, str]:
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8")


class _Compiled:
    """A compiled module (the kernels ``fastsockjs._frames`` and ``fastsockjs._http``,
    the HTTP connection ``fastsockjs.aio._connection``), or why it is missing.

    ``require()`` skips a test locally and fails it under ``CI=true`` (unless
    ``FASTSOCKJS_BUILD_EXTENSION=skip`` says the build left them out on purpose).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: str | None = None
        try:
            self.module: Any = importlib.import_module("fastsockjs." + name)
        except ImportError as exc:  # pragma: no cover - depends on the build
            self.module = None
            self.error = f"{type(exc).__name__}: {exc}"

    def __call__(self) -> Any:
        return self.module

    def require(self) -> Any:
        import pytest

        if self.module is not None:
            return self.module
        reason = (
            f"fastsockjs.{self.name} (Cython extension) is not built ({self.error}); "
            "build it with FASTSOCKJS_BUILD_EXTENSION=required pip install -e ."
        )
        skip_build = os.environ.get("FASTSOCKJS_BUILD_EXTENSION", "").strip().lower() == "skip"
        if CI and not skip_build:
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)


compiled_frames = _Compiled("_frames")
compiled_http = _Compiled("_http")
#: The native host's HTTP connection compiled from ``aio/_connection_py.py``.
compiled_connection = _Compiled("aio._connection")


def jdump(obj: Any) -> str:
    return json.dumps(obj)


# -- waiting and child processes (shared with tests/deploy) --------------------------------
def wait_for(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s (last error: {last_error!r})")
        time.sleep(interval)


# -- processes --------------------------------------------------------------------------
class Proc:
    """A child in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-tail:]
        except OSError:
            return ""

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """``sig``, then SIGKILL to the process group if it does not exit in time."""
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Our own group only (start_new_session): leftovers of this child, never others.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._log.close()
        return self.proc.returncode


# -- TLS ----------------------------------------------------------------------------------
class TlsFiles:
    """A throwaway CA (trustme) and a certificate for 127.0.0.1 / localhost, as PEM
    files in ``directory``; ``spki`` is the certificate's public-key pin for
    Chromium's ``--ignore-certificate-errors-spki-list``."""

    def __init__(self, directory: Path) -> None:
        import base64
        import hashlib

        import trustme
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca = directory / "ca.pem"
        self.certfile = directory / "server.pem"
        self.keyfile = directory / "server.key"
        ca.cert_pem.write_to_path(str(self.ca))
        with open(self.certfile, "wb") as out:
            for blob in cert.cert_chain_pems:
                out.write(blob.bytes())
        cert.private_key_pem.write_to_path(str(self.keyfile))
        leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
        der = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.spki = base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")

    def server_context(self) -> Any:
        from fastsockjs import ssl_context

        return ssl_context(str(self.certfile), str(self.keyfile))

    def client_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def cli_args(self) -> list[str]:
        return ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]


def https_request(
    port: int, method: str, path: str, context: Any, body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()
