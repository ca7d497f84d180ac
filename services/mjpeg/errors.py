"""The front door's last resort: a failure no handler turned into a reason becomes one log
line and a generic reply, never a traceback per request or Python text for the client.

Bad input is refused where it is parsed, with a reason in the client's terms; what reaches
this middleware is a client that went away mid-request (logged at DEBUG: it happens all the
time on a flaky Wi-Fi) or a real bug (ERROR, one line with the route and the exception).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger("titanium.mjpeg")


def http_error(status: int, reason: str) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": reason}``, to raise."""
    exc = web.HTTPException(text=json.dumps({"error": reason}), content_type="application/json")
    exc.set_status(status)
    return exc


def _where(request: web.Request) -> str:
    """The request's path for a log line: never its query (``?token=``) nor a token in it."""
    token = request.match_info.get("token")
    return request.path.replace(token, "TOKEN") if token else request.path


@web.middleware
async def last_resort(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException:
        raise
    except ConnectionError as e:
        log.debug("%s %s: the client went away (%s)", request.method, _where(request), e)
        raise http_error(400, "the connection was reset") from None
    except Exception as e:
        log.error(
            "%s %s failed: %s: %s", request.method, _where(request), type(e).__name__, str(e)[:200]
        )
        raise http_error(500, "internal error; the front door's log has the details") from None
    return response
