"""Access control at the front door (``http.auth``): with ``token``, no route serves a frame,
a status or a signalling answer without a valid token for the camera it names.

A token is taken, in this order, from the path prefix every route accepts (``/t/TOKEN/…``:
both frontends' WHEP clients drop the query, PROTOCOLS.md "Tokens that browser clients can
carry"), ``?token=`` (what ``<img>`` tags and the MJPEG workers send), ``Authorization:
Bearer`` (OBS, GStreamer) or the password of Basic auth (OctoPrint's snapshot fetcher, any
user name). Missing, bad, expired or revoked: 401 with the reason; a token without the camera
or the right a route needs: 403. Each route names what it needs (:class:`Access`, from
routes.py); a resource no route table describes needs ``view`` (so one added by hand, such as
a future ``/metrics``, is not served openly by mistake).

CORS preflights carry no Authorization header, so one without a usable token is answered with
the bare preflight (no ICE server Links, which may hold TURN credentials).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from titanium.common.config import Config
from titanium.common.tokens import Grant, TokenError, Tokens
from titanium.services.mjpeg import cors
from titanium.services.mjpeg.errors import http_error
from titanium.services.mjpeg.keys import GRANT

log = logging.getLogger("titanium.mjpeg.auth")
REFRESH_INTERVAL = 0.5  # revocations made by titaniumctl reach live sessions within 2 s
REALM = 'Basic realm="Titanium"'
TOKEN_PREFIX = "/t/{token}"  # the path prefix every route also answers under
EXPOSED_WARNING = (
    "the front door listens on {listen} with http.auth 'off': anyone on the network can watch "
    "every camera; set titanium.http.auth to 'token' (or listen on 127.0.0.1 behind nginx)"
)


@dataclass(frozen=True)
class Access:
    """What a route needs from a request's token."""

    right: str = "view"  # common/tokens.py RIGHTS
    camera: bool = True  # it serves one camera (path, ?camera=, else the first): checked
    public: Callable[[web.Request], bool] | None = None  # requests it serves without a token
    query: str = "camera"  # the query parameter that names the camera (go2rtc's: src)


ACCESS = web.AppKey("auth_access", dict[web.AbstractResource, Access])
UNLISTED = Access(camera=False)

Revoked = Callable[[set[str]], Awaitable[None]]


class Auth:
    """The front door's token checks, kept under :data:`AUTH`.

    ``on_revoked``: coroutine functions called with the ids of tokens newly revoked (by any
    process: ``titaniumctl token revoke``, the control socket), read every
    ``REFRESH_INTERVAL`` seconds; append one to end the sessions those tokens opened (their
    grants' ``id``, in ``request[GRANT]``). A callback that fails is logged and the others
    still run.
    """

    def __init__(self, config: Config, tokens: Tokens) -> None:
        self.mode = config.http.auth
        self.exempt_loopback = config.http.auth_exempt_loopback
        self.tokens = tokens
        self.listen = config.http.listen
        self.first_camera = config.cameras[0].id
        self.on_revoked: list[Revoked] = []

    @property
    def on(self) -> bool:
        return self.mode == "token"

    @property
    def exposed(self) -> bool:
        """Auth off while listening where other machines reach us."""
        return not self.on and not _is_loopback(self.listen.host)

    def describe(self) -> dict[str, Any]:
        """``/status``'s ``auth``."""
        doc: dict[str, Any] = {"mode": self.mode, "exposed": self.exposed}
        if self.exposed:
            doc["warning"] = EXPOSED_WARNING.format(listen=self.listen)
        if self.on:
            doc["exempt_loopback"] = self.exempt_loopback
        return doc

    async def run(self) -> None:
        """Read revocations until cancelled."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                revoked = await asyncio.to_thread(self.tokens.refresh)
            except Exception as e:  # a locked or damaged database: keep the last list
                log.warning("could not read token revocations: %s", e)
                continue
            if not revoked:
                continue
            for callback in list(self.on_revoked):
                try:
                    await callback(revoked)
                except Exception as e:
                    log.error("ending the sessions of revoked tokens failed: %r", e)

    def check(self, request: web.Request, access: Access) -> Grant:
        """The request's grant; 401 or 403 (an HTTPException) when it may not have this."""
        token, form = presented(request)
        try:
            grant = self.tokens.verify(token)
        except TokenError as e:
            raise _refused(401, e.reason, form, request) from None
        if not grant.may(access.right):
            raise _refused(
                403, f"this needs the '{access.right}' right; the token has '{grant.rights}'", form
            )
        camera = self.requested_camera(request, access)
        if camera is not None and not grant.sees(camera):
            raise _refused(403, f"the token does not cover camera '{camera}'", form)
        return grant

    def requested_camera(self, request: web.Request, access: Access) -> str | None:
        """The camera the handler will serve, read as stream.py and signalling.py read it."""
        name = request.match_info.get("camera") or request.query.get(access.query)
        if name or not access.camera:
            return name or None
        return self.first_camera


