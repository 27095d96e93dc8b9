"""The services the proxy tests put behind nginx and HAProxy: echo and close
under /chat (the prefix of docs/deployment.md's nginx block)."""

from __future__ import annotations

from fastsockjs import Server, apps


def servers() -> list[Server]:
    return [apps.echo(prefix="/chat/echo"), apps.close(prefix="/chat/close")]
