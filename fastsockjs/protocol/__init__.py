"""The sans-I/O core: no asyncio, no sockets; time comes from the host."""