AUTH = web.AppKey("auth", Auth)


def presented(request: web.Request) -> tuple[str | None, str]:
    """The token the request carries and how: 'path', 'query', 'bearer', 'basic' or 'none'."""
    in_path = request.match_info.get("token")
    if in_path:
        return in_path, "path"
    if "token" in request.query:
        return request.query["token"], "query"
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip(), "bearer"
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            return password.decode(), "basic"
        except (binascii.Error, UnicodeDecodeError):
            raise _refused(
                401, "the Basic credentials are not base64 of user:token", "basic"
            ) from None
    return None, "none"


def _refused(
    status: int, reason: str, form: str, request: web.Request | None = None
) -> web.HTTPException:
    exc = http_error(status, reason)
    # Clients that answer a challenge (urllib, ffmpeg, VLC, a browser opening /stream) send
    # nothing before it. A page's own fetches and <img> loads are not challenged: Chromium
    # would hold them on a login prompt instead of letting the page see the 401.
    fetched = request is not None and request.headers.get("Sec-Fetch-Mode", "navigate") not in (
        "navigate",
    )
    if status == 401 and (form == "basic" or (form == "none" and not fetched)):
        exc.headers["WWW-Authenticate"] = REALM
    return exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _from_loopback(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return isinstance(peer, tuple) and bool(peer) and _is_loopback(str(peer[0]))


@web.middleware
async def enforce(request: web.Request, handler: cors.Handler) -> web.StreamResponse:
    """The middleware: stores the request's Grant under ``request[GRANT]`` (None when auth
    is off, the request is exempt or the route serves it openly) or refuses it."""
    request[GRANT] = None
    auth = request.app[AUTH]
    if not auth.on or request.match_info.http_exception is not None:  # 404, 405: nothing served
        return await handler(request)
    if auth.exempt_loopback and _from_loopback(request):
        return await handler(request)
    resource = request.match_info.route.resource
    access = request.app.get(ACCESS, {}).get(resource, UNLISTED) if resource else UNLISTED
    if access.public is not None and access.public(request):
        return await handler(request)
    try:
        request[GRANT] = auth.check(request, access)
    except web.HTTPException:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return await cors.preflight(request)
        raise
    return await handler(request)


def install(app: web.Application, config: Config) -> None:
    """The app's :data:`AUTH` and its revocation reader; warns when the port is open to
    everyone. The middleware (:func:`enforce`) is given to the Application."""
    auth = Auth(config, Tokens(config.state_dir))
    app[AUTH] = auth
    app.setdefault(ACCESS, {})

    async def reader(app: web.Application) -> AsyncIterator[None]:
        if auth.exposed:
            log.warning(EXPOSED_WARNING.format(listen=auth.listen))
        task = None
        if auth.on:
            await asyncio.to_thread(auth.tokens.refresh)  # the first request waits for no disk
            task = asyncio.ensure_future(auth.run())
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(reader)


def record(app: web.Application, resource: web.AbstractResource, access: Access) -> None:
    """What ``resource`` needs (routes.py calls this for every route it adds)."""
    app.setdefault(ACCESS, {})[resource] = access
