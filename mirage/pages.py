"""What a remote viewer opens on the proxy: ``GET /view/DEVICE/CAMERA``, a page that shows the
camera with ``<titanium-video mirage-server=(this proxy) device camera-id>``, and under
``/static/`` the element's scripts (the very files the printer's front door serves, from
services/mjpeg/static) plus the page's own ``view.js``.

The token is never in the HTML: ``view.js`` takes it from the page URL's fragment
(``/view/D/C#token=T``, preferred: a fragment is never sent to any server, so it reaches no
log) or its query (``?token=T``, which it then moves into the fragment so it leaves the
address bar, history and any Referer), and without one asks for it in a small form.

The scripts are served with ``Access-Control-Allow-Origin: *`` (whep.cors, the app's
middleware): a printer UI on another origin imports the element from the proxy, and the
proxy authenticates by token only, so nothing is exposed to that origin that it could not
fetch anyway.
"""

from __future__ import annotations

import html
import re
from importlib import resources

from aiohttp import web

from titanium.services.mjpeg.page import VIEWER_SCRIPTS

PAGE_SCRIPTS = ("view.js",)
# The same shape devices' ids and camera names take (common/mirageconfig.py, server.py).
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The page's own URL may still hold ?token= on first load: no Referer carries it away.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{device} / {camera}</title>
<style>
  body {{ margin: 0; background: #111; color: #eee; font: 15px system-ui, sans-serif; }}
  main {{ max-width: 1280px; margin: 0 auto; padding: 1em; }}
  titanium-video {{ display: block; width: 100%; }}
  form[hidden], titanium-video[hidden] {{ display: none; }}
</style>
</head>
<body>
<main data-device="{device}" data-camera="{camera}">
<h1>{device} / {camera}</h1>
<form id="ask" hidden>
  <label>Viewer token <input name="token" type="password" autocomplete="off" required></label>
  <button>Watch</button>
</form>
</main>
<script type="module" src="/static/view.js"></script>
</body>
</html>
"""


async def view(request: web.Request) -> web.Response:
    device, camera = request.match_info["device"], request.match_info["camera"]
    if not NAME.match(device) or not NAME.match(camera):
        raise web.HTTPNotFound(text="no such device or camera\n")
    text = PAGE.format(device=html.escape(device), camera=html.escape(camera))
    return web.Response(text=text, content_type="text/html", headers=PAGE_HEADERS)


async def script(request: web.Request) -> web.Response:
    name = request.match_info["script"] + ".js"
    if name in VIEWER_SCRIPTS:
        file = resources.files("titanium.services.mjpeg").joinpath(f"static/{name}")
    elif name in PAGE_SCRIPTS:
        file = resources.files("titanium.mirage").joinpath(f"static/{name}")
    else:
        raise web.HTTPNotFound(text=f"no script {name}\n")
    return web.Response(
        text=file.read_text(),
        content_type="text/javascript",
        headers={"Cache-Control": "no-cache"},  # an upgraded proxy serves the new viewer
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/view/{device}/{camera}", view)
    app.router.add_get("/static/{script}.js", script)
