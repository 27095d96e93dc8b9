"""transports/htmlfile.py on a fake exchange and a real Mount on a fake clock:
callback validation, the prelude page, script-block frames and their escaping."""

from __future__ import annotations

import pytest

from fastsockjs.protocol.http import NO_CACHE, TEXT_HTML, HttpError
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.htmlfile import HtmlFileReceiver, htmlfile, prelude
from tests.unit.fakes import FakeExchange, Mounted

ROUTE = Route("htmlfile", "000", "s1")


def open_page(m: Mounted, query: str, headers: dict[str, str] | None = None) -> FakeExchange:
    return m.call(htmlfile, "GET", "/echo/000/s1/htmlfile?" + query, headers=headers,
                  route=ROUTE)


def test_the_page_starts_with_the_prelude_calling_the_callback() -> None:
    m = Mounted()
    s = open_page(m, "c=cb", {"origin": "https://a.test"})
    assert s.status == 200
    # A page loaded by an iframe: no CORS headers.
    assert s.headers == [("Content-Type", TEXT_HTML), ("Cache-Control", NO_CACHE)]
    page = s.streamed[0]
    assert page == prelude("cb")
    assert b"var c = parent.cb;" in page and page.startswith(b"<!doctype html>")
    # Padded with spaces after the script, then a blank line.
    assert len(page) >= 1024 and page.endswith(b" \r\n\r\n")
    assert page[:-4].rstrip(b" ").endswith(b"</script>")
    assert s.streamed[1:] == [b'<script>\np("o");\n</script>\r\n']
    assert m.conns[0].protocol == "htmlfile"


def test_the_prelude_is_padded_to_at_least_a_kibibyte() -> None:
    for callback in ("a", "x" * 32):
        page = prelude(callback)
        assert len(page) >= 1024 and page.rstrip(b" \r\n").endswith(b"</script>")


def test_frames_are_js_strings_that_cannot_end_the_script_block() -> None:
    m = Mounted()
    s = open_page(m, "callback=cb")
    m.conns[0].write("</script><b>\u2028")
    m.clock.end_turn()
    assert s.streamed[-1] == (
        b'<script>\np("a[\\"\\u003c/script>\\u003cb>\\\\u2028\\"]");\n</script>\r\n'
    )
    assert HtmlFileReceiver(FakeExchange(), 1000).encode("<") == (
        b'<script>\np("\\u003c");\n</script>\r\n'
    )


@pytest.mark.parametrize(("query", "message"), [
    ("", '"callback" parameter required'),
    ("x=1", '"callback" parameter required'),
    ("c=", 'invalid "callback" parameter'),
    ("c=a%20b", 'invalid "callback" parameter'),
    ("c=alert(1)", 'invalid "callback" parameter'),
    ("c=" + "x" * 33, 'invalid "callback" parameter'),
])
def test_a_missing_or_unsafe_callback_is_refused(query: str, message: str) -> None:
    m = Mounted()
    with pytest.raises(HttpError) as err:
        open_page(m, query)
    assert (err.value.status, err.value.message) == (500, message)
    assert m.mount.session("s1") is None  # refused before any session exists


@pytest.mark.parametrize("callback", ["a", "x" * 32, "cb.f_1-2", "A9"])
def test_valid_callbacks(callback: str) -> None:
    assert b"parent." + callback.encode() + b";" in open_page(Mounted(), "c=" + callback).data
