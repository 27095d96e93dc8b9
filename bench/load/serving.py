"""What every benchmark server does once it listens: say so, then serve until stopped."""

from __future__ import annotations

import asyncio
import signal


async def ready_until_stopped(port: int, implementation: str) -> None:
    """Print the ``READY <port> <implementation>`` line the runner waits for, then
    wait for SIGINT or SIGTERM (the runner's stop)."""
    print("READY", port, implementation, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
