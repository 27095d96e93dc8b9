"""Command line: ``fastsockjs echo | chat | testserver | run module:factory``."""

from __future__ import annotations

import argparse
import json
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastsockjs import apps
from fastsockjs.aio.listener import Response
from fastsockjs.options import DEFAULT_SOCKJS_URL, SOCKJS_CLIENT_VERSION
from fastsockjs.protocol.http import Request
from fastsockjs.server import Server, run

_STATIC = Path(__file__).parent / "static"
CLIENT_PATH = f"/static/sockjs-client-{SOCKJS_CLIENT_VERSION}.min.js"


def find_sockjs_client(explicit: str | None = None) -> Path | None:
    """A local sockjs.min.js (the version the iframe page expects), if installed."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get("FASTSOCKJS_SOCKJS_CLIENT")
    if env:
        candidates.append(Path(env))
    rel = Path("node_modules/sockjs-client/dist/sockjs.min.js")
    for base in (Path.cwd(), Path.cwd() / ".tools", _STATIC.parent.parent / ".tools",
                 _STATIC.parent.parent):
        candidates.append(base / rel)
    for path in candidates:
        if path.is_file():
            return path
    if explicit:
        raise SystemExit(f"fastsockjs: no sockjs-client file at {explicit}")
    return None


class StaticFiles:
    """The fallback handler of the command-line servers: a few fixed files."""

    def __init__(self, files: dict[str, tuple[str, bytes]]) -> None:
        self.files = files

    def __call__(self, request: Request) -> Response:
        found = self.files.get(request.path)
        if found is None or request.method not in ("GET", "HEAD"):
            return 404, [("Content-Type", "text/plain; charset=UTF-8")], b"404 Not Found\n"
        ctype, body = found
        return 200, [("Content-Type", ctype), ("Cache-Control", "no-cache")], body


def _client_setup(args: argparse.Namespace) -> tuple[str, dict[str, tuple[str, bytes]]]:
    files: dict[str, tuple[str, bytes]] = {}
    local = find_sockjs_client(args.sockjs_client)
    if local is not None:
        files[CLIENT_PATH] = ("application/javascript; charset=UTF-8", local.read_bytes())
        client_url = CLIENT_PATH
    else:
        client_url = DEFAULT_SOCKJS_URL
    # The iframe page must load the very same client file the page uses.
    sockjs_url = args.sockjs_url or client_url
    return sockjs_url, files


def _common(p: argparse.ArgumentParser, port: int, prefix: str | None) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port (default {port}; 0 = any)")
    if prefix is not None:
        p.add_argument("--prefix", default=prefix, help=f"SockJS prefix (default {prefix})")
    p.add_argument("--sockjs-url", default=None, help="sockjs-client URL for the iframe page")
    p.add_argument("--sockjs-client", default=None, help="path of a local sockjs.min.js to serve")
    p.add_argument("--log-level", default="info", help="debug, info, warning, error")
    p.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastsockjs", description="SockJS server")
    sub = p.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("echo", help="echo every message back"), 8081, "/echo")
    _common(sub.add_parser("chat", help="chat room with its page at /"), 8081, "/chat")
    _common(
        sub.add_parser("testserver", help="the services the SockJS protocol suite expects"),
        8081,
        None,
    )
    r = sub.add_parser("run", help="serve module:factory (a Server or a list of them)")
    r.add_argument("target", help="module:attribute; a callable is called with no arguments")
    _common(r, 8081, None)
    return p


def load_target(target: str) -> list[Server]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit("fastsockjs run: target must look like package.module:factory")
    sys.path.insert(0, os.getcwd())
    obj: Any = getattr(importlib.import_module(module_name), attr)
    if callable(obj) and not isinstance(obj, Server):
        obj = obj()
    servers = [obj] if isinstance(obj, Server) else list(obj)
    if not servers or not all(isinstance(s, Server) for s in servers):
        raise SystemExit(f"fastsockjs run: {target} did not give Server objects")
    return servers


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    sockjs_url, files = _client_setup(args)
    if args.command == "echo":
        servers = [apps.echo(prefix=args.prefix, sockjs_url=sockjs_url)]
    elif args.command == "chat":
        page = (_STATIC / "chat.html").read_text("utf-8")
        page = page.replace("{{ sockjs_client }}", sockjs_url)
        page = page.replace("{{ prefix_json }}", json.dumps(args.prefix).replace("<", "\\u003c"))
        files["/"] = ("text/html; charset=UTF-8", page.encode("utf-8"))
        servers = [apps.broadcast(prefix=args.prefix, sockjs_url=sockjs_url)]
    elif args.command == "testserver":
        servers = testserver(sockjs_url)
    else:
        servers = load_target(args.target)
    run(
        *servers,
        host=args.host,
        port=args.port,
        fallback=StaticFiles(files),
        use_uvloop=not args.no_uvloop,
    )


def testserver(sockjs_url: str) -> list[Server]:
    """Configured as sockjs-node's test server, with default limits otherwise."""
    echo = dict(sockjs_url=sockjs_url)
    return [
        apps.echo(prefix="/echo", response_limit=4096, **echo),
        apps.echo(prefix="/disabled_websocket_echo", websocket=False, **echo),
        apps.echo(prefix="/cookie_needed_echo", jsessionid=True, **echo),
        apps.close(prefix="/close", **echo),
        apps.ticker(prefix="/ticker", **echo),
        apps.amplify(prefix="/amplify", **echo),
        apps.broadcast(prefix="/broadcast", **echo),
    ]


if __name__ == "__main__":
    main()
