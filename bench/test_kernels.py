"""Micro-benchmarks of the hot kernels: each Cython kernel next to its pure-Python twin.

Every benchmark is parametrised over the two modules (``fastsockjs._frames`` and
``fastsockjs._frames_py``; ``fastsockjs._http`` and ``fastsockjs._http_py`` for the
request and response heads) and put in one benchmark group per kernel and size, so
pytest-benchmark's table shows the two side by side and the speed-up is the
ratio of their rows::

    python -m pytest bench --benchmark-only --benchmark-autosave
    python -m pytest bench --benchmark-only --benchmark-compare      # vs the last save
    python -m pytest bench --benchmark-only --benchmark-json=out.json

No test here asserts a timing. Without the compiled extension the ``cython``
rows are skipped.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from types import ModuleType
from typing import Any

import pytest

from fastsockjs import _frames_py as reference

MODULES = {"cython": "fastsockjs._frames", "python": "fastsockjs._frames_py"}

# Sub-microsecond kernels: make each timed round last at least 50 us (many calls), or the
# timer's own cost swamps the call (command-line --benchmark-* options still win over this).
pytestmark = pytest.mark.benchmark(min_time=50e-6, warmup=True, warmup_iterations=1000)


def _load(kind: str) -> ModuleType:
    try:
        module = importlib.import_module(MODULES[kind])
    except ImportError:
        pytest.skip(f"{MODULES[kind]} is not built")
    expected = "cython" if kind == "cython" else "python"
    if getattr(module, "IMPLEMENTATION", expected) != expected:  # pragma: no cover
        pytest.skip(f"{MODULES[kind]} is not the {kind} implementation")
    return module


@pytest.fixture(params=list(MODULES), ids=list(MODULES))
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request.param)


# -- inputs --------------------------------------------------------------------------------

_MSG32 = "0123456789abcdef-hello-world-32b"  # 32 ASCII bytes, like the load benchmark's
assert len(_MSG32) == 32

QUOTE_CASES: dict[str, str] = {
    # A short chat-like message: the common case (stays on the ASCII fast path).
    "ascii-32": _MSG32,
    "ascii-4k": ("The quick brown fox jumps over the lazy dog. " * 100)[:4096],
    # Mostly non-ASCII text that needs no SockJS escape (BMP letters, CJK, an emoji pair).
    "unicode-mixed-1k": ("zażółć gęślą jaźń — 日本語のテキスト ✓ naïve café 😀 " * 40)[:1024],
    # Everything that must be escaped: quotes, backslashes, controls, and the SockJS
    # extras (U+2028, U+200F, U+FFF0, a lone surrogate, an astral character).
    "escape-heavy-1k": ('"\\\n\t\x00\x1f\u2028\u200f\ufff0\ud800\U0001f600 ab' * 80)[:1024],
}

BATCHES = [1, 16, 256]

SIZES = [0, 1, 5, 9, 125, 126, 64 * 1024, 1024 * 1024]
SIZE_IDS = ["0", "1", "5", "9", "125", "126", "64KiB", "1MiB"]
MASK = b"\x37\xfa\x21\x3d"
MAX_PAYLOAD = 16 * 1024 * 1024


def _payload(n: int) -> bytes:
    return (b"sockjs-frame-payload-0123456789" * (n // 31 + 1))[:n]


# -- SockJS quoting and frame assembly -----------------------------------------------------


@pytest.mark.parametrize("case", list(QUOTE_CASES))
def test_quote(benchmark: Any, impl: ModuleType, case: str) -> None:
    text = QUOTE_CASES[case]
    benchmark.group = f"quote[{case}]"
    benchmark.extra_info["chars"] = len(text)
    result = benchmark(impl.quote, text)
    assert result == reference.quote(text)


@pytest.mark.parametrize("n", BATCHES)
def test_encode_messages(benchmark: Any, impl: ModuleType, n: int) -> None:
    messages = [f"{i:08x}" + _MSG32[8:] for i in range(n)]
    benchmark.group = f"encode_messages[{n}x32B]"
    benchmark.extra_info["messages"] = n
    result = benchmark(impl.encode_messages, messages)
    assert result == reference.encode_messages(messages)


def test_encode_messages_mixed(benchmark: Any, impl: ModuleType) -> None:
    messages = [QUOTE_CASES["unicode-mixed-1k"][:64], _MSG32, 'say "hi"\n'] * 5 + [_MSG32]
    benchmark.group = "encode_messages[16 mixed]"
    result = benchmark(impl.encode_messages, messages)
    assert result == reference.encode_messages(messages)


@pytest.mark.parametrize(
    ("reason", "case"), [("Go away!", "short"), ('bad "framing"\n\u2028', "escapes")]
)
def test_close_frame(benchmark: Any, impl: ModuleType, reason: str, case: str) -> None:
    benchmark.group = f"close_frame[{case}]"
    result = benchmark(impl.close_frame, 3000, reason)
    assert result == reference.close_frame(3000, reason)


DECODE_CASES = {
    "array": '["' + _MSG32 + '"]',
    "string": '"' + _MSG32 + '"',
    "array16": "[" + ",".join(['"' + _MSG32 + '"'] * 16) + "]",
}


@pytest.mark.parametrize("case", list(DECODE_CASES))
def test_decode_ws_message(benchmark: Any, impl: ModuleType, case: str) -> None:
    text = DECODE_CASES[case]
    benchmark.group = f"decode_ws_message[{case}]"
    result = benchmark(impl.decode_ws_message, text)
    assert result == [_MSG32] * (16 if case == "array16" else 1)


# -- WebSocket framing ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_parse_frames(benchmark: Any, impl: ModuleType, size: int) -> None:
    buf = reference.build_frame(0x1, _payload(size), True, MASK)  # a client frame: masked
    benchmark.group = f"parse_frames[{size}B]"
    benchmark.extra_info["payload_bytes"] = size
    frames, pos, error = benchmark(impl.parse_frames, buf, 0, MAX_PAYLOAD)
    assert error is None and pos == len(buf) and frames[0][2] == _payload(size)


def test_parse_frames_batch(benchmark: Any, impl: ModuleType) -> None:
    # What one read() brings under load: many small masked frames back to back.
    msg = ('["' + _MSG32 + '"]').encode()
    buf = bytearray(b"".join(reference.build_frame(0x1, msg, True, MASK) for _ in range(64)))
    benchmark.group = "parse_frames[64 x 36B]"
    frames, pos, error = benchmark(impl.parse_frames, buf, 0, MAX_PAYLOAD)
    assert error is None and pos == len(buf) and len(frames) == 64


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_apply_mask(benchmark: Any, impl: ModuleType, size: int) -> None:
    data = _payload(size)
    benchmark.group = f"apply_mask[{size}B]"
    benchmark.extra_info["bytes"] = size
    result = benchmark(impl.apply_mask, data, MASK)
    assert result == reference.apply_mask(data, MASK)


BUILD_SIZES = [0, 9, 125, 126, 64 * 1024]
BUILD_IDS = ["0", "9", "125", "126", "64KiB"]


@pytest.mark.parametrize("size", BUILD_SIZES, ids=BUILD_IDS)
def test_build_frame(benchmark: Any, impl: ModuleType, size: int) -> None:
    payload = _payload(size)
    benchmark.group = f"build_frame[{size}B]"
    result = benchmark(impl.build_frame, 0x1, payload)  # a server frame: unmasked
    assert result == reference.build_frame(0x1, payload)


def test_build_frame_masked(benchmark: Any, impl: ModuleType) -> None:
    payload = _payload(125)
    benchmark.group = "build_frame[125B masked]"
    result = benchmark(impl.build_frame, 0x1, payload, True, MASK)
    assert result == reference.build_frame(0x1, payload, True, MASK)


# -- the HTTP transports' frames -------------------------------------------------------------

# What a session hands its receiver: an "a[...]" frame of 1 or 16 quoted 32 B messages.
HTTP_FRAMES = {
    "1x32B": "a[" + reference.quote(_MSG32) + "]",
    "16x32B": reference.encode_messages([f"{i:08x}" + _MSG32[8:] for i in range(16)]),
    "16 mixed": reference.encode_messages(
        [QUOTE_CASES["unicode-mixed-1k"][:64], _MSG32, 'say "hi" </script>\n%'] * 5 + [_MSG32]
    ),
}


@pytest.mark.parametrize("case", list(HTTP_FRAMES))
def test_wrap_js_string(benchmark: Any, impl: ModuleType, case: str) -> None:
    frame = HTTP_FRAMES[case]
    benchmark.group = f"wrap_js_string[{case}]"  # an htmlfile <script> block
    result = benchmark(impl.wrap_js_string, b"<script>\np(", frame, b");\n</script>\r\n")
    assert result == reference.wrap_js_string(b"<script>\np(", frame, b");\n</script>\r\n")


@pytest.mark.parametrize("case", list(HTTP_FRAMES))
def test_event_stream_data(benchmark: Any, impl: ModuleType, case: str) -> None:
    frame = HTTP_FRAMES[case]
    benchmark.group = f"event_stream_data[{case}]"
    result = benchmark(impl.event_stream_data, frame)
    assert result == reference.event_stream_data(frame)


def test_unquote_plus(benchmark: Any, impl: ModuleType) -> None:
    # The d field of a jsonp_send form as a browser encodes one 32 B message.
    field = "%5B%22" + _MSG32.replace("-", "%2D") + "%22%5D"
    benchmark.group = "unquote_plus[jsonp_send d=]"
    result = benchmark(impl.unquote_plus, field)
    assert result == '["' + _MSG32 + '"]'


# -- HTTP request heads and response heads (fastsockjs._http) ------------------------------

HTTP_MODULES = {"cython": "fastsockjs._http", "python": "fastsockjs._http_py"}


@pytest.fixture(params=list(HTTP_MODULES), ids=list(HTTP_MODULES))
def http_impl(request: pytest.FixtureRequest) -> ModuleType:
    try:
        module = importlib.import_module(HTTP_MODULES[request.param])
    except ImportError:
        pytest.skip(f"{HTTP_MODULES[request.param]} is not built")
    return module


_POLL = (b"POST /echo/000/s17/xhr HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
         b"User-Agent: loadgen\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n")
_SEND_BODY = b'["' + _MSG32.encode() + b'"]'
REQUESTS: dict[str, bytes] = {
    # The load benchmark's poll and send (bench/load).
    "xhr poll": _POLL,
    "xhr_send 32B": (b"POST /echo/000/s17/xhr_send HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
                     b"User-Agent: loadgen\r\nAccept: */*\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(_SEND_BODY), _SEND_BODY)),
    # What a browser sends with sockjs-client: a dozen headers, cookies, a long agent.
    "browser poll": (
        b"POST /echo/000/s17/xhr HTTP/1.1\r\nHost: chat.example.com\r\nConnection: keep-alive\r\n"
        b"Content-Length: 0\r\nsec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n"
        b"sec-ch-ua-platform: \"Linux\"\r\nsec-ch-ua-mobile: ?0\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        b"Chrome/131.0.0.0 Safari/537.36\r\nContent-type: text/plain;charset=UTF-8\r\n"
        b"Accept: */*\r\nOrigin: https://chat.example.com\r\nSec-Fetch-Site: same-origin\r\n"
        b"Sec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nReferer: https://chat.example.com/\r\n"
        b"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-GB,en;q=0.9\r\n"
        b"Cookie: JSESSIONID=dummy; theme=dark\r\n\r\n"
    ),
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_parse_request(benchmark: Any, http_impl: ModuleType, case: str) -> None:
    data = REQUESTS[case]
    benchmark.group = f"parse_request[{case}]"
    result = benchmark(http_impl.parse_request, data, 0, 8192, 64 * 1024, 8 << 20)
    assert isinstance(result, tuple) and result[0] == len(data)


HEADS: dict[str, dict[str, Any]] = {
    # xhr_send's 204 with the CORS and cache block.
    "204 cors": {"status": 204, "headers": [
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0"),
        ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
    ]},
    # A poll's chunked 200.
    "200 chunked": {"status": 200, "chunked": True, "headers": [
        ("Content-Type", "application/javascript; charset=UTF-8"),
        ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0"),
        ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
    ]},
}


@pytest.mark.parametrize("case", list(HEADS))
def test_head(benchmark: Any, http_impl: ModuleType, case: str) -> None:
    spec = dict(HEADS[case])
    status, headers = spec.pop("status"), spec.pop("headers")
    benchmark.group = f"head[{case}]"
    result = benchmark(http_impl.head, status, headers, **spec)
    assert result.startswith(b"HTTP/1.1 %d " % status) and result.endswith(b"\r\n\r\n")


# -- session registry -----------------------------------------------------------------------

N_SESSIONS = 10_000


@pytest.fixture(scope="module")
def endpoint() -> Any:
    """A mounted endpoint holding 10k HTTP sessions (created inside a running loop)."""
    import fastsockjs

    loop = asyncio.new_event_loop()
    listener = fastsockjs.Listener()
    server = fastsockjs.Server(prefix="/echo")

    async def setup() -> Any:
        ep = server.install_handlers(listener)
        runtime = listener.runtime  # binds the engine to this loop, as listen() would
        for _ in range(N_SESSIONS):
            ep.open_session(uuid.uuid4().hex)
        return ep, runtime

    ep, runtime = loop.run_until_complete(setup())
    yield ep
    runtime.close()  # its timers, armed by the 10k sessions
    loop.close()


@pytest.mark.parametrize("hit", [True, False], ids=["hit", "miss"])
def test_session_lookup(benchmark: Any, endpoint: Any, hit: bool) -> None:
    ids = list(endpoint.sessions)
    assert len(ids) == N_SESSIONS
    probe = ids[len(ids) // 2] if hit else uuid.uuid4().hex
    benchmark.group = f"session lookup ({N_SESSIONS} sessions)"
    benchmark.extra_info["implementation"] = os.environ.get("FASTSOCKJS_PURE_PYTHON", "") or "auto"
    result = benchmark(endpoint.session, probe)
    assert (result is not None) is hit
