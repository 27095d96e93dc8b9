"""The I/O-neutral core both hosts own: mounts, dispatch, sessions' services,
shutdown and stats (see docs/architecture.md)."""
