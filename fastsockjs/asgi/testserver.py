"""``fastsockjs testserver`` as an ASGI app: the same services, served by
SockJSApp under any ASGI server, so the official protocol suite can be run
against the ASGI host::

    uvicorn --factory fastsockjs.asgi.testserver:app --port 8081

``FASTSOCKJS_SOCKJS_URL`` sets the sockjs-client URL of the iframe page (the
jsDelivr address by default). See docs/asgi.md.
"""

from __future__ import annotations

import os

from fastsockjs.asgi import SockJSApp
from fastsockjs.cli import testserver
from fastsockjs.options import DEFAULT_SOCKJS_URL

#: Environment variable naming the iframe page's sockjs-client URL.
ENV_SOCKJS_URL = "FASTSOCKJS_SOCKJS_URL"


def app() -> SockJSApp:
    """A fresh SockJSApp mounting the test server's services (a factory: one per worker)."""
    # The service list is the command line's own, so the two test servers cannot drift.
    return SockJSApp(*testserver(os.environ.get(ENV_SOCKJS_URL) or DEFAULT_SOCKJS_URL))
