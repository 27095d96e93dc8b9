"""``python -m tests.autobahn.sockjs_endpoint``: why Autobahn's fuzzing client cannot
grade the SockJS ``websocket`` transport, measured.

Autobahn checks that each message comes back unchanged. On
``/<prefix>/<server>/<session>/websocket`` the SockJS protocol makes the server send
the open frame ``o`` first and every message inside ``a[...]``, and it reads only JSON
arrays from the client: every echo case fails on that framing, not on the WebSocket
layer. This runs cases 1-7, 12.1 and 13.1 (compression on) against that endpoint and
sorts the failures by cause; the run for the raw ``/websocket`` endpoint, where
Autobahn can grade the codec, is tests/autobahn/test_autobahn.py.

Uses the ``wstest`` that test_autobahn.py builds (run it once first); a minute or so.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastsockjs import apps
from tests.autobahn.test_autobahn import wstest_path
from tests.helpers import ServerThread

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "12.1.*", "13.1.*"]


def cause(case: dict[str, Any]) -> str:
    """Why a case did not pass: the SockJS framing, or something else."""
    received = case.get("received") or []
    if received and received[0][:2] == ["message", "o"]:
        return "the first message back is the SockJS open frame 'o'"
    if "Echo'ed message length differs" in case.get("result", ""):
        return "the echo comes back inside a SockJS frame (length differs)"
    return "other: " + case.get("result", "")[:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    wstest = wstest_path()
    if not wstest.is_file():
        print(f"no {wstest}: run pytest tests/autobahn once to build it", file=sys.stderr)
        return 2
    st = ServerThread(lambda: [apps.echo(
        prefix="/echo", websocket_compression=True, max_message_size=32 << 20,
        ws_ping_interval=None,
    )], "uvloop").start()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spec = {
            "outdir": str(out / "report"),
            "servers": [{"agent": "sockjs",
                         "url": f"ws://127.0.0.1:{st.port}/echo/000/autobahn/websocket"}],
            "cases": args.cases.split(","), "exclude-cases": [], "exclude-agent-cases": {},
        }
        (out / "spec.json").write_text(json.dumps(spec))
        started = time.monotonic()
        try:
            subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(out / "spec.json")],
                           cwd=out, capture_output=True, timeout=1800, check=True)
        finally:
            st.stop()
        index = json.loads((out / "report" / "index.json").read_text())["sockjs"]
        grades: collections.Counter[str] = collections.Counter()
        causes: collections.Counter[str] = collections.Counter()
        for entry in index.values():
            case = json.loads((out / "report" / entry["reportfile"]).read_text())
            grades[case["behavior"]] += 1
            if case["behavior"] == "FAILED":
                causes[cause(case)] += 1
    print(f"{len(index)} cases in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{n} {grade}" for grade, n in grades.most_common()))
    for why, n in causes.most_common():
        print(f"  FAILED {n:4d}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
