"""One module per SockJS transport; :data:`HANDLERS` maps route kinds to them.

A handler is ``handler(endpoint, request, exchange, route)``: it answers
through ``exchange`` (respond / stream / upgrade) and touches sessions only
through ``endpoint``. Handlers do no I/O of their own.
"""

from __future__ import annotations

from fastsockjs.transports import eventsource, htmlfile, info, jsonp, websocket, xhr

HANDLERS = {
    "greeting": info.greeting,
    "info": info.info,
    "info_options": info.info_options,
    "iframe": info.iframe,
    "options": info.session_options,
    "xhr": xhr.xhr_polling,
    "xhr_send": xhr.xhr_send,
    "xhr_streaming": xhr.xhr_streaming,
    "eventsource": eventsource.eventsource,
    "htmlfile": htmlfile.htmlfile,
    "jsonp": jsonp.jsonp,
    "jsonp_send": jsonp.jsonp_send,
    "websocket": websocket.sockjs_websocket,
    "raw_websocket": websocket.raw_websocket,
}

__all__ = ["HANDLERS"]
