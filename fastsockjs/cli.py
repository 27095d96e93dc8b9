"""Command line: ``fastsockjs echo | chat | testserver | run module:factory |
haproxy-config``."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastsockjs import apps, haproxy, logconfig, runner, workers
from fastsockjs.aio.listener import Response
from fastsockjs.apps import testserver
from fastsockjs.broker import Broker, MemoryBroker, make_broker
from fastsockjs.chat import rules
from fastsockjs.options import (
    DEFAULT_SOCKJS_URL,
    SOCKJS_CLIENT_VERSION,
    TRANSPORTS,
    OptionsError,
    make_options,
)
from fastsockjs.protocol.http import Request, TrustedProxies
from fastsockjs.server import Server

_log = logging.getLogger("fastsockjs")
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
    installed = [
        base / rel
        for base in (Path.cwd(), Path.cwd() / ".tools", _STATIC.parent.parent / ".tools",
                     _STATIC.parent.parent)
    ]
    for path in candidates:  # named by the user: taken as it is
        if path.is_file():
            return path
    for path in installed:
        if not path.is_file():
            continue
        if (version := installed_version(path)) != SOCKJS_CLIENT_VERSION:
            # The iframe page and the chat page must load the version they name.
            _log.warning("ignoring sockjs-client %s at %s: %s is needed", version, path,
                         SOCKJS_CLIENT_VERSION)
            continue
        return path
    if explicit:
        raise SystemExit(f"fastsockjs: no sockjs-client file at {explicit}")
    return None


def installed_version(client: Path) -> str | None:
    """The version in the package.json of an npm-installed sockjs-client."""
    try:
        version = json.loads((client.parent.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(version)


class StaticFiles:
    """The fallback handler of the command-line servers: a few fixed files, and
    ``dynamic`` paths whose (content type, body) is made per request."""

    def __init__(
        self,
        files: dict[str, tuple[str, bytes]],
        dynamic: dict[str, Callable[[], tuple[str, bytes]]] | None = None,
    ) -> None:
        self.files = files
        self.dynamic = dynamic or {}
        self.worker = workers.worker_id()

    def __call__(self, request: Request) -> Response:
        found = self.files.get(request.path)
        if found is None and request.path in self.dynamic:
            found = self.dynamic[request.path]()
        if found is None or request.method not in ("GET", "HEAD"):
            return 404, [("Content-Type", "text/plain; charset=UTF-8")], b"404 Not Found\n"
        ctype, body = found
        return 200, [
            ("Content-Type", ctype), ("Cache-Control", "no-cache"),
            ("X-Fastsockjs-Worker", self.worker),
        ], body


#: The worker's status as JSON (worker id, pid, sessions, broker), for probes and tests.
STATUS_PATH = "/_status"


def status_page(
    servers: Sequence[Server], broker: Broker | None
) -> Callable[[], tuple[str, bytes]]:
    def page() -> tuple[str, bytes]:
        body = {
            "worker": workers.worker_id(),
            "pid": os.getpid(),
            "sessions": sum(len(s.connections()) for s in servers),
            "broker": broker.status() if broker is not None else None,
        }
        return "application/json; charset=UTF-8", json.dumps(body).encode("utf-8")

    return page


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


def _transports(value: str) -> frozenset[str]:
    names = frozenset(t.strip() for t in value.split(",") if t.strip())
    unknown = names - set(TRANSPORTS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown transports {sorted(unknown)}; known: {', '.join(TRANSPORTS)}"
        )
    return names


def _rate(value: str) -> tuple[int, float]:
    try:
        return rules.parse_rate(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser, port: int, prefix: str | None) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=port,
        help=f"port (default {port}; 0 = any); with --workers N, workers use PORT..PORT+N-1",
    )
    if prefix is not None:
        p.add_argument("--prefix", default=prefix, help=f"SockJS prefix (default {prefix})")
    p.add_argument("--sockjs-url", default=None, help="sockjs-client URL for the iframe page")
    p.add_argument("--sockjs-client", default=None, help="path of a local sockjs.min.js to serve")
    p.add_argument(
        "--log-level", default="info", type=str.lower,
        choices=("debug", "info", "warning", "error", "critical"),
        help="debug, info (default; includes the access log), warning, error",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    p.add_argument(
        "--no-gc-freeze", action="store_true",
        help="keep start-up objects in the garbage collector's generations (by default they"
        " are collected once and frozen when the server listens: no GC stall for them later)",
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="worker processes (default 1), supervised by this one",
    )
    p.add_argument(
        "--reuse-port", action="store_true",
        help="all workers share --port (SO_REUSEPORT); WebSocket-only servers only",
    )
    p.add_argument(
        "--broker", default=None, metavar="URL",
        help="fan-out between processes: memory:// (default) or redis://host:port/db",
    )
    p.add_argument(
        "--max-body", type=int, default=8 * 1024 * 1024, metavar="BYTES",
        help="largest request body (default 8 MiB; each message is bounded by the servers'"
        " max_message_size)",
    )
    p.add_argument(
        "--request-timeout", type=float, default=30.0, metavar="SECONDS",
        help="time for a request's head and body to arrive (default 30; 408 after it)",
    )
    p.add_argument(
        "--keepalive-timeout", type=float, default=75.0, metavar="SECONDS",
        help="idle keep-alive connections are closed after this (default 75)",
    )
    p.add_argument(
        "--metrics-path", default=None, metavar="PATH",
        help="serve Prometheus metrics at PATH, e.g. /metrics (needs fastsockjs[prometheus]);"
        " off by default",
    )
    p.add_argument(
        "--health-path", default="/_health", metavar="PATH",
        help="health endpoint: 200 ok, or 503 and why (event loop lag, broker down,"
        " shutting down); default /_health, '' turns it off",
    )
    p.add_argument(
        "--max-loop-lag", type=float, default=1.0, metavar="SECONDS",
        help="the health endpoint fails while the event loop lags more than this (default 1)",
    )
    p.add_argument(
        "--shutdown-timeout", type=float, default=5.0, metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long sessions get to receive their close frame (default 5)",
    )
    p.add_argument(
        "--ws-compression", action="store_true",
        help="negotiate permessage-deflate on WebSocket connections (default off; echo, chat,"
        " testserver: a run factory sets Server(websocket_compression=...) itself)",
    )
    p.add_argument(
        "--allowed-origin", action="append", default=None, metavar="ORIGIN",
        dest="allowed_origins",
        help="an origin allowed to use the servers from a browser, e.g. https://example.com"
        " or https://*.example.com (repeatable; WebSocket and CORS); default: any origin",
    )
    p.add_argument(
        "--max-message-size", type=int, default=None, metavar="BYTES",
        help="largest message a client may send, per WebSocket message and per message of an"
        " xhr_send body (default 1 MiB; 1009 or 413 above it)",
    )
    p.add_argument(
        "--forwarded-allow-ips", default=None, metavar="LIST",
        help="comma-separated proxy addresses or networks (or *) whose X-Forwarded-For /"
        " Forwarded header names the client; default: none (the header is ignored)",
    )
    p.add_argument("--ssl-certfile", default=None, metavar="FILE",
                   help="serve https/wss with this PEM certificate (chain)")
    p.add_argument("--ssl-keyfile", default=None, metavar="FILE",
                   help="the certificate's PEM private key (unless in --ssl-certfile)")
    p.add_argument("--ssl-keyfile-password", default=None, metavar="PASSWORD",
                   help="the private key's password")
    p.add_argument("--ssl-ca-certs", default=None, metavar="FILE",
                   help="CA certificates to verify client certificates against")
    p.add_argument(
        "--transports", type=_transports, default=None, metavar="LIST",
        help="comma-separated transports to enable (default: all), e.g. websocket,websocket-raw"
        " (echo, chat, testserver; a run factory configures its own Servers)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastsockjs", description="SockJS server")
    sub = p.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("echo", help="echo every message back"), 8081, "/echo")
    c = sub.add_parser("chat", help="chat with rooms, page at /")
    _common(c, 8081, "/chat")
    c.add_argument(
        "--rate", type=_rate, default=(rules.RATE_BURST, rules.RATE_PERIOD),
        metavar="MESSAGES/SECONDS",
        help=f"per-connection rate limit: a burst, refilled over SECONDS"
        f" (default {rules.RATE_BURST}/{rules.RATE_PERIOD:g})",
    )
    c.add_argument(
        "--max-text", type=int, default=rules.MAX_TEXT_LENGTH, metavar="CHARS",
        help=f"longest chat message (default {rules.MAX_TEXT_LENGTH})",
    )
    c.add_argument(
        "--history", type=int, default=rules.HISTORY_LENGTH, metavar="N",
        help=f"messages replayed to whoever joins a room (default {rules.HISTORY_LENGTH})",
    )
    _common(
        sub.add_parser("testserver", help="the services the SockJS protocol suite expects"),
        8081,
        None,
    )
    r = sub.add_parser("run", help="serve module:factory (a Server or a list of them)")
    r.add_argument("target", help="module:attribute; a callable is called with no arguments")
    r.add_argument(
        "--asgi", default=None, metavar="MODULE:APP",
        help="an ASGI application for every other path (its lifespan starts with the worker)",
    )
    _common(r, 8081, None)
    h = sub.add_parser(
        "haproxy-config", help="print an HAProxy configuration for --workers N --port P"
    )
    h.add_argument("--workers", type=int, required=True, metavar="N")
    h.add_argument("--port", type=int, required=True, help="the first worker's port")
    h.add_argument("--listen-port", type=int, required=True, help="HAProxy's port")
    h.add_argument("--host", default="127.0.0.1", help="the workers' address")
    h.add_argument("--listen-host", default="127.0.0.1", help="HAProxy's address")
    h.add_argument(
        "--prefix", action="append", default=None,
        help="SockJS prefix (repeatable; default /chat)",
    )
    h.add_argument(
        "--check-interval", default=haproxy.CHECK_INTERVAL,
        help=f"health-check interval (default {haproxy.CHECK_INTERVAL})",
    )
    h.add_argument(
        "--health-path", default="/_health",
        help="the workers' --health-path (default /_health)",
    )
    h.add_argument(
        "--heartbeat-delay", type=float, default=25.0, metavar="SECONDS",
        help="the servers' heartbeat_delay (default 25): timeouts stay above twice it",
    )
    from fastsockjs.client import bench

    bench.add_arguments(
        sub.add_parser("bench", help="load a SockJS echo service (any server) and measure it")
    )
    return p


def load_target(target: str, broker: Broker | None = None) -> list[Server]:
    """The Servers ``package.module:factory`` gives: a Server, a list of them, or a
    factory of either; a factory taking a ``broker`` keyword gets the command
    line's ``--broker``."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit("fastsockjs run: target must look like package.module:factory")
    sys.path.insert(0, os.getcwd())
    obj: Any = getattr(importlib.import_module(module_name), attr)
    if callable(obj) and not isinstance(obj, Server):
        wants_broker = "broker" in inspect.signature(obj).parameters
        obj = obj(broker=broker) if wants_broker and broker is not None else obj()
    servers = [obj] if isinstance(obj, Server) else list(obj)
    if not servers or not all(isinstance(s, Server) for s in servers):
        raise SystemExit(f"fastsockjs run: {target} did not give Server objects")
    return servers


