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
