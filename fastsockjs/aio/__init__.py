"""The asyncio layer: the only package that touches sockets, loops and timers."""
