"""The atheris targets of fuzz/ run under pytest with hypothesis-made bytes, so CI
exercises them without atheris: random bytes, and the seed corpus mutated
(byte-level insertions and deletions, as libFuzzer would start)."""

from __future__ import annotations

from collections.abc import Iterator

import fuzz_http
import fuzz_ws
import pytest
import seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.live import examples, scaled_timeout  # (also puts fuzz/ on sys.path)

pytestmark = pytest.mark.timeout(scaled_timeout())

SETTINGS = settings(max_examples=examples(300), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MUTATIONS = st.lists(
    st.tuples(st.integers(0, 4000), st.integers(0, 6),
              st.binary(max_size=6) | st.sampled_from([b"\r\n", b"\r\n\r\n", b"\x00", b" ", b"\xff"])),
    max_size=4,
)


def mutate(seed: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    data = seed
    for pos, delete, insert in ops:
        pos = 1 + pos % max(1, len(data))  # keep the read-size byte
        data = data[:pos] + insert + data[pos + delete:]
    return data


def inputs(seed_list: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(seed_list), MUTATIONS).map(lambda t: mutate(*t)),
        st.tuples(st.integers(0, 255), st.sampled_from(seed_list)).map(lambda t: bytes([t[0]]) + t[1][1:]),
    )


@pytest.fixture(scope="module", autouse=True)
def _close_harness() -> Iterator[None]:
    yield
    fuzz_http.reset()


def test_http_target_on_the_seeds() -> None:
    for seed in seeds.http_seeds():
        fuzz_http.one_input(seed)


@SETTINGS
@given(data=inputs(seeds.http_seeds()))
def test_http_target(data: bytes) -> None:
    fuzz_http.one_input(data)


def test_ws_target_on_the_seeds() -> None:
    for seed in seeds.ws_seeds():
        fuzz_ws.one_input(seed)


@SETTINGS
@given(data=inputs(seeds.ws_seeds()))
def test_ws_target(data: bytes) -> None:
    fuzz_ws.one_input(data)


# Inputs that were findings before the fixes of test_found_bugs.py (deep JSON).
NESTED = b"[" * 1500 + b"]" * 1500  # within the targets' 4 KiB limit
_UPGRADE = seeds.upgrade(b"/echo/000/w/websocket")


def test_http_target_on_deep_json_in_xhr_send() -> None:
    """Was: RecursionError logged, answered '500 - Internal Server Error'."""
    fuzz_http.one_input(b"\x00" + seeds.post(b"/echo/000/d/xhr", b"")
                        + seeds.post(b"/echo/000/d/xhr_send", NESTED))


@pytest.mark.parametrize("step", [0, len(_UPGRADE)])
def test_http_target_on_deep_json_over_websocket(step: int) -> None:
    """Was: RecursionError out of HttpProtocol.data_received. ``step`` sends the
    frame with the upgrade request, or in the next read."""
    fuzz_http.one_input(bytes([step]) + _UPGRADE + seeds.frame(1, NESTED))
