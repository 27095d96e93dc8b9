"""https and wss: the client through a TLS terminator (a self-signed certificate
made with openssl for 127.0.0.1) in front of fastsockjs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from fastsockjs import apps
from fastsockjs.client import ConnectError, connect
from fastsockjs.testing import serve
from tests.helpers import CI

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        if CI:
            pytest.fail("openssl is not installed -- required under CI=true")
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


@pytest_asyncio.fixture
async def tls_url(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    tasks: set[asyncio.Task[None]] = set()
    async with serve(apps.echo(prefix="/echo")) as plain:
        port = int(plain.rsplit(":", 1)[1])

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", port)
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)  # type: ignore[arg-type]
            try:
                await asyncio.gather(_pipe(r, uw), _pipe(ur, w))
            finally:
                tasks.discard(task)  # type: ignore[arg-type]

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        try:
            yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("scheme", ["https", "wss"])
@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
async def test_tls(tls_url: str, certificate: tuple[Path, Path], scheme: str, transport: str) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    async with connect(f"{scheme}://{tls_url}/echo", [transport], ssl=trust) as conn:
        assert conn.transport == transport
        for text in ("über TLS", "x" * 70000):
            await conn.send(text)
            assert await conn.recv(timeout=10) == text


async def test_untrusted_certificate_is_refused(tls_url: str) -> None:
    with pytest.raises(ConnectError, match="certificate verify failed"):
        await connect(f"https://{tls_url}/echo", timeout=5)
