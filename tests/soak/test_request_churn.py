"""Connection churn with large header blocks: the server's traced Python memory
stays flat *while* it churns.

Was: every connection armed a 30 s request deadline whose heap entry kept the
closed connection (its parser, its parsed headers) alive until it fired, so
20,000 requests with 500 headers each held about 700 MiB for half a minute.
The client runs in another process, so tracemalloc here sees only the server.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

from fastsockjs.apps import echo
from tests.helpers import ServerThread

pytestmark = pytest.mark.soak

CONNECTIONS = 20_000
HEADERS = 500
# What a few hundred live connections and the allocator's noise may account for.
BOUND = 4 * 1024 * 1024

CLIENT = textwrap.dedent("""
    import asyncio, sys
    port, total, nheaders = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    pad = "".join(f"X-Pad-{i}: {'v' * 16}\\r\\n" for i in range(nheaders))
    req = (f"GET /echo/info HTTP/1.1\\r\\nHost: t\\r\\n{pad}Connection: close\\r\\n\\r\\n").encode()
    done = 0

    async def worker(n):
        global done
        for _ in range(n):
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(req)
            data = await asyncio.wait_for(r.read(), 10)
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
            w.close()
            done += 1

    async def main():
        per = total // 8
        await asyncio.gather(*(worker(per) for _ in range(8)))
        print(done)

    asyncio.run(main())
""")


@pytest.mark.parametrize("loop_kind", ["uvloop"])
def test_churn_with_large_headers_keeps_memory_flat(loop_kind: str) -> None:
    st = ServerThread(lambda: [echo(prefix="/echo")], loop_kind).start()
    samples: list[int] = []
    stop = threading.Event()
    try:
        warm = subprocess.run([sys.executable, "-c", CLIENT, str(st.port), "400", str(HEADERS)],
                              capture_output=True, text=True, timeout=60)
        assert warm.returncode == 0, warm.stderr
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]

            def sample() -> None:
                while not stop.wait(0.1):
                    samples.append(tracemalloc.get_traced_memory()[0] - start)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            run = subprocess.run(
                [sys.executable, "-c", CLIENT, str(st.port), str(CONNECTIONS), str(HEADERS)],
                capture_output=True, text=True, timeout=300,
            )
            elapsed = time.monotonic() - t0
            stop.set()
            sampler.join(5)
        finally:
            tracemalloc.stop()
        assert run.returncode == 0, run.stderr[-2000:]
        assert int(run.stdout.strip()) == CONNECTIONS
        assert samples, "no sample taken"
        peak = max(samples)
        print(f"\n{CONNECTIONS} connections x {HEADERS} headers in {elapsed:.1f} s; "
              f"traced growth peak {peak / 2**20:.2f} MiB over {len(samples)} samples")
        assert peak < BOUND, f"traced memory grew {peak / 2**20:.1f} MiB while churning"
    finally:
        stop.set()
        st.stop()
