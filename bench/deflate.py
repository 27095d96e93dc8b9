"""What permessage-deflate costs and saves, measured on the codec itself:
CPU per message sent and received, bytes on the wire for JSON-like
messages, and the memory an idle compressed session keeps.

    python -m bench.deflate            # prints a Markdown table (docs/api.md quotes it)

Messages are chat-like JSON arrays (``a[...]`` frames as a SockJS session
sends them). "shared" is the default (no context takeover: one compressor
per mount, a broadcast compressed once); "takeover" keeps a compression
context per session (``server_no_context_takeover=False`` and
``client_no_context_takeover=False``), which compresses small repetitive
messages better.
"""

from __future__ import annotations

import gc
import json
import random
import time
import tracemalloc
import zlib
from typing import Any

from fastsockjs import WebSocketCompression
from fastsockjs._frames_py import build_frame
from fastsockjs.protocol import websocket as wsproto

MASK = b"\x01\x02\x03\x04"
MODES: dict[str, WebSocketCompression | None] = {
    "off": None,
    "shared (default)": WebSocketCompression(),
    "takeover": WebSocketCompression(server_no_context_takeover=False,
                                     client_no_context_takeover=False),
}


def messages(size: int, count: int, seed: int = 1) -> list[str]:
    """Chat-like JSON: the same keys, varying users, numbers and words."""
    rnd = random.Random(seed)
    words = ["hello", "there", "how", "are", "you", "today", "fine", "thanks", "see", "you", "later", "ok", "lobby"]
    out = []
    for i in range(count):
        items: list[Any] = []
        text = ""
        while len(text) < size:
            items.append({"id": 10_000 + i, "user": f"user{rnd.randrange(50)}", "room": "lobby",
                          "ts": 1_700_000_000 + rnd.randrange(10**6),
                          "text": " ".join(rnd.choice(words) for _ in range(rnd.randrange(3, 12)))})
            text = "a" + json.dumps([json.dumps(items)])
        out.append(text[:size] if len(text) > size * 2 else text)
    return out


def codec(mode: str, offer: str = "permessage-deflate") -> Any:
    config = MODES[mode]
    if config is None:
        return wsproto.Codec(1 << 20)
    params = wsproto.PerMessageDeflate(config).negotiate(offer)
    assert params is not None
    return wsproto.DeflateCodec(1 << 20, params)


def send_cost(mode: str, msgs: list[str]) -> tuple[float, float]:
    """(microseconds per message, wire bytes / payload bytes) of codec.text."""
    c = codec(mode)
    wire = sum(len(c.text(m)) for m in msgs[:50])  # warm up
    start = time.perf_counter()
    wire = sum(len(c.text(m)) for m in msgs)
    took = time.perf_counter() - start
    payload = sum(len(m.encode()) for m in msgs)
    return took / len(msgs) * 1e6, wire / payload


def receive_cost(mode: str, msgs: list[str]) -> float:
    """Microseconds per client message inflated and decoded by the codec."""
    c = codec(mode)
    takeover = mode == "takeover"
    z: Any = None
    frames = []
    for m in msgs:
        if MODES[mode] is None:
            frames.append(build_frame(1, m.encode(), True, MASK))
            continue
        if z is None or not takeover:
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
        frames.append(build_frame(1, (z.compress(m.encode()) + z.flush(zlib.Z_SYNC_FLUSH))[:-4],
                                  True, MASK, True))
    start = time.perf_counter()
    for f in frames:
        c.receive_data(f)
    return (time.perf_counter() - start) / len(frames) * 1e6


def idle_session_bytes(mode: str, sessions: int = 200) -> float:
    """Bytes an idle session's codec holds after one message each way."""
    sample = messages(2000, 1)[0]
    client = zlib.compressobj(6, zlib.DEFLATED, -15)
    frame = build_frame(1, (client.compress(sample.encode()) + client.flush(zlib.Z_SYNC_FLUSH))
                        [:-4], True, MASK, MODES[mode] is not None)
    if MODES[mode] is None:
        frame = build_frame(1, sample.encode(), True, MASK)
    config = MODES[mode]
    pmd = wsproto.PerMessageDeflate(config) if config is not None else None
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for _ in range(sessions):
        if pmd is None:
            c: Any = wsproto.Codec(1 << 20)
        else:
            params = pmd.negotiate("permessage-deflate")
            assert params is not None
            c = wsproto.DeflateCodec(1 << 20, params)
        c.receive_data(frame)
        c.text(sample)
        kept.append(c)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / sessions


def main() -> None:
    print("| mode | message | send µs/msg | wire/payload | receive µs/msg |")
    print("|---|---|---|---|---|")
    for size in (100, 1000, 10_000):
        msgs = messages(size, 2000)
        for mode in MODES:
            us, ratio = send_cost(mode, msgs)
            rx = receive_cost(mode, msgs)
            print(f"| {mode} | {size} B | {us:.1f} | {ratio:.2f} | {rx:.1f} |")
    print()
    print("| mode | idle session (codec) bytes |")
    print("|---|---|")
    for mode in MODES:
        print(f"| {mode} | {idle_session_bytes(mode):,.0f} |")


if __name__ == "__main__":
    main()
