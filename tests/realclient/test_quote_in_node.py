"""SockJS quoting, decoded by JavaScript's own JSON.parse (in Node) rather than
Python's json: every BMP code point, lone surrogates included, must come back as
the very UTF-16 code unit it was, through both kernels."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from fastsockjs import _frames_py
from tests.realclient.conftest import _need

try:
    from fastsockjs import _frames as _compiled
except ImportError:  # the pure-Python build
    _compiled = None

# Reads one quoted string per line (UTF-8; quote() escapes line breaks and
# surrogates), JSON.parses it, and prints the UTF-16 code units it got, or the error.
DECODER = r"""
const lines = require('fs').readFileSync(0, 'utf8').split('\n');
const out = [];
for (const line of lines) {
  if (!line) continue;
  try {
    const s = JSON.parse(line);
    const units = [];
    for (let i = 0; i < s.length; i++) units.push(s.charCodeAt(i));
    out.push(units);
  } catch (e) {
    out.push(String(e));
  }
}
process.stdout.write(JSON.stringify(out));
"""

KERNELS: list[Any] = [_frames_py] + ([_compiled] if _compiled is not None else [])


@pytest.mark.realclient
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.IMPLEMENTATION)
def test_every_bmp_code_point_survives_json_parse(kernel: Any) -> None:
    node = _need("node")
    quoted = [kernel.quote(chr(cp)) for cp in range(0x10000)]
    # Controls and surrogates leave as \u escapes, whatever JSON itself allows raw.
    assert all(q.isascii() for q in quoted[:0x20] + quoted[0xD800:0xE000])
    result = subprocess.run(
        [node, "-e", DECODER], input="\n".join(quoted).encode("utf-8"),
        capture_output=True, timeout=120, check=True,
    )
    decoded = json.loads(result.stdout)
    assert len(decoded) == 0x10000
    wrong = [(hex(cp), got) for cp, got in enumerate(decoded) if got != [cp]]
    assert not wrong, wrong[:10]
