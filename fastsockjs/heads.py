"""Picks the HTTP head kernels: ``fastsockjs._http`` when it is built, else its
twin ``_http_py`` (the specification the compiled module is tested against).

The twin's request parser is slower than httptools' own callbacks, so without
the extension (or with ``FASTSOCKJS_PURE_PYTHON=1``) :data:`parse_request` is
None and the HTTP host reads every request with httptools, as it always could.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Protocol

from fastsockjs.kernels import load

impl: ModuleType = load("_http", "_http_py")

NEED_MORE: int = impl.NEED_MORE
FALLBACK: int = impl.FALLBACK

#: ``parse_request(buf, start, max_target, max_headers, max_body)``: see ``_http_py``.
ParseRequest = Callable[
    [bytes, int, int, int, int],
    "tuple[int, str, str, str, dict[str, str], int, bool, bytes] | int",
]
parse_request: ParseRequest | None = (
    impl.parse_request if impl.IMPLEMENTATION == "cython" else None
)


class Head(Protocol):
    def __call__(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        *,
        version: str = "1.1",
        content_length: int | None = None,
        chunked: bool = False,
        keep_alive: bool = True,
    ) -> bytes: ...


#: ``head(status, headers, *, version, content_length, chunked, keep_alive)``.
head: Head = impl.head
