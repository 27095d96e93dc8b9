"""Type stubs for the compiled request-head kernel (mirror of ``fastsockjs._http_py``)."""

from collections.abc import Iterable
from typing import Final

__all__ = ["FALLBACK", "IMPLEMENTATION", "NEED_MORE", "head", "parse_request"]

IMPLEMENTATION: Final[str]
NEED_MORE: Final[int]
FALLBACK: Final[int]

def parse_request(
    buf: bytes, start: int, max_target: int, max_headers: int, max_body: int
) -> tuple[int, str, str, str, dict[str, str], int, bool, bytes] | int: ...
def head(
    status: int,
    headers: Iterable[tuple[str, str]],
    *,
    version: str = "1.1",
    content_length: int | None = None,
    chunked: bool = False,
    keep_alive: bool = True,
) -> bytes: ...
