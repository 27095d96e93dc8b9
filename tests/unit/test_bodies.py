"""xhr_send / jsonp_send bodies: strict JSON arrays, each message bounded on its own."""

from __future__ import annotations

import json

import pytest

from fastsockjs.protocol.http import HttpError
from fastsockjs.transports.base import decode_body

LIMIT = 100


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(["a" * 90] * 5),  # 460 bytes in all, every message under the limit
        ' [ "x" , ' + json.dumps("é" * 45, ensure_ascii=False) + " , {\"k\": [1, 2]} ] ",  # 90 + 2 bytes of UTF-8
        json.dumps([{"deep": ["b" * 80]}, 3, None]),
    ],
)
def test_bodies_whose_messages_fit(body: str) -> None:
    assert decode_body(body, LIMIT) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(["ok", "a" * 120]),
        json.dumps(["é" * 50], ensure_ascii=False),  # 50 characters, but 102 bytes with the quotes
        ' [ 1 ,\n' + json.dumps({"k": "v" * 100}) + "]",
    ],
)
def test_one_message_over_the_limit_is_413(body: str) -> None:
    with pytest.raises(HttpError) as err:
        decode_body(body, LIMIT)
    assert err.value.status == 413


@pytest.mark.parametrize(("body", "status"), [("", 500), ("[", 500), ('{"a": 1}', 500), ("[NaN]", 500)])
def test_bad_bodies_are_500(body: str, status: int) -> None:
    with pytest.raises(HttpError) as err:
        decode_body(body, LIMIT)
    assert err.value.status == status


def _reference(body: str) -> object:
    """What the whole json decode() makes of ``body``: its value, or 500."""
    try:
        value = json.loads(body, parse_constant=lambda name: (_ for _ in ()).throw(ValueError()))
    except ValueError:
        return 500
    return value if type(value) is list else 500


@pytest.mark.parametrize(
    "body",
    [
        "[]", "[ ]", '["a"]', '["a","b"]', "[1] ]", "[1][2]", '["a"] ', ' ["a"]', "[1,]",
        '["a" ]', '[ "a"]', "[Infinity]", "[-Infinity]", "[NaN, 1]", '["\\ud800"]', "[1]x]",
        '["]"]', '["a\\"]', "[[[]]]", "[" * 50 + "]" * 50, "[tru]", "[true]", "[null]",
    ],
)
def test_array_bodies_read_as_the_whole_json_decode_reads_them(body: str) -> None:
    """Bodies that start with [ and end with ] take the scanner's short way: the
    same value as json's whole decode(), or the same 500."""
    try:
        got: object = decode_body(body, 1 << 20)
    except HttpError as err:
        got = err.status
    assert got == _reference(body)