def load_asgi(target: str) -> Any:
    """The ASGI application ``package.module:attribute`` names (``--asgi``)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit("fastsockjs: --asgi must look like package.module:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module_name), attr)
    if not callable(app):
        raise SystemExit(f"fastsockjs: --asgi {target} is not an ASGI application")
    return app


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.command == "bench":
        from fastsockjs.client import bench

        raise SystemExit(bench.main(args))
    if args.command == "haproxy-config":
        try:
            text = haproxy.haproxy_config(
                args.workers, args.port, args.listen_port, args.prefix or ["/chat"],
                host=args.host, listen_host=args.listen_host,
                check_interval=args.check_interval, heartbeat_delay=args.heartbeat_delay,
                health_path=args.health_path,
            )
        except ValueError as exc:
            raise SystemExit(f"fastsockjs haproxy-config: {exc}") from None
        sys.stdout.write(text)
        return
    try:
        broker = make_broker(args.broker)  # a bad URL is refused here, not in every worker
    except (ValueError, ImportError) as exc:
        raise SystemExit(f"fastsockjs: --broker: {exc}") from None
    if args.workers < 1:
        raise SystemExit("fastsockjs: --workers must be 1 or more")
    # Refused here, once, rather than in every worker.
    tls = _ssl_context(args)
    if args.forwarded_allow_ips is not None:
        try:
            TrustedProxies.parse(args.forwarded_allow_ips)
        except ValueError as exc:
            raise SystemExit(f"fastsockjs: --forwarded-allow-ips: {exc}") from None
    if args.max_message_size is not None and args.max_message_size < 1:
        raise SystemExit("fastsockjs: --max-message-size must be 1 or more")
    if args.workers > 1:
        _supervise(args, argv)
        return
    logconfig.configure_logging(args.log_level)
    sockjs_url, files = _client_setup(args)
    try:
        servers = build_servers(args, sockjs_url, files, broker)
    except OptionsError as exc:
        raise SystemExit(f"fastsockjs: {exc}") from None
    if args.reuse_port:
        problem = workers.reuse_port_problem(servers)
        if problem:
            raise SystemExit("fastsockjs: " + problem)
    fallback: Any = StaticFiles(files, {STATUS_PATH: status_page(servers, broker)})
    if getattr(args, "asgi", None):
        fallback = load_asgi(args.asgi)
    runner.run(
        *servers,
        host=args.host,
        port=args.port,
        fallback=fallback,
        use_uvloop=not args.no_uvloop,
        reuse_port=args.reuse_port,
        broker=broker,
        shutdown_timeout=args.shutdown_timeout,
        metrics_path=args.metrics_path,
        max_body=args.max_body,
        request_timeout=args.request_timeout,
        keepalive_timeout=args.keepalive_timeout,
        health_path=args.health_path or None,
        max_loop_lag=args.max_loop_lag,
        ssl=tls,
        forwarded_allow_ips=args.forwarded_allow_ips,
        gc_freeze=not args.no_gc_freeze,
    )


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    tls_options = (args.ssl_keyfile, args.ssl_keyfile_password, args.ssl_ca_certs)
    if args.ssl_certfile is None:
        if any(o is not None for o in tls_options):
            raise SystemExit("fastsockjs: the --ssl-* options need --ssl-certfile")
        return None
    try:
        return runner.ssl_context(
            args.ssl_certfile, args.ssl_keyfile, args.ssl_keyfile_password, args.ssl_ca_certs
        )
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"fastsockjs: --ssl-certfile / --ssl-keyfile: {exc}") from None


def build_servers(
    args: argparse.Namespace, sockjs_url: str, files: dict[str, tuple[str, bytes]],
    broker: Broker,
) -> list[Server]:
    """The command's Servers; adds the chat page to ``files``."""
    extra: dict[str, Any] = {}
    if args.transports is not None:
        extra["disabled_transports"] = frozenset(TRANSPORTS) - args.transports
    if args.ws_compression:
        extra["websocket_compression"] = True
    # What a run factory's Servers get too: the deployment's policy, not the app's.
    policy: dict[str, Any] = {}
    if args.allowed_origins:
        policy["allowed_origins"] = tuple(args.allowed_origins)
    if args.max_message_size is not None:
        policy["max_message_size"] = args.max_message_size
    extra.update(policy)
    if args.command == "testserver":
        return testserver(sockjs_url, broker=broker, **extra)
    extra["sockjs_url"] = sockjs_url
    if args.command == "echo":
        return [apps.echo(prefix=args.prefix, **extra)]
    if args.command == "chat":
        page = (_STATIC / "chat.html").read_text("utf-8")
        page = page.replace("{{ sockjs_client }}", sockjs_url)
        page = page.replace("{{ prefix_json }}", json.dumps(args.prefix).replace("<", "\\u003c"))
        files["/"] = ("text/html; charset=UTF-8", page.encode("utf-8"))
        return [apps.chat(prefix=args.prefix, broker=broker, rate=args.rate,
                          max_text=args.max_text, history_length=args.history, **extra)]
    servers = load_target(args.target, broker)
    if policy:
        for server in servers:
            server.options = make_options(server.options, **policy)
    return servers


def _supervise(args: argparse.Namespace, argv: list[str]) -> None:
    logconfig.configure_logging(args.log_level, label="supervisor")
    if args.port == 0:
        raise SystemExit("fastsockjs: --workers needs an explicit --port (not 0)")
    if args.reuse_port:
        # The same servers the workers will build, checked once here.
        servers = build_servers(args, DEFAULT_SOCKJS_URL, {}, MemoryBroker())
        problem = workers.reuse_port_problem(servers)
        if problem:
            raise SystemExit("fastsockjs: " + problem)
    elif args.port + args.workers - 1 > 65535:
        raise SystemExit("fastsockjs: --port + --workers goes past port 65535")

    def worker_args(i: int) -> list[str]:
        port = args.port if args.reuse_port else args.port + i
        return [*argv, "--workers", "1", "--port", str(port)]

    supervisor = workers.Supervisor(
        worker_args, args.workers, shutdown_timeout=args.shutdown_timeout
    )
    raise SystemExit(supervisor.run())


if __name__ == "__main__":
    main()
